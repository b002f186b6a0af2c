"""Plots for analysts and auditors: pure functions from arrays and frames to matplotlib figures.

Each ``*_figure`` builds a Figure (Agg backend, no display) and touches no file; ``save`` writes it
as PNG or SVG by the file's suffix. IRT curves come from ``calibration.irt`` only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from adtbase.errors import InputError
from calibration import ItemParams, expected_score, prob, test_information

FORMATS = (".png", ".svg")
THETA_GRID = np.linspace(-4.0, 4.0, 161)
Z95 = 1.959963984540054


def _figure(width: float, height: float) -> Any:
    # The object-oriented API with the Agg canvas: no pyplot state, safe in threads and servers.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save(fig: Any, out: str | Path) -> Path:
    """Write ``fig`` as PNG or SVG (chosen by the suffix); returns the path."""
    out = Path(out)
    if out.suffix.lower() not in FORMATS:
        raise InputError(f"--out {out}: use a .png or .svg file name")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format=out.suffix.lower()[1:])
    return out


# -- abilities ------------------------------------------------------------------------------------
def ability_figure(models: Sequence[str], theta: ArrayLike, lo: ArrayLike, hi: ArrayLike, *,
                   title: str = "Ability (95% interval)", sort: bool = True) -> Any:
    """Forest plot: one row per model, the estimate with its interval; highest ability on top."""
    names = [str(m) for m in models]
    t, low, high = (np.asarray(x, dtype=float) for x in (theta, lo, hi))
    if not (len(names) == len(t) == len(low) == len(high)) or not names:
        raise InputError(f"ability plot: {len(names)} models, {len(t)} thetas, {len(low)} lows, {len(high)} highs; "
                         f"need the same non-zero number of each")
    bad = ~np.isfinite(t) | (low > t + 1e-9) | (high < t - 1e-9)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(f"ability plot: model {names[i]!r}: theta {t[i]} is not inside [{low[i]}, {high[i]}]")
    order = np.argsort(t, kind="stable") if sort else np.arange(len(t))[::-1]
    y = np.arange(len(order))
    fig = _figure(7.0, 1.2 + 0.32 * len(order))
    ax = fig.add_subplot()
    xerr = np.vstack([t[order] - low[order], high[order] - t[order]])
    ax.errorbar(t[order], y, xerr=xerr, fmt="o", color="#1f4e79", ecolor="#6b8fb3", capsize=3, markersize=5)
    ax.set_yticks(y, [names[i] for i in order])
    ax.set_xlabel("ability (theta)")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    return fig


def intervals_from_se(theta: ArrayLike, se: ArrayLike, level: float = 0.95) -> tuple[NDArray, NDArray]:
    """Normal intervals theta +- z * se, for sources that give only standard errors."""
    from scipy.stats import norm

    z = float(norm.ppf(0.5 + level / 2))
    t, s = np.asarray(theta, dtype=float), np.asarray(se, dtype=float)
    return t - z * s, t + z * s


# -- forms: test information and expected score --------------------------------------------------------
def information_figure(forms: Mapping[str, ItemParams], *, theta: ArrayLike = THETA_GRID,
                       title: str = "Test information and expected score") -> Any:
    """Two panels over theta: each form's test information (with its SE scale) and expected score."""
    if not forms:
        raise InputError("information plot: no forms given")
    grid = np.asarray(theta, dtype=float)
    fig = _figure(9.0, 4.0)
    info_ax, score_ax = fig.subplots(1, 2)
    for name, params in forms.items():
        if len(params) == 0:
            raise InputError(f"information plot: form {name!r} has no items with parameters")
        info = test_information(grid, params)
        info_ax.plot(grid, info, label=f"{name} ({len(params)} items)")
        score_ax.plot(grid, expected_score(grid, params), label=name)
    info_ax.set_xlabel("theta")
    info_ax.set_ylabel("test information")
    info_ax.set_title("information (SE = 1 / sqrt(I))")
    info_ax.grid(alpha=0.3)
    info_ax.legend(fontsize="small", loc="upper left")  # the tails are low: the peak stays clear
    score_ax.set_xlabel("theta")
    score_ax.set_ylabel("expected proportion correct")
    score_ax.set_ylim(0, 1)
    score_ax.set_title("expected score")
    score_ax.grid(alpha=0.3)
    fig.suptitle(title)
    return fig


