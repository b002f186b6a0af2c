"""One adaptive test of one model through any registered runner backend (``adt cat``).

Item parameters come from a calibration in the bank (``calibration_id``, default the latest; only items
the calibration estimated take part) or from a parameter file (``params_file``: ``item_id, a, b`` and
optional ``c``, ``d``). The test is ``sampler.CatSession`` (maximum information at the current EAP,
optional randomesque or Sympson-Hetter exposure control, content balancing over ``content`` targets),
driven step by step: it names the next item, the run loop of ``adt run`` (``adt.workflow.run.RunLoop``)
asks the backend, puts the answer in the run's spool (ingested in short transactions as the test goes
and at the end) and the score goes back to the session. The bank is held only to set the test up, to
start the run and to store it. The run is stored with kind ``cat``; its responses count as exposure like
any other run's. A test that cannot start (no parameters, an empty slice) leaves the bank as it was; a
backend failure marks the run failed and keeps the answers so far.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from adt.paramfile import check_columns, params_from_frame, read_table
from adt.workflow.calibrate import predictive_model
from adt.workflow.forms import load_parameters
from adt.workflow.run import RunLoop, backend_kwargs, make_runner, public_config, request_maker
from adtbase.errors import CalibrationError, InputError, RunnerError
from calibration import load_calibration, predict
from itembank import DEFAULT_WAIT_S, open_bank
from runners import Request, Result, Runner
from sampler import AdaptiveTest, CatConfig, CatSession, calibrate_sympson_hetter, final_estimate

EXPOSURE_CHOICES = ("none", "randomesque", "sympson-hetter")
# Spooled answers are ingested at most this often while the test runs (a short, non-blocking try).
INGEST_EVERY_S = 5.0
INGEST_WAIT_S = 0.5


@dataclass(frozen=True)
class CatReport:
    run_id: str
    model: str
    backend: str
    calibration_id: str | None
    exposure_control: str
    theta: float
    se: float
    lo: float                 # 95% interval
    hi: float
    n_items: int
    stop_reason: str          # se_target | max_items | pool_exhausted
    item_ids: tuple[str, ...]
    scores: tuple[float, ...]
    se_path: tuple[float, ...]
    n_pool: int
    n_responses: int          # the run's responses in the bank at the end
    seed: int
    seconds: float
    # With a stored calibration: the same estimate as `adt estimate` (calibration.predictive) on the slice.
    pred_acc: float = float("nan")
    pred_lo: float = float("nan")
    pred_hi: float = float("nan")
    extrapolated: bool = False
    sources: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _CatFeed:
    """The run loop's feed for an adaptive test: one request per step, every score back to the session."""

    session: CatSession
    make_request: Callable[[str], Request]
    backend: str

    def next_batch(self) -> Sequence[Request]:
        item = self.session.next_item()
        return [] if item is None else [self.make_request(item)]

    def record(self, batch: Sequence[Request], results: Sequence[Result]) -> None:
        for r in results:
            if not r.ok:  # the test cannot go on without this answer
                raise RunnerError(f"backend {self.backend!r}: item {r.item_id}: {r.error}")
            self.session.update(r.item_id, float(r.score))


def _replay_answered(runner: Runner, requests: Sequence[Request]) -> set[str]:
    """Items a replayed model has a recorded answer for (replay answers are fixed: asking is free)."""
    return {r.item_id for r in runner.score(list(requests)) if r.error != "missing"}


