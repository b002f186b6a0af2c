"""``adt cat``: an adaptive test of one model through any registered runner backend.

Item parameters come from a calibration in the bank (``--calibration``, default the latest; only items
the calibration estimated take part) or from a parameter file (``--params``: ``item_id, a, b`` and
optional ``c``, ``d``). The test (``sampler.AdaptiveTest``: maximum information at the current EAP,
optional randomesque or Sympson-Hetter exposure control, content balancing over ``--content`` targets)
asks the backend one item at a time. The bank is held only to set the run up and to store it: each
answer goes to the run's spool (``itembank.spool``), ingested in short transactions as the test goes
and at the end, as ``adt run`` does. The run is stored with kind ``cat``; its responses count as
exposure like any other run's. A backend failure marks the run failed and keeps the answers so far.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import click
import numpy as np
import pandas as pd
import pyarrow as pa

from adt.cli import Context, cli, emit, parse_filters, pass_ctx
from adt.workflow.calibrate import predictive_model
from adt.workflow.forms import load_parameters
from adt.workflow.run import RESULT_SCHEMA, _backend_kwargs, _public_config
from adtbase.errors import AdtError, BankBusy, CalibrationError, InputError, RunnerError
from calibration.irt import ItemParams
from calibration.predictive import predict
from calibration.store import load_calibration
from itembank import DEFAULT_WAIT_S, open_bank, spool
from runners import registry
from runners.base import Request, Result, check_results
from runners.templates import build_request
from sampler import AdaptiveTest, CatConfig, calibrate_sympson_hetter, parse_quota_flag
from sampler.cat import final_estimate

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


def read_params_file(path: Path) -> pd.DataFrame:
    """``item_id, a, b[, c, d]`` from CSV, Parquet or JSON records."""
    if not path.is_file():
        raise InputError(f"--params {path}: no such file")
    try:
        frame = (pd.read_csv(path) if path.suffix == ".csv" else pd.read_json(path) if path.suffix == ".json"
                 else pd.read_parquet(path))
    except Exception as exc:  # pandas/pyarrow raise many types for unreadable files
        raise InputError(f"--params {path}: not readable ({exc})") from None
    missing = [c for c in ("item_id", "a", "b") if c not in frame.columns]
    if missing:
        raise InputError(f"--params {path}: missing column(s) {missing} (has {list(frame.columns)})")
    return frame


def _item_params(frame: pd.DataFrame, source: str) -> ItemParams:
    """ItemParams of the rows with finite a and b (c defaults to 0, d to 1)."""
    c = frame["c"].fillna(0.0) if "c" in frame.columns else pd.Series(0.0, index=frame.index)
    d = frame["d"].fillna(1.0) if "d" in frame.columns else pd.Series(1.0, index=frame.index)
    a, b = frame["a"].to_numpy(dtype=float), frame["b"].to_numpy(dtype=float)
    bad = ~((a > 0) & np.isfinite(b) & (c.to_numpy() >= 0) & (c.to_numpy() < d.to_numpy()) & (d.to_numpy() <= 1))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(f"{source}: item {frame['item_id'].iat[i]}: parameters need a > 0, finite b and "
                         f"0 <= c < d <= 1")
    return ItemParams(tuple(str(i) for i in frame["item_id"]), a, b, c.to_numpy(dtype=float), d.to_numpy(dtype=float))


class _SpoolingRunner:
    """Passes each request to the backend and puts every answer in the run's spool as it comes."""

    def __init__(self, runner: Any, backend: str, bank_path: Path, run_id: str) -> None:
        self.runner, self.backend, self.bank_path, self.run_id = runner, backend, bank_path, run_id
        self.writer = spool.SpoolWriter(bank_path, run_id)
        self.last_ingest = time.perf_counter()

    def score(self, requests: Sequence[Request]) -> list[Result]:
        try:
            results = check_results(requests, self.runner.score(requests), self.backend)
        except AdtError:
            raise
        except Exception as exc:  # a backend's own failure: say which backend
            raise RunnerError(f"backend {self.backend!r} failed: {type(exc).__name__}: {exc}") from exc
        for q, r in zip(requests, results, strict=True):
            if not r.ok:
                raise RunnerError(f"backend {self.backend!r}: item {r.item_id}: {r.error}")
            row = {"item_id": r.item_id, "score": float(r.score), "raw_output": r.raw_output, "extracted": r.extracted,
                   "template_id": q.template_id, "prompt_hash": q.prompt_hash,
                   "choice_logliks": None if r.choice_logliks is None else list(r.choice_logliks),
                   "tokens_in": int(r.tokens_in), "tokens_out": int(r.tokens_out), "latency_s": float(r.latency_s)}
            self.writer.write(pa.Table.from_pylist([row], schema=RESULT_SCHEMA))
        if time.perf_counter() - self.last_ingest >= INGEST_EVERY_S:
            try:
                with open_bank(self.bank_path, wait_s=INGEST_WAIT_S, purpose=f"adt cat {self.run_id}: ingest") as bank:
                    spool.ingest(bank, [self.run_id])
            except BankBusy:
                pass  # the answers wait in the spool for the next try
            self.last_ingest = time.perf_counter()
        return results


