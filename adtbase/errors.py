"""Domain exceptions shared by every room.

Each is a user-facing problem: the CLI catches ``AdtError`` once, prints its message on one line and
exits 1. Messages name the file, row and field (or the bank's holder) so the user can act on them.
"""

from __future__ import annotations

__all__ = ["AdtError", "BankError", "BankBusy", "MigrationError", "InputError",
           "TaxonomyError", "ItemNotFound", "FormNotFound", "QuotaInfeasible", "NotFitted",
           "CalibrationError", "RunnerError", "HistoryError", "SandboxUnavailable", "VariantRefused"]


class AdtError(Exception):
    """Base class of every error adt reports to a user (exit code 1)."""


class BankError(AdtError):
    """The bank file is missing, corrupted or otherwise unusable."""


class BankBusy(BankError):
    """Another process holds the bank file and did not let go in time."""


class MigrationError(BankError):
    """The bank's schema does not match this version of adt."""


class InputError(AdtError):
    """A file or argument given by the user is malformed (names file, row and field)."""


class TaxonomyError(InputError):
    """An unknown tag key, or a value outside a closed key's allowed list."""


class ItemNotFound(AdtError):
    """An item id or alias that the bank does not hold."""


class FormNotFound(AdtError):
    """A form name the bank does not hold."""


class QuotaInfeasible(AdtError):
    """A form spec whose quotas cannot be met by the eligible items."""


class NotFitted(AdtError):
    """An estimator used before ``fit``."""


class CalibrationError(AdtError):
    """A calibration could not be run or found."""


class RunnerError(AdtError):
    """A model backend failed or was misconfigured."""


class HistoryError(BankError):
    """The bank's history chain does not verify."""


class SandboxUnavailable(AdtError):
    """The machine does not allow the sandbox's isolation (``adtbase.sandbox``); nothing was run."""


class VariantRefused(AdtError):
    """A variant could not be made honestly from its parent (``itembank.variants``); the reason is named."""
