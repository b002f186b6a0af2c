"""Ten rounds of the item lifecycle with known truth (issue 14, must show: recovery, ten rounds of lifecycle).

The world (seeded; the only part that is not the product): a bank of ``--items`` (20,000) multiple-choice items
with true 2PL parameters (a ~ lognormal(0, 0.3), b ~ N(0, 1)) in five ``domain`` tags, growing by ``--growth``
(1,000) new items a round; ``--models`` (300) simulated models with theta ~ N(0, 1) who take every round's form;
a field test before round 1 (``--field-models`` other models) that calibrated the starting bank: most items
answered ``--field-n`` (100) times, ``--field-medium`` items 400 and ``--field-high`` items 700 times, so the
bank starts in service with fresh, medium and high-exposure items. Answers are Bernoulli draws from the true
curves, stored as runs on the round's form (``Bank.start_run`` / ``ingest_many``: what ``adt run`` stores).

Everything else is the product, through its commands (``adt`` in-process, via click): ``adt calibrate`` (the
field test, then the lifecycle promotes what it calibrated), and each round
  1. ``adt bank import`` of the round's new items (stage pretest);
  2. ``adt sample --spec`` one 500-item form: frequency tiers low/medium/high 10/40/50 %, difficulty bands
     hard/medium/easy 30/40/30 % on the operational part, 10 % pretest items (``pretest.share: 0.1``), and
     ``adt form publish`` in round r (as ``adt round`` does);
  3. every model answers it (the world);
  4. ``adt calibrate --online`` (pretest items on the operational scale, MEM, operational items fixed);
  5. ``adt bank lifecycle --round r`` (promote, rest, retire by the bank's rules);
  6. ``adt bank health --spec`` (supply per slice, rounds left).
Settings (``adt bank settings``): tier_low_runs 100 (a field-tested item is still fresh), tier_high_runs 600,
tier_high_publications 1 (the default: published in two rounds is high), and the lifecycle rules' defaults.

Figures: per round the composition check (each quota exact), promoted / pretested share, rested, retired,
RMSE(b), RMSE(a) of the promoted items vs the truth; at the end RMSE of online b and a vs responses per item
(thinning every pretest item's responses to n and recalibrating online, the product's ``calibrate_online``)
against a full joint recalibration of the same data (``fit_mml`` on all round responses, every item free,
Stocking-Lord linked to the operational scale through the operational items), a plot of both, and the health
plot. Scale: estimates live on the field-test calibration's scale; the truth is put on it by the mean/sigma
line of the operational items' estimated vs true b (so RMSE measures the items, not the scale's origin).

    .venv/bin/python bench/lifecycle_simulation.py [--rounds 10] [--seed 14] [--out docs/]

Measured (2026-12-06, seed 14, defaults, 2 shared cores, 28 min; docs/lifecycle-recovery.png and
docs/lifecycle-health.png). The field test's calibration (3.35 M responses) and round 0's lifecycle promoted
13,835 of the 20,000 items (the rest: SE(b) above 0.3 at 100 responses; they stay pretest).
    round exact stand-ins RMSE b/a (pretest) promoted (of this round's 50) RMSE b promoted rested returned retired rounds left
      1   yes      0       0.204 / 0.157         47 (39)                   0.189           0       0       0        9
      2   yes      0       0.232 / 0.150         47 (43)                   0.178           0       0       0        8
      3   yes      0       0.195 / 0.135         46 (43)                   0.218           3       0       0        8
      4   yes      0       0.208 / 0.125         43 (43)                   0.191          18       0       0        7
      5   yes      0       0.241 / 0.190         43 (43)                   0.182          19       3       0        6
      6   yes      0       0.162 / 0.181         43 (43)                   0.153          32      18       0        6
      7   yes      0       0.203 / 0.162         45 (44)                   0.186          44      19       0        5
      8   yes      0       0.227 / 0.200         43 (43)                   0.222          53      32       0        4
      9   yes      0       0.227 / 0.173         47 (45)                   0.191          57      44       0        4
     10   yes      0       0.224 / 0.145         44 (44)                   0.201          72      53       0        3
  Every round's operational part met both quotas exactly (450 items: 45/180/225 by tier, 135/180/135 by band) with
  no stand-in; 78-90 % of each round's pretest items were promoted (the rest held by SE(b) > 0.3, items far from
  the models' abilities, or a fit flag), promoted items' RMSE(b) 0.15-0.22 (floor 0.3). Retired: none: the most
  exposed item stays under retire_after_runs (3000), and the contamination rule cannot test here (every item a
  round's models answer is on a published form, so no model has never-published answers to match on: the
  lifecycle notes it). The projection (``adt bank health``) says the medium tier runs out first, 9 rounds ahead
  after round 1 and 3 after round 10 (items published twice become high).
  Recovery by responses (the 500 pretest items, thinned; truth on the bank's scale):
      n    online (MEM) RMSE b / a    joint recalibration RMSE b / a
     25    0.562 / 0.762              0.589 / 0.786
     50    0.447 / 0.511              0.437 / 0.512
    100    0.354 / 0.358              0.350 / 0.360
    200    0.292 / 0.252              0.289 / 0.247
    300    0.243 / 0.211              0.243 / 0.206
  Online calibration with the operational items fixed matches a full joint recalibration of the same data
  within 0.03 at every n (it never refits the 20,000 operational items).
"""

