"""py-irt backend: the same 2PL fitted by py-irt (variational Bayes, Pyro) for cross-checking.

py-irt seeds Python's ``random``, numpy, torch and pyro globally, so it never runs in our process: the
parent writes the responses in py-irt's own jsonlines format (``{"subject_id", "responses"}``) and a
config to a temporary folder, runs ``python -m calibration.pyirt_backend <folder>`` (this module's
``_child_main``), which trains through py-irt's public API (``IrtConfig`` + ``IrtModelTrainer``) and
writes the exported parameters back as JSON.  The seed given to py-irt is drawn from the caller's
generator, so a seeded run is reproducible and the parent's global state is untouched.

What comes back is a ``CalibrationResult`` with py-irt's point estimates (discrimination = exp of the
variational mean of log a, difficulty, ability).  There are **no standard errors** (NaN: py-irt's
export gives none), ``loglik`` is the joint Bernoulli log-likelihood at the point estimates (py-irt
fits no marginal likelihood), AIC/BIC are NaN, ``n_iter`` is the number of SVI epochs and
``converged`` is False because py-irt runs a fixed number of epochs with no convergence test
(``settings['convergence']`` says so).  Items that everyone answered the same way are still fitted by
py-irt (its priors keep them finite) but are reported with their status, never as "calibrated"; items
with no responses are absent from py-irt's data and get NaN parameters.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from adtbase.errors import CalibrationError, InputError

from .data import ResponseSet
from .fitters import FitSettings, Fitter
from .irt import ItemParams, log_likelihood
from .result import CalibrationResult, item_status


class PyIrtFitter(Fitter):
    """The ``pyirt`` fitter (``calibration.fitters``): ``fit_pyirt``."""

    name = "pyirt"
    label = "py-irt"
    summary = "py-irt's variational 2PL, a fixed number of --epochs, no SEs (a cross-check)"
    irt_models = ("2pl",)
    checks_convergence = False
    steps = "epochs"

    def fit(self, responses: ResponseSet, settings: FitSettings, *,
            rng: np.random.Generator) -> CalibrationResult:
        return fit_pyirt(responses, settings.irt, rng=rng, epochs=settings.epochs, seed=settings.seed)


def fit_pyirt(responses: ResponseSet, model: str = "2pl", *, rng: np.random.Generator, epochs: int = 2000,
              lr: float = 0.1, lr_decay: float = 0.9999, priors: str = "vague",
              timeout_s: float | None = None, seed: int | None = None) -> CalibrationResult:
    """Fit a 2PL with py-irt in a subprocess (see module docstring for what the result holds)."""
    if model.lower() != "2pl":
        raise InputError(f"the py-irt backend fits the 2PL only, got model {model!r}")
    if priors not in ("vague", "hierarchical"):
        raise InputError(f"py-irt priors must be 'vague' or 'hierarchical', got {priors!r}")
    if epochs < 1:
        raise InputError(f"epochs must be positive, got {epochs}")
    s = responses.score
    if np.any((s > 0) & (s < 1)):
        k = int(np.argmax((s > 0) & (s < 1)))
        raise InputError(f"py-irt's Bernoulli likelihood needs 0/1 scores; response row {k} has score {s[k]}")
    child_seed = int(rng.integers(0, 2**31 - 1))
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="adt-pyirt-") as tmp:
        folder = Path(tmp)
        _write_jsonlines(responses, folder / "data.jsonlines")
        config = {"model_type": "2pl", "epochs": int(epochs), "lr": float(lr), "lr_decay": float(lr_decay),
                  "priors": priors, "seed": child_seed}
        (folder / "config.json").write_text(json.dumps(config))
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        try:
            proc = subprocess.run([sys.executable, "-m", "calibration.pyirt_backend", str(folder)],
                                  capture_output=True, text=True, timeout=timeout_s, env=env, cwd=root,
                                  check=False)
        except subprocess.TimeoutExpired as exc:
            raise CalibrationError(f"py-irt fit exceeded its {timeout_s} s time limit") from exc
        out_path = folder / "params.json"
        if proc.returncode != 0 or not out_path.exists():
            tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-5:]
            raise CalibrationError(f"py-irt fit failed (exit {proc.returncode}): {' | '.join(tail)}")
        out = json.loads(out_path.read_text())
    return _to_result(responses, out, config, seed, time.perf_counter() - t0)


def _write_jsonlines(rs: ResponseSet, path: Path) -> None:
    order = np.argsort(rs.model_idx, kind="stable")
    m, i, s = rs.model_idx[order], rs.item_idx[order], rs.score[order]
    bounds = np.flatnonzero(np.diff(m)) + 1
    with path.open("w") as fh:
        for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, m.size], strict=True):
            if hi <= lo:
                continue
            row = {"subject_id": rs.model_ids[m[lo]],
                   "responses": {rs.item_ids[k]: int(v) for k, v in zip(i[lo:hi], s[lo:hi], strict=True)}}
            fh.write(json.dumps(row) + "\n")


def _to_result(rs: ResponseSet, out: dict[str, Any], config: dict[str, Any], seed: int | None,
               seconds: float) -> CalibrationResult:
    n_items = rs.n_items
    pos_item = {iid: k for k, iid in enumerate(rs.item_ids)}
    pos_model = {mid: k for k, mid in enumerate(rs.model_ids)}
    a = np.full(n_items, np.nan)
    b = np.full(n_items, np.nan)
    for ix, iid in out["item_ids"].items():
        k = pos_item[iid]
        a[k] = out["disc"][int(ix)]
        b[k] = out["diff"][int(ix)]
    theta = np.full(rs.n_models, np.nan)
    for ix, mid in out["subject_ids"].items():
        theta[pos_model[mid]] = out["ability"][int(ix)]
    status = item_status(rs)
    params = ItemParams(rs.item_ids, a, b)
    ok = np.isfinite(a[rs.item_idx]) & np.isfinite(theta[rs.model_idx])
    ll = float(log_likelihood(theta[rs.model_idx[ok]], rs.score[ok], a[rs.item_idx[ok]],
                              b[rs.item_idx[ok]]).sum())
    nan = np.full(n_items, np.nan)
    settings = {
        "method": "pyirt", "model": "2pl", "seed": seed, "pyirt_seed": config["seed"],
        "epochs": config["epochs"], "lr": config["lr"], "lr_decay": config["lr_decay"],
        "priors": config["priors"], "se_method": None,
        "convergence": "not assessed: py-irt runs a fixed number of SVI epochs",
        "loglik": "joint Bernoulli log-likelihood at the point estimates (not a marginal likelihood)",
        "train_seconds": out.get("train_seconds"), "seconds": round(seconds, 3),
        "isolation": "subprocess", "n_models": rs.n_models, "n_items": n_items,
    }
    return CalibrationResult(
        params=params, se={"a": nan.copy(), "b": nan.copy(), "c": nan.copy(), "d": nan.copy()},
        item_status=status, theta=theta, theta_se=np.full(rs.n_models, np.nan), quad_points=np.zeros(0),
        quad_weights=np.zeros(0), loglik=ll, n_iter=int(config["epochs"]), converged=False, settings=settings,
        aic=math.nan, bic=math.nan, n_params=2 * int(np.isfinite(a).sum()) + rs.n_models,
        model_ids=rs.model_ids, fixed=np.zeros(n_items, dtype=bool), log_posterior=math.nan, n_obs=rs.n_obs,
        method="pyirt")


def _child_main(folder: str) -> None:
    """Runs in the subprocess only: py-irt may seed every global generator here."""
    import random

    import pyro
    import torch
    from py_irt.config import IrtConfig
    from py_irt.training import IrtModelTrainer

    path = Path(folder)
    cfg = json.loads((path / "config.json").read_text())
    seed = int(cfg["seed"])
    # as py-irt's own CLI does
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - global seeding is the point of isolating py-irt
    torch.manual_seed(seed)
    pyro.set_rng_seed(seed)
    config = IrtConfig(model_type=cfg["model_type"], epochs=cfg["epochs"], lr=cfg["lr"],
                       lr_decay=cfg["lr_decay"], priors=cfg["priors"], seed=seed,
                       log_every=max(1, cfg["epochs"]))
    trainer = IrtModelTrainer(data_path=path / "data.jsonlines", config=config, verbose=False)
    t0 = time.perf_counter()
    trainer.train(epochs=cfg["epochs"], device="cpu")
    params = dict(trainer.last_params)
    params["train_seconds"] = time.perf_counter() - t0
    (path / "params.json").write_text(json.dumps(params))


if __name__ == "__main__":
    _child_main(sys.argv[1])
