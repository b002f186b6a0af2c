"""The item bank: items, tags, provenance, exposure and history in one DuckDB file.

Public API: ``open_bank`` (a context manager yielding a ``Bank``), ``ImportOptions``, the report
types, ``Head`` for history heads, and the spool used by long runs (``itembank.spool``).
"""

from . import snapshot, spool  # noqa: E402,F401  (submodules of the public API)
from .bank import DEFAULT_WAIT_S, Bank, ImportReport, ResponsesReport, open_bank
from .history import Head, VerifyReport
from .importer import ImportOptions

__all__ = ["DEFAULT_WAIT_S", "Bank", "Head", "ImportOptions", "ImportReport", "ResponsesReport", "VerifyReport",
           "open_bank"]
