"""The item bank: items, tags, provenance, exposure and history in one DuckDB file.

Public API: ``open_bank`` (a context manager yielding a ``Bank``), ``ImportOptions``, the report
types, ``Head`` for history heads, and the spool used by long runs (``itembank.spool``); also the
snapshot export (``itembank.snapshot``), the item-frame columns every bank has (``COLUMN_KEYS``), content
normalisation (``normalise``, ``LETTERS``), JSONL reading, history-row verification and the generated
test banks (``generate_items``); ``register_migrations(room)``, which a room's face calls so every bank
gets the room's ``migrations/`` (``itembank.migrate``). Other rooms, ``adt/`` and ``bench/`` import these
names from ``itembank`` and never reach into its modules (``tests/test_architecture.py``).
"""

from . import snapshot, spool  # noqa: E402,F401  (submodules of the public API)
from .bank import COLUMN_KEYS, DEFAULT_WAIT_S, Bank, ImportReport, ResponsesReport, open_bank
from .content import LETTERS, normalise
from .generators import generate_items
from .history import Head, VerifyReport, verify_rows
from .importer import ImportOptions, read_jsonl
from .migrate import register_migrations
from .snapshot import file_sha256

__all__ = ["COLUMN_KEYS", "DEFAULT_WAIT_S", "LETTERS", "Bank", "Head", "ImportOptions", "ImportReport",
           "ResponsesReport", "VerifyReport", "file_sha256", "generate_items", "normalise", "open_bank",
           "read_jsonl", "register_migrations", "snapshot", "spool", "verify_rows"]
