"""``adt.filters.parse_filters`` under its old name: the ``--filter`` grammar lives in ``adt.flags``."""

from adt.flags import parse_filters as parse_filters

__all__ = ["parse_filters"]
