"""Lazy names of a room's face: the one module ``__getattr__`` the faces share (itembank, calibration, runners).

A face lists ``name -> defining module`` and loads each name on first use, so importing the face costs
nothing until a name is used (``adt --help``, ``tests/adt/test_startup.py``)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any


def lazy_getattr(package: str, names: Mapping[str, str], namespace: MutableMapping[str, Any]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``names[name]`` is the module defining ``name`` (the
    submodule itself where it is ``package.name``); the loaded value is kept in ``namespace``."""

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        loaded = importlib.import_module(module)
        value = loaded if module == f"{package}.{name}" else getattr(loaded, name)
        namespace[name] = value
        return value

    return __getattr__