from __future__ import annotations

import argparse
import json
import pickle
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DOMAINS = ("algebra", "biology", "history", "law", "physics")
WORDS = ("alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "lambda", "theta", "zeta")


def cli(bank: Path, *args: str) -> dict | list | str:
    """Run one ``adt`` command in this process; its --json output parsed when asked for, else its text."""
    from click.testing import CliRunner

    from adt.cli import cli as adt_cli

    res = CliRunner().invoke(adt_cli, ["--bank", str(bank), *args], catch_exceptions=False)
    if res.exit_code != 0:
        raise RuntimeError(f"adt {' '.join(args)} exited {res.exit_code}:\n{res.output}")
    return json.loads(res.output) if "--json" in args else res.output


class World:
    """The truth: items' 2PL parameters, models' abilities, and the answers they give."""

    def __init__(self, rng: np.random.Generator, n_models: int) -> None:
        self.rng = rng
        self.theta = rng.normal(0.0, 1.0, n_models)
        self.models = [f"sim{k:03d}" for k in range(n_models)]
        self.a: dict[str, float] = {}
        self.b: dict[str, float] = {}
        self.n_made = 0

    def new_items(self, n: int, batch: str) -> list[dict]:
        """n new items (JSONL rows) with their truth kept by external id."""
        rows = []
        a = np.exp(self.rng.normal(0.0, 0.3, n))
        b = self.rng.normal(0.0, 1.0, n)
        dom = self.rng.integers(0, len(DOMAINS), n)
        for k in range(n):
            ext = f"{batch}-{self.n_made + k:06d}"
            w = self.rng.choice(WORDS, 3)
            rows.append({"id": ext, "question": f"Item {ext}: which {w[0]} follows the {w[1]} of {w[2]}?",
                         "choices": [f"{w[0]} {ext}", f"{w[1]} {ext}", f"{w[2]} {ext}", f"none {ext}"],
                         "answer": "A", "tags": {"domain": DOMAINS[dom[k]]}})
            self.a[ext], self.b[ext] = float(a[k]), float(b[k])
        self.n_made += n
        return rows

    def answers(self, theta: np.ndarray, ext_ids: list[str]) -> np.ndarray:
        """Scores of abilities ``theta`` (one per row) on items ``ext_ids`` (one per row)."""
        a = np.array([self.a[e] for e in ext_ids])
        b = np.array([self.b[e] for e in ext_ids])
        p = 1.0 / (1.0 + np.exp(-a * (theta - b)))
        return (self.rng.random(len(p)) < p).astype(float)


def import_items(bank: Path, rows: list[dict], work: Path, name: str) -> None:
    path = work / f"{name}.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    cli(bank, "bank", "import", str(path), "--source", "sim", "--extend-taxonomy")


def store_answers(bank_path: Path, runs: pd.DataFrame, form: str | None, round_no: int | None, kind: str) -> None:
    """The world's answers as runs (one per model), stored the way ``adt run`` stores its results."""
    from itembank import open_bank

    with open_bank(bank_path, purpose="simulated runs") as bank:
        for model, _ in runs.groupby("model", sort=True):
            bank.start_run(f"{kind}-{round_no}-{model}", model=model, kind=kind, form_name=form, round_no=round_no)
        frame = runs.assign(run_id=[f"{kind}-{round_no}-{m}" for m in runs["model"]])[["run_id", "item_id", "score"]]
        bank.ingest_many(frame)
        for run_id in frame["run_id"].unique():
            bank.finish_run(run_id)


def id_map(bank_path: Path) -> dict[str, str]:
    """External id -> item id."""
    from itembank import open_bank

    with open_bank(bank_path, purpose="ids") as bank:
        rows = bank.conn.execute("SELECT external_id, item_id FROM item_aliases WHERE source = 'sim'").fetchall()
    return {str(e): str(i) for e, i in rows}


def field_test(world: World, bank: Path, ext: list[str], args: argparse.Namespace) -> None:
    """Before round 1: ``--field-models`` models answer the starting bank (heterogeneous exposure)."""
    rng = world.rng
    n = np.full(len(ext), args.field_n)
    pick = rng.permutation(len(ext))
    n[pick[:args.field_medium]] = 400
    n[pick[args.field_medium:args.field_medium + args.field_high]] = 700
    theta = rng.normal(0.0, 1.0, args.field_models)
    ids = id_map(bank)
    m_idx = np.concatenate([rng.choice(args.field_models, k, replace=False) for k in n])
    i_idx = np.repeat(np.arange(len(ext)), n)
    ext_rows = [ext[i] for i in i_idx]
    scores = world.answers(theta[m_idx], ext_rows)
    runs = pd.DataFrame({"model": [f"field{m:04d}" for m in m_idx], "item_id": [ids[e] for e in ext_rows],
                         "score": scores})
    store_answers(bank, runs, None, 0, "field")


def round_spec(args: argparse.Namespace, *, seed: int) -> dict:
    """The round spec of the issue: 500 items, 10/40/50 frequency, 30/40/30 difficulty, 10% pretest."""
    return {"size": args.form, "strategy": "stratified", "seed": seed, "enemy_threshold": None,
            "quotas": {"frequency_tier": {"low": 0.1, "medium": 0.4, "high": 0.5},
                       "difficulty_band": {"hard": 0.3, "medium": 0.4, "easy": 0.3}},
            "pretest": {"share": args.pretest}}


def composition(bank_path: Path, form: str, args: argparse.Namespace) -> dict:
    """The form's operational part against its stored spec's quotas (the sampler's own counting rule), its tiers
    read back as drawn (the bank as of the form's head, under the tier settings the form recorded)."""
    from itembank import open_bank
    from sampler import FormSpec, quota_counts

    with open_bank(bank_path, purpose="composition") as bank:
        rec = bank.form(form)
        pretest = set(rec["pretest_ids"])
        pool = rec["spec"]["pool"]
        frame = bank.items({"item_id": rec["item_ids"]}, as_of=pool["head_n"],
                           settings={k: pool[k] for k in ("tier_low_runs", "tier_high_runs",
                                                          "tier_high_publications")}).set_index("item_id")
    bands = pool.get("bands") or {}
    ops = [i for i in rec["item_ids"] if i not in pretest]
    got = {"frequency_tier": frame.loc[ops, "frequency_tier"].value_counts().to_dict(),
           "difficulty_band": pd.Series([bands.get(i, "unknown") for i in ops]).value_counts().to_dict()}
    spec = FormSpec.from_stored({k: v for k, v in rec["spec"].items() if k != "pool"})
    exact = all(got[q.key].get(value, 0) == need for q in spec.quotas
                for value, need in quota_counts(q, len(ops)).items() if value in dict(q.amounts))
    tiers, band = got["frequency_tier"], got["difficulty_band"]
    stages = frame.loc[list(pretest), "stage"].value_counts().to_dict() if pretest else {}
    return {"n_items": len(rec["item_ids"]), "n_pretest": len(pretest), "tiers": tiers, "bands": band,
            "exact": bool(exact), "pretest_stages": stages,
            "n_stand_in": int(rec.get("n_stand_in") or 0)}


def administer(world: World, bank_path: Path, form: str, round_no: int) -> None:
    """Every model answers every item of the form (pretest items too: they cannot tell them apart)."""
    from itembank import open_bank

    with open_bank(bank_path, purpose="form") as bank:
        item_ids = bank.form(form)["item_ids"]
    ext = {v: k for k, v in id_map(bank_path).items()}
    n_m, n_i = len(world.models), len(item_ids)
    m_idx = np.repeat(np.arange(n_m), n_i)
    i_idx = np.tile(np.arange(n_i), n_m)
    scores = world.answers(world.theta[m_idx], [ext[item_ids[i]] for i in i_idx])
    runs = pd.DataFrame({"model": [world.models[m] for m in m_idx], "item_id": [item_ids[i] for i in i_idx],
                         "score": scores})
    store_answers(bank_path, runs, form, round_no, "form")


def scale_line(world: World, bank_path: Path) -> tuple[float, float, pd.DataFrame]:
    """(A, B) putting the truth on the bank's scale (mean/sigma of the field calibration's b vs true b), and the
    latest calibration's item table with each item's truth on that scale."""
    from calibration import calibration_params_frame, list_calibrations
    from itembank import open_bank

    ext = {v: k for k, v in id_map(bank_path).items()}
    with open_bank(bank_path, purpose="scale") as bank:
        first_id = str(list_calibrations(bank)["calibration_id"].iloc[0])     # the field test's
        field = calibration_params_frame(bank, first_id)
        latest = calibration_params_frame(bank, None)
    field = field[field["status"] == "calibrated"]
    tb = np.array([world.b[ext[i]] for i in field["item_id"]])
    A = float(np.std(field["b"]) / np.std(tb))
    B = float(np.mean(field["b"]) - A * np.mean(tb))
    latest = latest.assign(true_b=[A * world.b[ext[i]] + B for i in latest["item_id"]],
                           true_a=[world.a[ext[i]] / A for i in latest["item_id"]])
    return A, B, latest


def rmse(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x)))) if len(x) else float("nan")