def _replay_answered(runner: Any, requests: Sequence[Request]) -> set[str]:
    """Items a replayed model has a recorded answer for (replay answers are fixed: asking is free)."""
    return {r.item_id for r in runner.score(list(requests)) if r.error != "missing"}


def run_cat(bank_path: str | Path, model: str, backend: str, backend_args: Mapping[str, Any] | None = None, *,
            max_items: int = 50, se_target: float | None = 0.3, seed: int | None = None,
            calibration_id: str | None = None, params_file: Path | None = None, exposure: str = "none",
            top_k: int = 5, filters: Sequence[str] = (), content: Sequence[str] = (), run_id: str | None = None,
            round_no: int | None = None, template_id: str | None = None, mc_mode: str = "loglik",
            sh_respondents: int = 200, sh_rmax: float = 0.2, wait_s: float = DEFAULT_WAIT_S,
            on_wait: Any = None) -> CatReport:
    """Administer one adaptive test to ``model`` through ``backend`` and store it as a ``cat`` run."""
    t_start = time.perf_counter()
    bank_path = Path(bank_path)
    if exposure not in EXPOSURE_CHOICES:
        raise InputError(f"--exposure-control {exposure!r}: use one of {', '.join(EXPOSURE_CHOICES)}")
    args = dict(backend_args or {})
    seed = int(np.random.SeedSequence().entropy % (2**63)) if seed is None else int(seed)  # type: ignore[operator]
    rng = np.random.default_rng(seed)
    run_id = run_id or f"cat:{model}:{uuid.uuid4().hex[:10]}"
    flt = parse_filters(filters)
    targets = {k: {v: float(f) for v, f in amounts.items()} for k, amounts in map(parse_quota_flag, content)}

    with open_bank(bank_path, wait_s=wait_s, purpose=f"adt cat {model}: setup", on_wait=on_wait) as bank:
        items = bank.items(flt or None)
        cid: str | None
        if params_file is not None:
            frame = read_params_file(Path(params_file))
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
    rows = {str(r["item_id"]): r for r in items.to_dict("records")}
    for r in rows.values():
        if isinstance(r.get("choices"), np.ndarray):
            r["choices"] = r["choices"].tolist()

    def make_request(item_id: str) -> Request:
        return build_request(rows[item_id], template_id, mc_mode=mc_mode)  # type: ignore[arg-type]

    kwargs = _backend_kwargs(backend, args, model, aliases)
    if ":" in backend:
        registry.register(backend, backend)
    with registry.create(backend, **kwargs) as runner:
        if backend == "replay":
            answered = _replay_answered(runner, [make_request(i) for i in frame["item_id"]])
            frame = frame[frame["item_id"].isin(answered)].reset_index(drop=True)
        if frame.empty:
            raise InputError("no items with item parameters to test from" + (f" in the slice {flt}" if flt else "")
                             + (f" that model {model!r} answered in the replay record" if backend == "replay" else ""))
        params = _item_params(frame, str(params_file) if params_file else f"calibration {cid}")
        content_frame = items.set_index("item_id").loc[list(params.item_ids)].reset_index() if targets else None
        base = CatConfig(max_items=max_items, se_target=se_target, exposure="randomesque" if exposure == "randomesque"
                         else "none", top_k=top_k, content_targets=CatConfig.content(targets))
        config = base
        if exposure == "sympson-hetter":
            thetas = rng.normal(base.prior_mean, base.prior_sd, size=sh_respondents)
            k, _ = calibrate_sympson_hetter(params, base, thetas, rng, r_max=sh_rmax, content=content_frame)
            config = CatConfig(**{**base.__dict__, "exposure": "sympson-hetter", "exposure_params": k})
        test = AdaptiveTest(params, config, content_frame)
        with open_bank(bank_path, wait_s=wait_s, purpose=f"adt cat {run_id}: start", on_wait=on_wait) as bank:
            bank.start_run(run_id, model=model, kind="cat", round_no=round_no, backend=backend,
                           config=_public_config(backend, args, calibration_id=cid, max_items=max_items,
                                                 se_target=se_target, exposure_control=exposure, top_k=top_k,
                                                 seed=seed, filters=flt, content=targets, mc_mode=mc_mode,
                                                 template_id=template_id))
        try:
            result = test.run(_SpoolingRunner(runner, backend, bank_path, run_id), make_request, rng)
        except BaseException as exc:
            kept = _finish(bank_path, run_id, "failed", 5.0, None)
            if isinstance(exc, AdtError):
                raise type(exc)(f"{exc}; run {run_id!r} marked failed with {kept} responses kept") from exc
            raise
    n_responses = _finish(bank_path, run_id, "finished", wait_s, on_wait)
    theta, se = final_estimate(result, params, config)
    out = CatReport(run_id, model, backend, cid, exposure, theta, se, theta - 1.959964 * se, theta + 1.959964 * se,
                    result.n_items, result.stop_reason, result.item_ids, result.scores, result.se_path, len(params),
                    int(n_responses or 0), seed, time.perf_counter() - t_start)
    if params_file is None and cid is not None and result.n_items:
        # The reported ability and accuracy are `adt estimate`'s: parameter error, misfit, person fit.
        with open_bank(bank_path, wait_s=wait_s, purpose=f"adt cat {run_id}: estimate", on_wait=on_wait) as bank:
            pm = predictive_model(bank, load_calibration(bank, cid))
        pred = predict(pm, pd.Series(result.scores, index=list(result.item_ids)), list(items["item_id"]))
        out = replace(out, theta=pred.theta, se=pred.se, lo=pred.lo, hi=pred.hi, pred_acc=pred.pred_acc,
                      pred_lo=pred.pred_lo, pred_hi=pred.pred_hi, extrapolated=pred.extrapolated,
                      sources=pred.sources, seconds=time.perf_counter() - t_start)
    return out


