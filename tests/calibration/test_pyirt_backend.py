"""py-irt backend: runs isolated in a subprocess, returns a CalibrationResult-shaped answer."""

from __future__ import annotations

import numpy as np
import pytest

from adtbase.errors import InputError
from calibration.data import ResponseSet
from calibration.irt import ItemParams
from calibration.mml import fit_mml, simulate_responses
from calibration.pyirt_backend import fit_pyirt

pytest.importorskip("py_irt")


@pytest.mark.slow
def test_pyirt_backend_smoke(rng: np.random.Generator) -> None:
    n_items = 40
    items = ItemParams(tuple(f"q{k}" for k in range(n_items)), np.exp(rng.normal(0, 0.3, n_items)),
                       rng.normal(0, 1, n_items))
    theta = rng.normal(size=100)
    rs = simulate_responses(items, theta, rng, missing=0.2)
    before = np.random.get_state()[1].copy()  # noqa: NPY002 - py-irt must not touch our process
    res = fit_pyirt(rs, rng=np.random.default_rng(5), epochs=300, timeout_s=300)
    assert (np.random.get_state()[1] == before).all()  # noqa: NPY002
    assert res.method == "pyirt" and res.settings["isolation"] == "subprocess"
    assert np.isfinite(res.params.a).all() and np.isfinite(res.params.b).all()
    assert np.isnan(res.se["a"]).all() and not res.converged and res.n_iter == 300
    ours = fit_mml(rs, "2pl")
    assert np.corrcoef(res.params.b, ours.params.b)[0, 1] > 0.6
    assert np.corrcoef(res.theta, theta)[0, 1] > 0.6


def test_pyirt_backend_rejects_what_it_cannot_fit() -> None:
    rs = ResponseSet(np.array([0, 1]), np.array([0, 0]), np.array([0.5, 1.0]), ("m0", "m1"), ("i0",))
    with pytest.raises(InputError, match="0/1"):
        fit_pyirt(rs, rng=np.random.default_rng(0), epochs=1)
    with pytest.raises(InputError, match="2PL only"):
        fit_pyirt(rs, "3pl", rng=np.random.default_rng(0))