def round_figures(world: World, bank_path: Path, r: int, form: dict, comp: dict, online: dict, moves: dict,
                  health: dict) -> dict:
    """One row of the per-round table."""
    from itembank import open_bank

    _, _, latest = scale_line(world, bank_path)
    with open_bank(bank_path, purpose="form") as bank:
        pretest = bank.form(f"round{r:02d}")["pretest_ids"]
    moved = pd.DataFrame(moves.get("moves", [])).rename(columns={"from_stage": "from", "to_stage": "to"})
    promoted = set(moved.loc[(moved["to"] == "operational") & (moved["from"] == "pretest"), "item_id"]) \
        if not moved.empty else set()
    promoted_here = promoted & set(pretest)
    est = latest.set_index("item_id")
    pre = est.loc[[i for i in pretest if i in est.index]]
    prom = est.loc[[i for i in promoted if i in est.index]]
    return {"round": r, "n_items": comp["n_items"], "n_pretest": comp["n_pretest"], "exact": comp["exact"],
            "n_stand_in": comp["n_stand_in"],
            "rmse_b_pretest": rmse(pre["b"] - pre["true_b"]), "rmse_a_pretest": rmse(pre["a"] - pre["true_a"]),
            "promoted": len(promoted), "promoted_of_pretest": len(promoted_here) / max(len(pretest), 1),
            "rmse_b_promoted": rmse(prom["b"] - prom["true_b"]),
            "rested": int((moved["to"] == "rested").sum()) if not moved.empty else 0,
            "returned": int(((moved["from"] == "rested") & (moved["to"] == "operational")).sum()) if not moved.empty else 0,
            "retired": int((moved["to"] == "retired").sum()) if not moved.empty else 0,
            "rounds_left": min((r["rounds_left"] for r in health.get("rounds_left", [])
                                if r.get("rounds_left") is not None), default=None),
            "pretest_pool": int(sum(r.get("total", 0) for r in health.get("stages", []) if r.get("stage") == "pretest"))}