def _finish(bank_path: Path, run_id: str, status: str, wait_s: float, on_wait: Any) -> int | None:
    """Ingest what the spool holds and mark the run; the number of responses stored (None: bank busy)."""
    try:
        with open_bank(bank_path, wait_s=wait_s, purpose=f"adt cat {run_id}: {status}", on_wait=on_wait) as bank:
            spool.ingest(bank, [run_id], cleanup_later=True)
            bank.finish_run(run_id, status)
            n = len(bank.answered(run_id))
    except BankBusy:
        if status == "failed":
            return None
        raise
    spool.cleanup(bank_path, run_id)
    return n


@cli.command("cat")
@click.option("--model", required=True, help="The model's name in the bank (and, for replay, in the record).")
@click.option("--backend", required=True,
              help=f"One of {', '.join(registry.available())}, or a Runner class as package.module:Class.")
@click.option("--backend-arg", "backend_args", multiple=True, metavar="K=V",
              help="Backend argument (repeatable), as for `adt run` (simulated: theta=, params=FILE, rng=SEED; "
                   "replay: path=FILE, source=NAME).")
@click.option("--max-items", type=int, default=50, show_default=True)
@click.option("--se-target", type=float, default=0.3, show_default=True, help="Stop once the SE is at most this.")
@click.option("--seed", type=int, default=None, help="Seed of item selection (drawn and recorded when not given).")
@click.option("--calibration", "calibration_id", default=None, help="Calibration to test with (default: latest).")
@click.option("--params", "params_file", type=click.Path(path_type=Path), default=None,
              help="Item parameters from a file (item_id, a, b[, c, d]) instead of a calibration.")
