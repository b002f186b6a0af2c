"""Wrong-key flags on MMLU-Pro with planted wrong keys: recall and precision of the old rule and the new one.

Issue 12: the old wrong-key flag ("score-ability correlation < 0", no test) fired on 299 of 2,786 items
of a real chemistry bank, mostly noise. The new rule (``calibration.flag_items``' ``wrong_key``) flags on
evidence: a one-sided exact rank test that the models who got the item right are less able than those
who got it wrong, Benjamini-Hochberg adjusted over the tested items (p < 0.05), on keyed items with at
least 10 models, 3 right and 3 wrong.

The product's path: a seeded sample of items (2,000 by default) with a planted wrong key on 100 of them
(a seeded numpy Generator picks the items and, for each, another of its options as the new key; the 20
models' recorded answers, ``pred``, are re-scored against it), imported with itembank's import as
``bench/replay_validity.py``'s ``build_bank`` does, calibrated with ``adt.workflow.calibrate`` (2PL, the
default fitter) and flagged with ``calibration_flags``, the function ``adt calibration flags`` and the
report use. The OLD rule is a faithful copy (``old_rule`` below), applied to the same calibration's item
fit. Then ten flags on unplanted items are printed with the question, options, key and the models'
answers, for a person to judge (MMLU-Pro has real key errors).

Usage: python bench/wrong_key_flags.py [--items 2000] [--planted 100] [--seed 0] [--show 10]

Measured (2 cores, seed 0, 2,000 items, 100 planted; 14 s in all):
  rule                               flagged planted hit  recall precision unplanted
  before: correlation < 0 (old)          220          34    0.34      0.15       186
  after: rank test, BH p < 0.05            1           0    0.00      0.00         1
  A random other option as key leaves most planted items with no evidence in the scores: 50 of the 100 had no
  right answer under the new key, 19 one, 12 two; the 19 with >= 3 right and >= 3 wrong do not look reversed
  (median one-sided p 0.5, smallest 0.0096): the models that pick a random distractor are not the weakest,
  the ablest ones (who chose the true key) just fail. From scores alone such an item is a hard item; the
  old rule's 34 hits were near-zero correlations of either sign (1,230 flags on all 12,032 items: 25 hits).
  The one unplanted flag (question 6730: "blue whale" keyed as the longest-lived animal; every strong model
  says tortoise) looks like a real key error. All 12,032 items: 0 flags after (BH over 8,257 tested items).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"

from adt.workflow.calibrate import calibrate, calibration_flags  # noqa: E402
from calibration import load_calibration  # noqa: E402
from itembank import LETTERS, open_bank  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from replay_validity import MMLU_PRO  # noqa: E402  (the MMLU-Pro import options, one copy)


def old_rule(params: object, status: np.ndarray, fit: pd.DataFrame, r_min: float = 0.0) -> set[str]:
    """The rule before issue 12, copied from calibration.fit.flag_items (negative_discrimination and
    negative_r_theta): a calibrated item with a < 0, or any item whose score-ability correlation is < 0."""
    out: set[str] = set()
    ids = list(params.item_ids)  # type: ignore[attr-defined]
    for i, k in enumerate(ids):
        if status[i] == "calibrated" and float(params.a[i]) < 0:  # type: ignore[attr-defined]
            out.add(k)
    fit = fit.reindex(ids)
    for k, r in zip(ids, fit["r_theta"].to_numpy(), strict=True):
        if np.isfinite(r) and r < r_min:
            out.add(k)
    return out


def wrong_key_tested(fit: pd.DataFrame) -> np.ndarray:
    """The items the new rule tests (flag_items' defaults; every MMLU-Pro item has a key)."""
    return np.asarray((fit["n"] >= 10) & (fit["n_right"] >= 3) & (fit["n_wrong"] >= 3) & fit["p_reversed"].notna())


def plant(items: pd.DataFrame, responses: pd.DataFrame, n_items: int, n_planted: int,
          rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame, dict[int, tuple[str, str]]]:
    """A sample of ``n_items`` items, ``n_planted`` of them keyed to another option, responses re-scored."""
    items = items.loc[rng.choice(len(items), n_items, replace=False)].sort_values("question_id").reset_index(drop=True)
    chosen = rng.choice(len(items), n_planted, replace=False)
    planted: dict[int, tuple[str, str]] = {}
    for row in chosen:
        qid, key, n_opt = int(items.at[row, "question_id"]), str(items.at[row, "answer"]), len(items.at[row, "options"])
        others = [c for c in LETTERS[:n_opt] if c != key]
        new = str(others[int(rng.integers(len(others)))])
        items.at[row, "answer"] = new
        items.at[row, "answer_index"] = LETTERS.index(new)
        planted[qid] = (key, new)
    responses = responses[responses["question_id"].isin(set(items["question_id"]))].copy()
    new_key = responses["question_id"].map({q: n for q, (_, n) in planted.items()})
    hit = new_key.notna().to_numpy()
    responses.loc[hit, "correct"] = ((responses.loc[hit, "pred"] == new_key[hit]) & ~responses.loc[hit, "pred_missing"]
                                     ).astype(int).to_numpy()
    return items, responses, planted


def show_item(qid: int, items: pd.DataFrame, responses: pd.DataFrame, theta: pd.Series, flag_reason: str) -> None:
    it = items.set_index("question_id").loc[qid]
    r = responses[responses["question_id"] == qid].assign(theta=lambda d: d["model"].map(theta))
    print(f"\n--- question_id {qid} ({it['category']}, {it['src']}); key {it['answer']}")
    print(textwrap.fill(str(it["question"]), 110, initial_indent="  Q: ", subsequent_indent="     "))
    for k, opt in enumerate(it["options"]):
        sel = r[r["pred"] == LETTERS[k]]
        mark = "*" if LETTERS[k] == it["answer"] else " "
        who = f"{len(sel):>2} models, mean ability {sel['theta'].mean():+.2f}" if len(sel) else ""
        print(f"  {mark}{LETTERS[k]}) {textwrap.shorten(str(opt), 70):<72} {who}")
    miss = r[r["pred_missing"]]
    if len(miss):
        print(f"    (no answer) {len(miss)} models, mean ability {miss['theta'].mean():+.2f}")
    top = r.sort_values("theta", ascending=False)
    print("  the 5 ablest models answered: " + ", ".join(f"{p if isinstance(p, str) else '-'}" for p in top["pred"][:5])
          + "; the 5 weakest: " + ", ".join(f"{p if isinstance(p, str) else '-'}" for p in top["pred"][-5:]))
    print(f"  flag: {flag_reason}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=2000)
    ap.add_argument("--planted", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--show", type=int, default=10)
    args = ap.parse_args()
    if not DATA.is_dir():
        print(f"skipped: real data not found at {DATA}")
        return 0
    t0 = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    all_items = pd.read_parquet(DATA / "mmlu_pro" / "items.parquet")
    all_resp = pd.read_parquet(DATA / "mmlu_pro" / "responses.parquet")
    items, responses, planted = plant(all_items, all_resp, args.items, args.planted, rng)
    with tempfile.TemporaryDirectory() as tmp:
        items_file, resp_file, bank_path = Path(tmp) / "items.parquet", Path(tmp) / "responses.parquet", Path(tmp) / "b.duckdb"
        items.to_parquet(items_file)
        responses.to_parquet(resp_file)
        with open_bank(bank_path, create=True) as bank:
            bank.import_items([items_file], MMLU_PRO)
            bank.import_responses(resp_file, source="mmlu_pro", model_col="model", item_col="question_id",
                                  score_col="correct")
        t_bank = time.perf_counter()
        cal = calibrate(bank_path, irt="2pl", seed=args.seed)
        t_cal = time.perf_counter()
        with open_bank(bank_path) as bank:
            rep = calibration_flags(bank, cal.calibration_id)
            stored = load_calibration(bank, cal.calibration_id)
            aliases = bank.aliases_of(stored.params.item_ids)
        t_flags = time.perf_counter()
    qid_of = {k: int(v[0].split(":", 1)[1]) for k, v in aliases.items() if v}
    theta = pd.Series(stored.abilities["theta"].to_numpy(float), index=stored.abilities["model"].astype(str))
    fit = rep.fit.set_index("item_id")
    new_flags = rep.flags[rep.flags["flag"] == "wrong_key"]
    after = {qid_of[k] for k in new_flags["item_id"]}
    before = {qid_of[k] for k in old_rule(stored.params, stored.status_for_abilities(), fit)}
    truth = set(planted)
    n_resp = responses.groupby("question_id")["correct"].agg(["size", "sum"])
    testable = {q for q in truth if n_resp.at[q, "sum"] >= 3 and n_resp.at[q, "size"] - n_resp.at[q, "sum"] >= 3}

    print(f"MMLU-Pro: {len(items)} items, {responses['model'].nunique()} models, {len(truth)} planted wrong keys "
          f"(seed {args.seed}); bank {t_bank - t0:.0f} s, calibration {t_cal - t_bank:.0f} s, "
          f"flags {t_flags - t_cal:.1f} s")
    right = n_resp.loc[sorted(truth), "sum"]
    print(f"planted items' right answers under the new key: {int((right == 0).sum())} with none, "
          f"{int((right == 1).sum())} with one, {int((right == 2).sum())} with two, {len(testable)} with >= 3 right "
          "and >= 3 wrong (testable by the new rule)")
    print(f"\n{'rule':<34}{'flagged':>8}{'planted hit':>12}{'recall':>8}{'precision':>10}{'unplanted':>10}")
    for name, got in (("before: correlation < 0 (old)", before), ("after: rank test, BH p < 0.05", after)):
        hit = len(got & truth)
        print(f"{name:<34}{len(got):>8}{hit:>12}{hit / len(truth):>8.2f}"
              f"{(hit / len(got) if got else float('nan')):>10.2f}{len(got - truth):>10}")
    if testable:
        item_of = {q: k for k, q in qid_of.items()}
        p_t = fit.loc[[item_of[q] for q in sorted(testable)], "p_reversed"]
        print(f"after, among the {len(testable)} testable planted items: recall {len(after & testable) / len(testable):.2f};"
              f" their one-sided p: median {p_t.median():.2g}, {int((p_t < 1e-3).sum())} below 1e-3, smallest "
              f"{p_t.min():.2g} (BH over {int(wrong_key_tested(fit).sum())} tested items needs "
              f"about 0.05 x rank / that many)")

    unplanted = new_flags[~new_flags["item_id"].map(qid_of).isin(truth)].sort_values("value")
    print(f"\n{len(after - truth)} unplanted items flagged after; the first {min(args.show, len(unplanted))} by adjusted p"
          + ("" if len(unplanted) >= args.show else ", then the unplanted tested items with the smallest one-sided p "
             "(not flagged: what the threshold leaves out)") + ":")
    for k, reason in list(zip(unplanted["item_id"], unplanted["reason"], strict=True))[:args.show]:
        show_item(qid_of[k], items, responses, theta, "FLAGGED: " + reason)
    rest = fit[wrong_key_tested(fit)]
    rest = rest[~rest.index.map(qid_of).isin(truth) & ~rest.index.isin(set(unplanted["item_id"]))]
    for k, r in rest.sort_values("p_reversed").head(max(0, args.show - len(unplanted))).iterrows():
        show_item(qid_of[k], items, responses, theta,
                  f"not flagged: rank-biserial {r['rank_biserial']:+.2f}, n = {int(r['n'])} ({int(r['n_right'])} right), "
                  f"one-sided p = {r['p_reversed']:.2g}")
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
