"""The common base every room may import: the domain exceptions (``adtbase.errors``), the package
version and the one JSON converter. It imports nothing from ``adt/`` or the rooms, so a room that
raises an ``InputError`` does not depend on the CLI package.
"""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

try:
    # Read once, from the installed metadata: pyproject.toml is the one place the version is written.
    __version__: str = _version("adt")
except PackageNotFoundError:  # a checkout used without ``pip install -e .``
    __version__ = "0+unknown"

__all__ = ["__version__"]
