"""Command groups of the adt CLI; importing this package registers them on ``adt.cli.cli``.

One import line per command module; new modules append a line (hence no import sorting here).
"""
# ruff: noqa: I001

from adt.commands import bank  # noqa: F401
from adt.commands import audit  # noqa: F401
from adt.commands import run  # noqa: F401
from adt.commands import lmeval  # noqa: F401
from adt.commands import plot  # noqa: F401
from adt.commands import round  # noqa: F401,E402
from adt.commands import sample  # noqa: F401,E402
from adt.commands import cat  # noqa: F401,E402
from adt.commands import report  # noqa: F401,E402
from adt.commands import calibrate  # noqa: F401,E402
from adt.commands import validate  # noqa: F401,E402
