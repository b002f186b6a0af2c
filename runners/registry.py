"""One registry of backends, resolved lazily so a backend's heavy imports happen only when it is used.

Targets are "package.module:Class" strings; ``create(name, **backend_args)`` imports the module and
calls ``Class(**backend_args)``. Command lines pass backend args as text (``--backend-arg K=V``); the
command layer parses them (``adt.flags.parse_backend_args``).
"""

from __future__ import annotations

import importlib
from typing import Any

from adtbase.errors import InputError, RunnerError
from adtbase.registry import check_target, did_you_mean
from runners.base import Runner

_TARGETS: dict[str, str] = {
    "replay": "runners.replay:ReplayRunner",
    "simulated": "runners.simulated:SimulatedRunner",
    "simjudge": "runners.simjudge:SimulatedJudge",   # a simulated judge of known bias (a simulation device)
    "hf": "runners.hf:HFRunner",
    "vllm": "runners.vllm_backend:VLLMRunner",
    "openai": "runners.openai_backend:OpenAIRunner",
}


def available() -> tuple[str, ...]:
    """Registered backend names, sorted (whether or not their dependencies are installed)."""
    return tuple(sorted(_TARGETS))


def register(name: str, target: str, *, replace: bool = False) -> None:
    """Add a backend ("package.module:Class"); refuses to shadow an existing name unless ``replace``."""
    check_target("backend", name, target, _TARGETS, replace=replace)
    _TARGETS[name] = target


def _unknown(name: str) -> InputError:
    return InputError(f"unknown backend {name!r}{did_you_mean(name, _TARGETS)} (available: {', '.join(available())})")


def resolve(name: str) -> type[Runner]:
    """The backend class for ``name`` (imports its module)."""
    if name not in _TARGETS:
        raise _unknown(name)
    module_name, cls_name = _TARGETS[name].split(":", 1)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise RunnerError(f"backend {name!r} could not be imported from {module_name}: {exc}") from exc
    cls = getattr(module, cls_name, None)
    if cls is None:
        raise RunnerError(f"backend {name!r}: {module_name} has no class {cls_name!r}")
    if not (isinstance(cls, type) and issubclass(cls, Runner)):
        raise RunnerError(f"backend {name!r}: {_TARGETS[name]} is not a Runner subclass")
    return cls


def create(name: str, **backend_args: Any) -> Runner:
    """Build the backend ``name`` with its arguments; unknown arguments raise ``InputError``."""
    cls = resolve(name)
    try:
        return cls(**backend_args)
    except TypeError as exc:
        raise InputError(f"backend {name!r}: bad backend arguments {sorted(backend_args)}: {exc}") from exc
