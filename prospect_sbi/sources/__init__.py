"""Prospector-compatible SPS sources: the offline BC03-MILES source, and FSPS passthrough."""

from .basis import *  # noqa: F403
from .basis import __all__ as _basis
from .dust import *  # noqa: F403
from .dust import __all__ as _dust
from .dust_emission import *  # noqa: F403
from .dust_emission import __all__ as _dust_emission
from .emlines import *  # noqa: F403
from .emlines import __all__ as _emlines
from .fast import *  # noqa: F403
from .fast import __all__ as _fast
from .grids import *  # noqa: F403
from .grids import __all__ as _grids
from .igm import *  # noqa: F403
from .igm import __all__ as _igm
from .params import *  # noqa: F403
from .params import __all__ as _params
from .sfh import *  # noqa: F403
from .sfh import __all__ as _sfh

__all__ = _basis + _dust + _dust_emission + _emlines + _fast + _grids + _igm + _params + _sfh
