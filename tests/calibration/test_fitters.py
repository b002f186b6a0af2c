"""The fitter interface and registry (``calibration.fitters``): names, abilities, did-you-mean, plug-ins, and the
registered fitters giving exactly what the functions behind them give."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from adtbase.errors import InputError
from calibration import (
    IRT_CHOICES,
    FitSettings,
    Fitter,
    ResponseSet,
    anchoring_fitters,
    fit_mml,
    fitter_names,
    get_fitter,
    irt_choices,
    method_help,
    register_fitter,
    select_model,
    simulate_responses,
    unregister_fitter,
)
from calibration.irt import ItemModel, ItemParams, item_information, log_likelihood, prob_matrix
from calibration.result import CalibrationResult


class GradedStub(Fitter):
    """A fitter of a model the MML core does not fit: only its declarations are used here."""

    name = "graded-stub"
    label = "graded stub"
    summary = "a stand-in for a graded response fitter"
    irt_models = ("grm",)

    def fit(self, responses: ResponseSet, settings: FitSettings, *, rng: np.random.Generator) -> CalibrationResult:
        raise NotImplementedError


class NotAFitter:
    pass


@pytest.fixture
def stub() -> Iterator[str]:
    register_fitter("graded-stub", f"{__name__}:GradedStub")
    yield "graded-stub"
    unregister_fitter("graded-stub")


def responses(seed: int = 5) -> ResponseSet:
    rng = np.random.default_rng(seed)
    n = 25
    items = ItemParams(tuple(f"q{k}" for k in range(n)), np.exp(rng.normal(0.2, 0.3, n)), rng.normal(0, 1, n),
                       np.full(n, 0.2))
    return simulate_responses(items, rng.normal(size=250), rng, missing=0.3)


def test_registry_names_the_fitters_and_what_they_can_do() -> None:
    assert fitter_names() == ("mml", "pyirt", "facets")
    mml, pyirt, facets = get_fitter("mml"), get_fitter("pyirt"), get_fitter("facets")
    assert facets.irt_models == ("2pl",) and facets.family == "grm" and not facets.holds_anchors
    assert mml.irt_models == IRT_CHOICES and mml.holds_anchors and mml.checks_convergence
    assert pyirt.irt_models == ("2pl",) and not pyirt.holds_anchors and not pyirt.checks_convergence
    assert irt_choices() == IRT_CHOICES and anchoring_fitters() == ("mml",)
    text = method_help()
    assert text.index("mml (--irt 1pl|2pl|3pl|4pl|auto): ") < text.index("pyirt (--irt 2pl): ")
    assert mml.summary in text and pyirt.summary in text and "facets (--irt 2pl): " in text


def test_unknown_method_gets_a_did_you_mean() -> None:
    with pytest.raises(InputError, match=r"unknown calibration method 'mlm'; did you mean 'mml'\? \(known: mml, pyirt, facets\)"):
        get_fitter("mlm")
    with pytest.raises(InputError, match=r"unknown calibration method 'zzz' \(known: mml, pyirt, facets\)"):
        get_fitter("zzz")


def test_register_checks_targets_and_never_shadows(stub: str) -> None:
    with pytest.raises(InputError, match="package.module:Class"):
        register_fitter("x", "no_colon")
    with pytest.raises(InputError, match="already registered"):
        register_fitter("mml", f"{__name__}:GradedStub")
    register_fitter("not-a-fitter", f"{__name__}:NotAFitter")
    try:
        with pytest.raises(InputError, match="not a Fitter subclass"):
            get_fitter("not-a-fitter")
    finally:
        unregister_fitter("not-a-fitter")
    # a plug-in's models join --irt's choices, after the built-in ones; it cannot hold anchors
    assert fitter_names()[-1] == stub and irt_choices() == (*IRT_CHOICES, "grm")
    assert anchoring_fitters() == ("mml",) and "graded-stub (--irt grm): a stand-in" in method_help()


def _same(a: CalibrationResult, b: CalibrationResult) -> None:
    for k in ("a", "b", "c", "d"):
        np.testing.assert_array_equal(getattr(a.params, k), getattr(b.params, k))
        np.testing.assert_array_equal(a.se[k], b.se[k])
    np.testing.assert_array_equal(a.theta, b.theta)
    assert (a.loglik, a.n_iter, a.method, a.model) == (b.loglik, b.n_iter, b.method, b.model)


def test_mml_fitter_is_fit_mml_and_select_model() -> None:
    rs = responses()
    k = np.full(rs.n_items, 4.0)
    fitter = get_fitter("mml")
    got = fitter.fit(rs, FitSettings(irt="3pl", seed=1, n_choices=k, max_iter=500), rng=np.random.default_rng(1))
    _same(got, fit_mml(rs, "3pl", rng=np.random.default_rng(1), seed=1, n_choices=k, max_iter=500, latent="normal"))
    auto = fitter.fit(rs, FitSettings(irt="auto", seed=2, holdout_frac=0.25), rng=np.random.default_rng(2))
    sel = select_model(rs, rng=np.random.default_rng(2), holdout_frac=0.25, seed=2, latent="normal", max_iter=2000)
    assert sel.result is not None and auto.model == sel.best
    _same(auto, sel.result)
    # the candidates a fitter compared are in its settings: the workflow shows them from there
    assert [c["model"] for c in auto.settings["selection"]["candidates"]] == list(IRT_CHOICES[:-1])
    anchors = {rs.item_ids[0]: (1.0, 0.0, 0.0, 1.0)}
    fixed = fitter.fit(rs, FitSettings(irt="2pl", fixed=anchors), rng=np.random.default_rng(0))
    assert fixed.fixed[0] and fixed.params.a[0] == 1.0 and fixed.method == "mml"


def test_item_params_is_the_4pl_item_model() -> None:
    """ItemParams implements the protocol a polytomous or rater model's parameters would (calibration.irt)."""
    rng = np.random.default_rng(3)
    p = ItemParams(("x", "y", "z"), np.array([0.8, 1.5, 2.0]), np.array([-1.0, 0.0, 1.0]), np.array([0.0, 0.2, 0.25]),
                   np.array([1.0, 0.95, 1.0]))
    assert isinstance(p, ItemModel) and p.family == "4pl" and len(p) == 3
    assert list(p.columns()) == ["a", "b", "c", "d"] and p.columns()["c"] is p.c
    theta = rng.normal(size=7)
    np.testing.assert_array_equal(p.expected(theta), prob_matrix(theta, p))
    np.testing.assert_array_equal(p.information(theta), item_information(theta[:, None], p.a, p.b, p.c, p.d))
    j, s = np.array([2, 0, 1, 1]), np.array([1.0, 0.0, 0.5, 1.0])
    np.testing.assert_array_equal(p.loglik(theta[:4], j, s), log_likelihood(theta[:4], s, p.a[j], p.b[j], p.c[j], p.d[j]))
    sub = p.subset([2, 0])
    assert isinstance(sub, ItemModel) and sub.item_ids == ("z", "x") and sub.expected(0.0).shape == (1, 2)