# -- items: characteristic curves with observed proportions --------------------------------------------
def observed_proportions(theta: ArrayLike, item_ids: Sequence[str], scores: ArrayLike, *, bins: int = 6,
                         min_count: int = 1) -> pd.DataFrame:
    """Observed proportion correct per item in ability bins (equal-count bins of the responders' theta).

    ``theta``, ``item_ids`` and ``scores`` are aligned, one entry per response (theta of the model
    that answered). Returns item_id, theta (bin mean), p (mean score), n, lo, hi (Wilson 95%).
    """
    t = np.asarray(theta, dtype=float)
    s = np.asarray(scores, dtype=float)
    ids = np.asarray(item_ids, dtype=object)
    if not (len(t) == len(s) == len(ids)):
        raise InputError(f"observed proportions: {len(t)} thetas, {len(ids)} item ids, {len(s)} scores")
    if bins < 1:
        raise InputError("observed proportions: bins must be at least 1")
    frame = pd.DataFrame({"item_id": ids, "theta": t, "score": s}).dropna()
    if frame.empty:
        return pd.DataFrame(columns=["item_id", "theta", "p", "n", "lo", "hi"])
    edges = np.unique(np.quantile(frame["theta"], np.linspace(0, 1, bins + 1)))
    frame["bin"] = np.clip(np.searchsorted(edges, frame["theta"], side="right") - 1, 0, max(len(edges) - 2, 0))
    out = frame.groupby(["item_id", "bin"], sort=True).agg(theta=("theta", "mean"), p=("score", "mean"),
                                                            n=("score", "size")).reset_index()
    out = out[out["n"] >= min_count].drop(columns="bin").reset_index(drop=True)
    n, p = out["n"].to_numpy(float), out["p"].to_numpy(float)
    centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
    half = Z95 * np.sqrt(p * (1 - p) / n + Z95**2 / (4 * n**2)) / (1 + Z95**2 / n)
    out["lo"], out["hi"] = centre - half, centre + half
    return out


def icc_figure(params: ItemParams, *, observed: pd.DataFrame | None = None, theta: ArrayLike = THETA_GRID,
               labels: Mapping[str, str] | None = None, max_items: int = 24,
               title: str = "Item characteristic curves") -> Any:
    """One small panel per item: the fitted curve and, if given, observed proportions by ability bin."""
    n = len(params)
    if n == 0:
        raise InputError("icc plot: no items")
    if n > max_items:
        raise InputError(f"icc plot: {n} items; at most {max_items} fit on one figure (pick the flagged ones)")
    grid = np.asarray(theta, dtype=float)
    cols = min(4, n)
    rows = int(np.ceil(n / cols))
    fig = _figure(3.0 * cols, 2.4 * rows + 0.4)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for k, item_id in enumerate(params.item_ids):
        ax = axes[k]
        ax.plot(grid, prob(grid, params.a[k], params.b[k], params.c[k], params.d[k]), color="#1f4e79")
        if observed is not None:
            obs = observed[observed["item_id"] == item_id]
            if len(obs):
                yerr = np.vstack([obs["p"] - obs["lo"], obs["hi"] - obs["p"]]) if {"lo", "hi"} <= set(obs) else None
                ax.errorbar(obs["theta"], obs["p"], yerr=yerr, fmt="o", color="#c0504d", markersize=4, capsize=2)
        label = (labels or {}).get(item_id, "")
        ax.set_title(f"{item_id}" + (f"\n{label}" if label else ""), fontsize="small")
        ax.text(0.02, 0.97, f"a={params.a[k]:.2f} b={params.b[k]:.2f}\nc={params.c[k]:.2f} d={params.d[k]:.2f}",
                transform=ax.transAxes, va="top", fontsize="x-small")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    for ax in axes[n:]:
        ax.set_visible(False)
    fig.suptitle(title)
    return fig


# -- the bank: exposure ---------------------------------------------------------------------------------
EXPOSURE_BARS = 40  # at most this many bars per panel: wider count ranges are binned by whole numbers