def summarise_moves(moves: dict) -> str:
    frame = pd.DataFrame(moves.get("moves", []))
    if frame.empty:
        return "lifecycle: nothing moved"
    return "lifecycle: " + ", ".join(f"{a}->{b}: {n}" for (a, b), n in frame.groupby(["from_stage", "to_stage"]).size().items())


def thinning_study(world: World, bank_path: Path, args: argparse.Namespace) -> None:
    """RMSE of online b and a vs responses per item, against a joint recalibration of the same data."""
    from calibration import (
        ItemParams,
        ResponseSet,
        calibrate_online,
        calibration_params_frame,
        fit_mml,
        link,
        list_calibrations,
    )
    from itembank import open_bank

    A, B, _ = scale_line(world, bank_path)
    ext = {v: k for k, v in id_map(bank_path).items()}
    with open_bank(bank_path, purpose="study") as bank:
        resp = bank.responses()
        forms = [bank.form(f"round{r:02d}") for r in range(1, args.rounds + 1)]
        first_id = str(list_calibrations(bank)["calibration_id"].iloc[0])
        field = calibration_params_frame(bank, first_id)
    resp = resp[resp["run_id"].str.startswith("form-")]
    pretest = sorted({i for f in forms for i in f["pretest_ids"]})
    field = field[(field["status"] == "calibrated") & ~field["item_id"].isin(pretest)]
    ops = ItemParams(tuple(field["item_id"]), field["a"].to_numpy(float), field["b"].to_numpy(float))
    is_new = resp["item_id"].isin(pretest)
    op_resp = resp[~is_new & resp["item_id"].isin(set(ops.item_ids))]
    true_b = np.array([A * world.b[ext[i]] + B for i in pretest])
    true_a = np.array([world.a[ext[i]] / A for i in pretest])
    rng = np.random.default_rng(args.seed + 1)
    out = []
    for n in (25, 50, 100, 200, 300):
        keys = rng.random(int(is_new.sum()))           # a random n of each item's responses
        new_resp = resp[is_new].assign(_k=keys).sort_values("_k").groupby("item_id").head(n).drop(columns="_k")
        data = pd.concat([op_resp, new_resp])
        rs = ResponseSet.from_frame(data, "model", "item_id", "score")
        on = calibrate_online(rs, ops, pretest)
        got = dict(zip(on.params.item_ids, zip(on.params.a, on.params.b, strict=True), strict=True))
        a_on = np.array([got[i][0] for i in pretest])
        b_on = np.array([got[i][1] for i in pretest])
        joint = fit_mml(rs, "2pl", rng=np.random.default_rng(args.seed + n))
        idx = {i: k for k, i in enumerate(joint.params.item_ids)}
        lk = link(ops, joint.params, "stocking_lord", rng=np.random.default_rng(0), n_boot=20)
        b_j = np.array([lk.A * joint.params.b[idx[i]] + lk.B for i in pretest])
        a_j = np.array([joint.params.a[idx[i]] / lk.A for i in pretest])
        out.append({"n": n, "online_rmse_b": rmse(b_on - true_b), "online_rmse_a": rmse(a_on - true_a),
                    "joint_rmse_b": rmse(b_j - true_b), "joint_rmse_a": rmse(a_j - true_a)})
        print(json.dumps(out[-1]), flush=True)
    table = pd.DataFrame(out)
    print(table.to_string(index=False))
    plot_thinning(table, args.out / "lifecycle-recovery.png")


