"""Re-export of ``adtbase.errors``, where the domain exceptions now live (the base package every room may
import). Kept so ``adt.errors`` imports keep working; new code imports ``adtbase.errors``.
"""

from __future__ import annotations

from adtbase.errors import (
    AdtError,
    BankBusy,
    BankError,
    CalibrationError,
    FormNotFound,
    HistoryError,
    InputError,
    ItemNotFound,
    MigrationError,
    NotFitted,
    QuotaInfeasible,
    RunnerError,
    SandboxUnavailable,
    TaxonomyError,
    VariantRefused,
)

__all__ = ["AdtError", "BankError", "BankBusy", "MigrationError", "InputError",
           "TaxonomyError", "ItemNotFound", "FormNotFound", "QuotaInfeasible", "NotFitted",
           "CalibrationError", "RunnerError", "HistoryError", "SandboxUnavailable", "VariantRefused"]