def exposure_bins(counts: ArrayLike, *, max_bars: int = EXPOSURE_BARS) -> pd.DataFrame:
    """Items per exposure count, the data of one ``exposure_figure`` panel: one row per count that occurs
    (lo = hi = the count) while they span at most ``max_bars`` whole numbers, else whole-number bins of
    equal width from 0 (lo..hi inclusive; empty bins left out). Columns lo, hi, items."""
    c = np.asarray(counts, dtype=np.int64)
    if c.size == 0:
        return pd.DataFrame({"lo": [], "hi": [], "items": []}, dtype=np.int64)
    top = int(c.max())
    if top + 1 <= max_bars:
        values, freq = np.unique(c, return_counts=True)
        return pd.DataFrame({"lo": values, "hi": values, "items": freq})
    width = int(np.ceil((top + 1) / max_bars))
    k, freq = np.unique(c // width, return_counts=True)
    return pd.DataFrame({"lo": k * width, "hi": np.minimum(k * width + width - 1, top), "items": freq})


def exposure_figure(exposure_runs: ArrayLike, exposure_publications: ArrayLike, *,
                    high_runs: int | None = None, title: str = "Item exposure") -> Any:
    """Items by number of exposures (runs and publications), side by side: a bar per count on a
    whole-number axis from 0 (binned beyond EXPOSURE_BARS counts). A panel whose items all share one
    count says so in words instead of drawing a single bar."""
    from matplotlib.ticker import MaxNLocator

    runs = np.asarray(exposure_runs, dtype=np.int64)
    pubs = np.asarray(exposure_publications, dtype=np.int64)
    if runs.shape != pubs.shape or runs.size == 0:
        raise InputError("exposure plot: need the same non-zero number of run and publication counts")
    fig = _figure(9.0, 3.6)
    run_ax, pub_ax = fig.subplots(1, 2)
    for ax, counts, what in ((run_ax, runs, "runs"), (pub_ax, pubs, "publications")):
        never = int((counts == 0).sum())
        ax.set_title(f"exposure by {what}\n({never:,} of {counts.size:,} never)", fontsize="medium")
        if int(counts.min()) == int(counts.max()):
            only = int(counts[0])
            ax.text(0.5, 0.5, f"all {counts.size:,} items: {only} {what}\n(no spread to plot)", ha="center",
                    va="center", transform=ax.transAxes, fontsize="large", color="#33475b")
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        bins = exposure_bins(counts)
        width = (bins["hi"] - bins["lo"] + 1).to_numpy(float)
        ax.bar(bins["lo"].to_numpy(float) + (width - 1) / 2, bins["items"], width=0.8 * width, color="#1f4e79")
        ax.set_xlim(-0.6, float(bins["hi"].max()) + 0.6)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel(f"number of {what} that exposed the item"
                      + ("" if (bins["lo"] == bins["hi"]).all() else f" (bins of {int(width[0])})"))
        ax.set_ylabel("items")
        ax.grid(axis="y", alpha=0.3)
    if high_runs is not None and int(runs.min()) != int(runs.max()):
        run_ax.axvline(high_runs + 0.5, color="#c0504d", linestyle="--", label=f"high tier above {high_runs}")
        run_ax.set_xlim(right=max(run_ax.get_xlim()[1], high_runs + 1.1))
        run_ax.legend(fontsize="small")
    fig.suptitle(title)
    return fig


# -- validation study ---------------------------------------------------------------------------------
def validation_figure(summary: pd.DataFrame, *, title: str = "Held-out validation") -> Any:
    """Per split, two panels against form size, one colour per strategy: the MAE of the predicted accuracy
    (solid), of the raw accuracy of the same items (dashed) and of the regression baseline (dotted); and
    the coverage of the 95% predictive intervals with its model-bootstrap interval, the 0.95 target dashed.
    ``summary``: the rows of ``calibration.validation.summarize``."""
    need = ("split", "strategy", "form_size", "mae_pred", "mae_raw", "mae_regression", "coverage", "coverage_lo",
            "coverage_hi")
    missing = [c for c in need if c not in summary.columns]
    if missing or summary.empty:
        raise InputError(f"validation plot: {'no rows' if summary.empty else f'missing column(s) {missing}'}")
    splits = list(dict.fromkeys(summary["split"]))
    strategies = list(dict.fromkeys(summary["strategy"]))
    colours = ["#1f4e79", "#c0504d", "#4f8f3a", "#8064a2", "#d08b2c", "#2c9fa8"]
    fig = _figure(10.0, 1.0 + 3.0 * len(splits))
    axes = fig.subplots(len(splits), 2, squeeze=False)
    for row, split in enumerate(splits):
        ax_mae, ax_cov = axes[row]
        for k, strategy in enumerate(strategies):
            d = summary[(summary["split"] == split) & (summary["strategy"] == strategy)].sort_values("form_size")
            if d.empty:
                continue
            x = d["form_size"].to_numpy(dtype=float)
            col = colours[k % len(colours)]
            ax_mae.plot(x, d["mae_pred"], "-o", color=col, label=f"{strategy}: predicted")
            ax_mae.plot(x, d["mae_raw"], "--s", color=col, alpha=0.7, label=f"{strategy}: raw")
            ax_mae.plot(x, d["mae_regression"], ":^", color=col, alpha=0.7, label=f"{strategy}: regression")
            cov = d["coverage"].to_numpy(dtype=float)
            err = np.vstack([np.clip(cov - d["coverage_lo"].to_numpy(dtype=float), 0, None),
                             np.clip(d["coverage_hi"].to_numpy(dtype=float) - cov, 0, None)])
            ax_cov.errorbar(x + 0.01 * k * x, cov, yerr=np.nan_to_num(err), fmt="-o", color=col, capsize=3,
                            label=strategy)
        ax_cov.axhline(0.95, color="#777777", linestyle="--", linewidth=1)
        ax_mae.set_title(f"{split}: mean absolute error of the accuracy")
        ax_cov.set_title(f"{split}: coverage of the 95% intervals")
        ax_mae.set_xlabel("form size (items)")
        ax_cov.set_xlabel("form size (items)")
        ax_mae.set_ylabel("MAE")
        ax_cov.set_ylabel("coverage (model bootstrap)")
        lows = summary.loc[summary["split"] == split, ["coverage", "coverage_lo"]].to_numpy(dtype=float)
        floor = float(np.nanmin(lows)) if np.isfinite(lows).any() else 0.0
        ax_cov.set_ylim(max(0.0, min(0.85, floor) - 0.05), 1.02)
        # Ticks at the form sizes studied (one size drew 96..104 and 100.0..101.0 axes: the strategies'
        # 1% offset read as a form of 101 items).
        sizes = sorted({float(v) for v in summary.loc[summary["split"] == split, "form_size"]})
        for ax in (ax_mae, ax_cov):
            ax.set_xticks(sizes, [f"{v:g}" for v in sizes])
            if len(sizes) == 1:
                ax.set_xlim(0.85 * sizes[0], 1.15 * sizes[0] + 1)
            ax.grid(alpha=0.3)
        ax_mae.legend(fontsize=7)
        ax_cov.legend(fontsize=7)
    fig.suptitle(title)
    return fig


# -- bank health (adt.workflow.health) ------------------------------------------------------------------
def health_figure(projection: pd.DataFrame, *, title: str = "Projected supply per slice vs demand") -> Any:
    """Projected supply (solid) of each slice over rounds against its demand per round (dashed, same colour):
    ``projection`` is ``adt.workflow.health.project``'s frame (``round, key, value, supply, demand``). A slice
    runs out where its solid line crosses below its dashed one."""
    need = {"round", "key", "value", "supply", "demand"}
    if not need <= set(projection.columns) or projection.empty:
        raise InputError("health plot: need a non-empty projection with round, key, value, supply and demand")
    fig = _figure(8.0, 4.6)
    ax = fig.subplots()
    colours = [f"C{i % 10}" for i in range(projection.groupby(["key", "value"]).ngroups)]
    for colour, ((key, value), g) in zip(colours, projection.groupby(["key", "value"], sort=False), strict=True):
        g = g.sort_values("round")
        ax.plot(g["round"], g["supply"], color=colour, label=f"{key}={value}")
        ax.plot(g["round"], g["demand"], color=colour, linestyle="--", linewidth=1)
    ax.set_yscale("symlog", linthresh=10)
    ax.set_xlabel("round (supply left for the next round's form)")
    ax.set_ylabel("items (dashed: needed per round)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", ncol=2)
    ax.set_title(title)
    return fig


# -- inputs (files are read by adt.paramfile) ---------------------------------------------------------
def subset_params(params: ItemParams, item_ids: Sequence[str]) -> tuple[ItemParams, list[str]]:
    """The parameters of ``item_ids`` (in that order) and the ids that have none."""
    pos = {k: i for i, k in enumerate(params.item_ids)}
    have = [pos[i] for i in item_ids if i in pos]
    return params.subset(np.asarray(have, dtype=np.int64)), [i for i in item_ids if i not in pos]