@click.option("--exposure-control", "exposure", type=click.Choice(EXPOSURE_CHOICES), default="none",
              show_default=True)
@click.option("--top-k", type=int, default=5, show_default=True, help="Randomesque: pick among the k best items.")
@click.option("--sh-rmax", type=float, default=0.2, show_default=True,
              help="Sympson-Hetter: target maximum exposure rate.")
@click.option("--sh-respondents", type=int, default=200, show_default=True,
              help="Sympson-Hetter: simulated respondents per calibration iteration.")
@click.option("--filter", "filters", multiple=True, metavar="KEY=VALUE", help="Item slice to test from (repeatable).")
@click.option("--content", multiple=True, metavar="KEY=VAL:FRAC,...", help="Content-balancing targets (repeatable).")
@click.option("--run", "run_id", default=None, help="Run id (default cat:MODEL:RANDOM).")
@click.option("--round", "round_no", type=int, default=None)
@click.option("--template", "template_id", default=None, help="Prompt template id (default per item).")
@click.option("--mc-mode", type=click.Choice(["loglik", "generate"]), default="loglik", show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def cat(ctx: Context, model: str, backend: str, backend_args: tuple[str, ...], max_items: int, se_target: float,
        seed: int | None, calibration_id: str | None, params_file: Path | None, exposure: str, top_k: int,
        sh_rmax: float, sh_respondents: int, filters: tuple[str, ...], content: tuple[str, ...], run_id: str | None,
        round_no: int | None, template_id: str | None, mc_mode: str, as_json: bool) -> None:
    """Adaptive test of MODEL: ability, SE, 95% interval and the items used."""
    report = run_cat(ctx.bank_path, model, backend, registry.parse_backend_args(backend_args), max_items=max_items,
                     se_target=se_target, seed=seed, calibration_id=calibration_id, params_file=params_file,
                     exposure=exposure, top_k=top_k, filters=filters, content=content, run_id=run_id,
                     round_no=round_no, template_id=template_id, mc_mode=mc_mode, sh_respondents=sh_respondents,
                     sh_rmax=sh_rmax, wait_s=ctx.wait_s, on_wait=lambda msg: click.echo(msg, err=True))
    emit(report.as_dict(), as_json, None if as_json else (
        f"model {model}: ability {report.theta:.3f}, SE {report.se:.3f}, 95% interval [{report.lo:.3f}, "
        f"{report.hi:.3f}]" + (f"; predicted accuracy on the slice {report.pred_acc:.1%} ({report.pred_lo:.1%}-"
                                f"{report.pred_hi:.1%})" + (" [EXTRAPOLATED]" if report.extrapolated else "")
                                if np.isfinite(report.pred_acc) else "")
        + f"\n  {report.n_items} items used of {report.n_pool} (stop: {report.stop_reason}; "
        f"exposure control {report.exposure_control}), calibration {report.calibration_id}, run {report.run_id}\n"
        f"  items: {', '.join(report.item_ids)}"))
