"""Calibration fitters: one interface (``Fitter.fit``), one registry.

A fitter takes a response set and its settings (``FitSettings``: what ``adt calibrate`` was asked for)
and returns a ``CalibrationResult``. It says what it can do in class attributes, which the workflow and
the CLI read instead of testing its name: the IRT models it fits (``irt_models``; ``--irt`` offers the
union), whether it can hold anchor items fixed (``holds_anchors``; ``--link fixed``), whether its
``converged`` means anything (``checks_convergence``) and what its ``n_iter`` counts (``steps``).

Registered: ``mml`` (``calibration.mml``, marginal maximum likelihood, 1PL-4PL or ``auto``), ``pyirt``
(``calibration.pyirt_backend``, py-irt's 2PL for cross-checking) and ``facets`` (``calibration.facets``: the
many-facet graded response model, judged items with rater severities beside binary 2PL items). Targets are "package.module:Class"
strings resolved on first use (as in ``runners.registry``), so a fitter module imports this one, never
the other way round. Adding a fitter: a module with a ``Fitter`` subclass, plus its line in ``_TARGETS``
(or ``register_fitter(name, target)`` from outside the package); ``adt calibrate --method NAME`` then offers
it, with no change to the workflow or the CLI. Heavy dependencies import inside ``fit``.

A fitter whose parameters are not the 4PL's a, b, c, d (graded response, rater models) returns them
in a result whose ``params`` implement ``calibration.irt.ItemModel``; see that protocol for what the
rooms downstream read of them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from adtbase.errors import InputError
from adtbase.registry import check_target, did_you_mean, load_target

from .data import ResponseSet
from .result import CalibrationResult

DEFAULT_FITTER = "mml"


@dataclass(frozen=True)
class FitSettings:
    """What a calibration asks of a fitter. Every fitter reads the fields that apply to it.

    ``irt`` is one of the fitter's ``irt_models`` (the workflow checks before any work). ``seed`` is the
    one the caller built ``rng`` from, for the record. A fitter that chose the IRT model itself (``auto``)
    records the candidates in its result's ``settings["selection"]["candidates"]`` (a list of dicts).
    """

    irt: str = "2pl"
    seed: int | None = None
    latent: str = "normal"                   # latent distribution: normal | empirical
    max_iter: int = 2000                     # iteration limit of fitters that test convergence
    n_choices: NDArray[np.float64] | None = None   # lower asymptote fixed at 1/k (0 = held at 0)
    fixed: Mapping[str, tuple[float, float, float, float]] | None = None   # anchor items: (a, b, c, d)
    holdout_frac: float = 0.2                # irt "auto": share of responses held out
    epochs: int = 2000                       # fitters that run a fixed number of steps
    n_levels: NDArray[np.int64] | None = None  # graded items: levels K per item (score k / (K - 1)); None = 2


class Fitter(ABC):
    """A way to fit item parameters from responses."""

    name: ClassVar[str]
    summary: ClassVar[str]                         # one line: ``adt calibrate --help``
    label: ClassVar[str]                           # how messages name it
    irt_models: ClassVar[tuple[str, ...]]          # what ``--irt`` it takes
    holds_anchors: ClassVar[bool] = False          # honours ``FitSettings.fixed`` (``--link fixed``)
    checks_convergence: ClassVar[bool] = True      # False: a fixed number of steps, ``converged`` is False
    steps: ClassVar[str] = "EM steps"              # what the result's ``n_iter`` counts
    family: ClassVar[str] = "4pl"                  # the item family of its params (``ItemModel.family``)
    takes_raters: ClassVar[bool] = False           # fits each judge's verdicts (``ResponseSet.rater_idx``)

    @abstractmethod
    def fit(self, responses: ResponseSet, settings: FitSettings, *,
            rng: np.random.Generator) -> CalibrationResult:
        """Fit ``responses``; the result's ``method`` is this fitter's ``name``."""


_TARGETS: dict[str, str] = {
    "mml": "calibration.mml.fitter:MMLFitter",
    "pyirt": "calibration.pyirt_backend:PyIrtFitter",
    "facets": "calibration.facets:FacetsFitter",
}


def fitter_names() -> tuple[str, ...]:
    """Registered fitter names, in registration order (the default first)."""
    return tuple(_TARGETS)


def register_fitter(name: str, target: str, *, replace: bool = False) -> None:
    """Add a fitter ("package.module:Class"); refuses to shadow an existing name unless ``replace``."""
    check_target("fitter", name, target, _TARGETS, replace=replace)
    _TARGETS[name] = target


def unregister_fitter(name: str) -> None:
    """Remove a fitter added with ``register_fitter`` (tests, plugins that unload)."""
    _TARGETS.pop(name, None)


def resolve(name: str) -> type[Fitter]:
    """The fitter class registered as ``name`` (imports its module); an unknown name gets a did-you-mean."""
    if name not in _TARGETS:
        hint = did_you_mean(name, _TARGETS)
        raise InputError(f"unknown calibration method {name!r}{hint} (known: {', '.join(fitter_names())})")
    cls = load_target(_TARGETS[name])
    if not (isinstance(cls, type) and issubclass(cls, Fitter)):
        raise InputError(f"fitter {name!r}: {_TARGETS[name]} is not a Fitter subclass")
    return cls


def get_fitter(name: str) -> Fitter:
    """The registered fitter ``name``; an unknown name gets a did-you-mean error."""
    return resolve(name)()


def irt_choices() -> tuple[str, ...]:
    """Every IRT model some registered fitter fits, in registration order (``--irt``'s choices)."""
    seen: dict[str, None] = {}
    for name in _TARGETS:
        seen.update(dict.fromkeys(resolve(name).irt_models))
    return tuple(seen)


def anchoring_fitters() -> tuple[str, ...]:
    """The fitters that can hold anchor items fixed (``--link fixed``)."""
    return tuple(n for n in _TARGETS if resolve(n).holds_anchors)


def method_help() -> str:
    """One line per fitter for ``--method``'s help: name, summary and the IRT models it fits."""
    return "; ".join(f"{n} (--irt {'|'.join(resolve(n).irt_models)}): {resolve(n).summary}" for n in _TARGETS)
