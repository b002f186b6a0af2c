"""Who holds the bank file: an advisory lock beside it, held only as long as a command needs it.

DuckDB lets one process hold a database file; a second cannot even open it read-only. Every adt
command therefore takes ``<bank>.lock`` (flock) before opening the file and releases it when done.
A command that finds the lock held waits, polling, up to a bound and then fails with ``BankBusy``
naming the holder (pid, what it is doing, since when), which the holder wrote into the lock file.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from adtbase.errors import BankBusy

POLL_S = 0.1
# How long a command waits for a bank another process holds (``open_bank(wait_s=)``, ``adt --wait``).
DEFAULT_WAIT_S = 30.0


@dataclass
class BankLock:
    path: Path
    fd: int

    def release(self) -> None:
        if self.fd >= 0:
            try:
                os.ftruncate(self.fd, 0)
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            finally:
                os.close(self.fd)
                self.fd = -1


def lock_path(bank_path: Path) -> Path:
    return bank_path.with_name(bank_path.name + ".lock")


def read_holder(path: Path) -> str:
    """The holder's self-description, or a fallback when it has not written one yet."""
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        info = {}
    if not info:
        return "another process (it has not said who)"
    return f"pid {info.get('pid')} on {info.get('host')} ({info.get('purpose')}) since {info.get('since')}"


def acquire(bank_path: Path, *, purpose: str, wait_s: float,
            on_wait: Callable[[str], None] | None = None) -> BankLock:
    """Take the bank's lock, waiting up to ``wait_s`` seconds; raise BankBusy naming the holder."""
    path = lock_path(bank_path)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + wait_s
    told = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            holder = read_holder(path)
            if time.monotonic() >= deadline:
                os.close(fd)
                raise BankBusy(f"bank {bank_path} is held by {holder}; waited {wait_s:g} s, giving up") from None
            if on_wait is not None and not told:
                on_wait(f"bank {bank_path} is held by {holder}; waiting up to {wait_s:g} s")
                told = True
            time.sleep(POLL_S)
    info = {"pid": os.getpid(), "host": socket.gethostname(), "purpose": purpose,
            "since": datetime.now(UTC).isoformat(timespec="seconds")}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(info).encode(), 0)
    return BankLock(path, fd)