def run_cat(bank_path: str | Path, model: str, backend: str, backend_args: Mapping[str, Any] | None = None, *,
            max_items: int = 50, se_target: float | None = 0.3, seed: int | None = None,
            calibration_id: str | None = None, params_file: Path | None = None, exposure: str = "none",
            top_k: int = 5, filters: Mapping[str, Sequence[str]] | None = None,
            content: Mapping[str, Mapping[str, float]] | None = None, run_id: str | None = None,
            round_no: int | None = None, template_id: str | None = None, mc_mode: str = "loglik",
            sh_respondents: int = 200, sh_rmax: float = 0.2, wait_s: float = DEFAULT_WAIT_S,
            on_wait: Callable[[str], None] | None = None) -> CatReport:
    """Administer one adaptive test to ``model`` through ``backend`` and store it as a ``cat`` run.

    ``filters`` (``{key: [values]}``, ``adt.flags.parse_filters``) selects the slice to test from;
    ``content`` (``{key: {value: share}}``) the content-balancing targets. ``seed`` drives item selection
    (drawn and recorded when None); the run id defaults to ``cat:MODEL:RANDOM``.
    """
    t_start = time.perf_counter()
    bank_path = Path(bank_path)
    if exposure not in EXPOSURE_CHOICES:
        raise InputError(f"--exposure-control {exposure!r}: use one of {', '.join(EXPOSURE_CHOICES)}")
    args = dict(backend_args or {})
    seed = int(np.random.SeedSequence().entropy % (2**63)) if seed is None else int(seed)  # type: ignore[operator]
    rng = np.random.default_rng(seed)
    run_id = run_id or f"cat:{model}:{uuid.uuid4().hex[:10]}"
    flt = {str(k): [str(v) for v in vs] for k, vs in (filters or {}).items()}
    targets = {str(k): {str(v): float(f) for v, f in amounts.items()} for k, amounts in (content or {}).items()}

    with open_bank(bank_path, wait_s=wait_s, purpose=f"adt cat {model}: setup", on_wait=on_wait) as bank:
        items = bank.items(flt or None)
        cid: str | None
        if params_file is not None:
            frame = read_table(params_file, "--params")
            check_columns(frame, f"--params {params_file}")
            cid = "file:" + hashlib.sha256(Path(params_file).read_bytes()).hexdigest()[:16]
        else:
            cid, frame = load_parameters(bank, calibration_id)
            if frame is None:
                raise CalibrationError("adt cat needs calibrated item parameters: run `adt calibrate`, or give "
                                       "--params FILE (item_id, a, b[, c, d])")
        frame = frame[frame["item_id"].isin(items["item_id"])].dropna(subset=["a", "b"])
        frame = frame.sort_values("item_id", kind="stable").reset_index(drop=True)
        aliases = bank.aliases_for(frame["item_id"], str(args["source"])) if backend == "replay" and "source" in args \
            else None
    make_request = request_maker(items, template_id, mc_mode)
    loop = RunLoop(bank_path, run_id, backend, command="adt cat", resumable=False, ingest_wait_s=INGEST_WAIT_S,
                   ingest_every_s=INGEST_EVERY_S)
    with make_runner(backend, backend_kwargs(backend, args, model, aliases)) as runner:
        if backend == "replay":
            answered = _replay_answered(runner, [make_request(i) for i in frame["item_id"]])
            frame = frame[frame["item_id"].isin(answered)].reset_index(drop=True)
        if frame.empty:
            raise InputError("no items with item parameters to test from" + (f" in the slice {flt}" if flt else "")
                             + (f" that model {model!r} answered in the replay record" if backend == "replay" else ""))
        params = params_from_frame(frame, f"--params {params_file}" if params_file else f"calibration {cid}")
        content_frame = items.set_index("item_id").loc[list(params.item_ids)].reset_index() if targets else None
        base = CatConfig(max_items=max_items, se_target=se_target, exposure="randomesque" if exposure == "randomesque"
                         else "none", top_k=top_k, content_targets=CatConfig.content(targets))
        config = base
        if exposure == "sympson-hetter":
            thetas = rng.normal(base.prior_mean, base.prior_sd, size=sh_respondents)
            k, _ = calibrate_sympson_hetter(params, base, thetas, rng, r_max=sh_rmax, content=content_frame)
            config = CatConfig(**{**base.__dict__, "exposure": "sympson-hetter", "exposure_params": k})
        session = AdaptiveTest(params, config, content_frame).session(rng)
        with loop.locked():
            with open_bank(bank_path, wait_s=wait_s, purpose=f"adt cat {run_id}: start", on_wait=on_wait) as bank:
                bank.start_run(run_id, model=model, kind="cat", round_no=round_no, backend=backend,
                               config=public_config(backend, args, calibration_id=cid, max_items=max_items,
                                                    se_target=se_target, exposure_control=exposure, top_k=top_k,
                                                    seed=seed, filters=flt, content=targets, mc_mode=mc_mode,
                                                    template_id=template_id))
            with loop.marking_failed():
                loop.score(runner, _CatFeed(session, make_request, backend))
            _, n_responses = loop.finish(wait_s, on_wait)
    result = session.result()
    theta, se = final_estimate(result, params, config)
    out = CatReport(run_id, model, backend, cid, exposure, theta, se, theta - 1.959964 * se, theta + 1.959964 * se,
                    result.n_items, result.stop_reason, result.item_ids, result.scores, result.se_path, len(params),
                    n_responses, seed, time.perf_counter() - t_start)
    if params_file is None and cid is not None and result.n_items:
        # The reported ability and accuracy are `adt estimate`'s: parameter error, misfit, person fit.
        with open_bank(bank_path, wait_s=wait_s, purpose=f"adt cat {run_id}: estimate", on_wait=on_wait) as bank:
            pm = predictive_model(bank, load_calibration(bank, cid))
        pred = predict(pm, pd.Series(result.scores, index=list(result.item_ids)), list(items["item_id"]))
        out = replace(out, theta=pred.theta, se=pred.se, lo=pred.lo, hi=pred.hi, pred_acc=pred.pred_acc,
                      pred_lo=pred.pred_lo, pred_hi=pred.pred_hi, extrapolated=pred.extrapolated,
                      sources=pred.sources, seconds=time.perf_counter() - t_start)
    return out
