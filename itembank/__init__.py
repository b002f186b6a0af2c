"""The item bank: items, tags, provenance, exposure and history in one DuckDB file.

Public API: ``open_bank`` (a context manager yielding a ``Bank``), ``ImportOptions``, the report
types, ``Head`` for history heads, and the spool used by long runs (``itembank.spool``); also the
snapshot export (``itembank.snapshot``), the item-frame columns every bank has (``COLUMN_KEYS``), content
normalisation (``normalise``, ``LETTERS``), JSONL reading, history-row verification and the generated
test banks (``generate_items``), the deterministic item variants (``itembank.variants``: ``shuffle_options``,
``renumber``, ``perturb``, ``edit_words``, ``question_numbers``); ``register_migrations(room)``, which a room's face calls so every bank
gets the room's ``migrations/`` (``itembank.migrate``). Other rooms, ``adt/`` and ``bench/`` import these
names from ``itembank`` and never reach into its modules (``tests/test_architecture.py``).

Importing the face is light (no pandas, DuckDB or pyarrow): ``DEFAULT_WAIT_S`` and ``register_migrations``
load with it, every other name on first use from the module that defines it (``_LAZY``, module
``__getattr__``, as ``runners``' face), so ``adt --help`` and other rooms' faces cost nothing here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from adtbase.lazy import lazy_getattr

from .lock import DEFAULT_WAIT_S
from .migrate import register_migrations

# Names loaded on first use from the module that defines them ("" after the dot: the submodule itself).
_LAZY = {
    "IMPORT_COLUMNS_HELP": "itembank.columns",
    "COLUMN_KEYS": "itembank.bank",
    "Bank": "itembank.bank",
    "ImportReport": "itembank.bank",
    "LIFECYCLE_SETTINGS": "itembank.bank",
    "ResponsesReport": "itembank.bank",
    "open_bank": "itembank.bank",
    "LETTERS": "itembank.content",
    "format_problems": "itembank.content",
    "normalise": "itembank.content",
    "generate_items": "itembank.generators",
    "Head": "itembank.history",
    "VerifyReport": "itembank.history",
    "verify_rows": "itembank.history",
    "ImportOptions": "itembank.importer",
    "read_jsonl": "itembank.importer",
    "file_sha256": "itembank.snapshot",
    "snapshot": "itembank.snapshot",
    "spool": "itembank.spool",
    "variants": "itembank.variants",
    "shuffle_options": "itembank.variants",
    "renumber": "itembank.variants",
    "edit_words": "itembank.variants",
    "perturb": "itembank.variants",
    "question_numbers": "itembank.variants",
}

if TYPE_CHECKING:  # what the lazy names are, for the type checker only
    from . import snapshot as snapshot
    from . import spool as spool
    from . import variants as variants
    from .bank import COLUMN_KEYS as COLUMN_KEYS
    from .bank import LIFECYCLE_SETTINGS as LIFECYCLE_SETTINGS
    from .bank import Bank as Bank
    from .bank import ImportReport as ImportReport
    from .bank import ResponsesReport as ResponsesReport
    from .bank import open_bank as open_bank
    from .columns import IMPORT_COLUMNS_HELP as IMPORT_COLUMNS_HELP
    from .content import LETTERS as LETTERS
    from .content import format_problems as format_problems
    from .content import normalise as normalise
    from .generators import generate_items as generate_items
    from .history import Head as Head
    from .history import VerifyReport as VerifyReport
    from .history import verify_rows as verify_rows
    from .importer import ImportOptions as ImportOptions
    from .importer import read_jsonl as read_jsonl
    from .snapshot import file_sha256 as file_sha256
    from .variants import edit_words as edit_words
    from .variants import perturb as perturb
    from .variants import question_numbers as question_numbers
    from .variants import renumber as renumber
    from .variants import shuffle_options as shuffle_options


__getattr__ = lazy_getattr(__name__, _LAZY, globals())


__all__ = ["COLUMN_KEYS", "DEFAULT_WAIT_S", "LETTERS", "LIFECYCLE_SETTINGS", "Bank", "Head", "ImportOptions", "ImportReport",
           "ResponsesReport", "VerifyReport", "edit_words", "file_sha256", "format_problems", "generate_items",
           "normalise", "open_bank", "perturb", "question_numbers", "read_jsonl", "register_migrations", "renumber",
           "shuffle_options", "snapshot", "spool", "variants", "verify_rows"]
