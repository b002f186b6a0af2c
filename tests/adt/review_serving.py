"""The review page as its tests open it: the bank opener the CLI's context uses and the Host header of a
loopback request (the served page and the browser are fixtures in tests/adt/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from itembank import Bank, open_bank

HOST = {"Host": "127.0.0.1:8765"}


def opener_for(path: Path):
    @contextmanager
    def opener(purpose: str) -> Iterator[Bank]:
        import calibration  # noqa: F401  (its migrations, as the CLI's Context.bank)

        with open_bank(path, purpose=purpose) as bank:
            yield bank

    return opener
