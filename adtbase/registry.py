"""The rule of the lazy registries (runner backends, calibration fitters, ...): a name maps to a
``"package.module:Class"`` target imported on first use, so a plugin module imports its registry and never
the other way round. Each registry keeps its own table and its own words; these are the checks they share.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterable, Mapping

from adtbase.errors import InputError


def check_target(kind: str, name: str, target: str, registered: Mapping[str, str], *, replace: bool = False) -> None:
    """InputError unless ``target`` is ``package.module:Class`` and ``name`` is free (or already ``target``, or
    ``replace``); ``kind`` names what is registered in the messages ("backend", "fitter")."""
    if ":" not in target or not all(target.split(":", 1)):
        raise InputError(f"{kind} target {target!r} is not of the form 'package.module:Class'")
    if name in registered and not replace and registered[name] != target:
        raise InputError(f"{kind} {name!r} is already registered as {registered[name]!r}")


def did_you_mean(name: str, known: Iterable[str], *, cutoff: float = 0.5) -> str:
    """``"; did you mean 'x'?"`` for the closest known name, or ``""``."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=cutoff)
    return f"; did you mean {close[0]!r}?" if close else ""


def load_target(target: str) -> object:
    """The object a ``package.module:Class`` target names (None when the module lacks it); ImportError as raised."""
    module_name, attr = target.split(":", 1)
    return getattr(importlib.import_module(module_name), attr, None)