def plot_thinning(table: pd.DataFrame, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, par in zip(axes, ("b", "a"), strict=True):
        ax.plot(table["n"], table[f"online_rmse_{par}"], "o-", label="online (MEM, operational fixed)")
        ax.plot(table["n"], table[f"joint_rmse_{par}"], "s--", label="joint recalibration (linked)")
        ax.set_xlabel("responses per pretest item")
        ax.set_ylabel(f"RMSE of {par} vs truth")
        ax.set_xscale("log")
        ax.set_xticks(table["n"].tolist(), [str(n) for n in table["n"]])
        ax.minorticks_off()
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("Pretest items of ten lifecycle rounds: recovery by responses")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(f"wrote {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=20_000)
    ap.add_argument("--growth", type=int, default=1_000)
    ap.add_argument("--models", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--form", type=int, default=500)
    ap.add_argument("--pretest", type=float, default=0.1)
    ap.add_argument("--field-models", type=int, default=1_000)
    ap.add_argument("--field-n", type=int, default=100)
    ap.add_argument("--field-medium", type=int, default=1_500)
    ap.add_argument("--field-high", type=int, default=1_500)
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--work", type=Path, default=None, help="keep the bank here (default: a temporary folder)")
    ap.add_argument("--stop-after", default=None, help="field: stop after the field test (timing)")
    ap.add_argument("--reuse-setup", action="store_true", help="start from --work's saved field-tested bank")
    ap.add_argument("--out", type=Path, default=ROOT / "docs")
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    work = args.work or Path(tempfile.mkdtemp(prefix="adt-lifecycle-"))
    work.mkdir(parents=True, exist_ok=True)
    bank = work / "bank.duckdb"
    world = World(rng, args.models)
    t0 = time.perf_counter()
    saved = work / "setup"
    if args.reuse_setup and (saved / "bank.duckdb").exists():     # the field-tested bank of an earlier run
        shutil.copy(saved / "bank.duckdb", bank)
        with open(saved / "world.pkl", "rb") as fh:
            world = pickle.load(fh)  # noqa: S301 - our own file, written below
        run_rounds(world, bank, work, args, t0)
        return
    cli(bank, "init")
    for key, value in (("tier_low_runs", "100"), ("tier_high_runs", "600")):
        cli(bank, "bank", "settings", key, value)
    start = world.new_items(args.items, "r00")
    import_items(bank, start, work, "r00")
    print(f"bank: {args.items} items imported in {time.perf_counter() - t0:.0f} s", flush=True)
    t1 = time.perf_counter()
    field_test(world, bank, [r["id"] for r in start], args)
    print(f"field test stored in {time.perf_counter() - t1:.0f} s", flush=True)
    t1 = time.perf_counter()
    print(cli(bank, "calibrate", "--no-content-prior"), flush=True)
    print(f"field calibration in {time.perf_counter() - t1:.0f} s", flush=True)
    if args.stop_after == "field":
        return
    print(summarise_moves(cli(bank, "bank", "lifecycle", "--round", "0", "--json")), flush=True)
    saved.mkdir(exist_ok=True)
    shutil.copy(bank, saved / "bank.duckdb")
    with open(saved / "world.pkl", "wb") as fh:
        pickle.dump(world, fh)
    run_rounds(world, bank, work, args, t0)


def run_rounds(world: World, bank: Path, work: Path, args: argparse.Namespace, t0: float) -> None:
    spec_path = work / "round.yaml"
    rows = []
    for r in range(1, args.rounds + 1):
        t1 = time.perf_counter()
        import_items(bank, world.new_items(args.growth, f"r{r:02d}"), work, f"r{r:02d}")
        spec_path.write_text(json.dumps(round_spec(args, seed=args.seed * 100 + r)), encoding="utf-8")
        form = cli(bank, "sample", "--spec", str(spec_path), "--name", f"round{r:02d}", "--json")
        comp = composition(bank, f"round{r:02d}", args)
        cli(bank, "form", "publish", f"round{r:02d}", "--round", str(r))
        administer(world, bank, f"round{r:02d}", r)
        online = cli(bank, "calibrate", "--online", "--no-content-prior", "--json")
        moves = cli(bank, "bank", "lifecycle", "--round", str(r), "--json")
        health = cli(bank, "bank", "health", "--spec", str(spec_path), "--json",
                     *(["--plot", str(args.out / "lifecycle-health.png")] if r == args.rounds else []))
        row = round_figures(world, bank, r, form, comp, online, moves, health)
        row["seconds"] = round(time.perf_counter() - t1, 1)
        rows.append(row)
        print(json.dumps(row), flush=True)
    table = pd.DataFrame(rows)
    print(table.to_string(index=False))
    thinning_study(world, bank, args)
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
