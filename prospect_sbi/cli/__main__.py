"""``python -m prospect_sbi.cli``."""

import sys

from . import main

sys.exit(main())
