"""``python -m prospect_sbi.cli``."""

__all__: list[str] = []

import sys

from . import main

sys.exit(main())
