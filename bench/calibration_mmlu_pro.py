"""Real data: 2PL on MMLU-Pro (20 models x 12,032 items, long format), ours vs py-irt (vs mirt, capped).

Reads ../shared/data/mmlu_pro/responses.parquet; the score is the file's ``correct`` column, in which a
missing prediction (``pred_missing``) already counts as 0.  Fits our MML 2PL and py-irt's 2PL (through
calibration.pyirt_backend, in a subprocess) and reports each fit's time and the correlation of the two
difficulty estimates over the items with between 3 and 17 of the 20 models correct (elsewhere b is
driven by the priors of each method).  With --try-mirt, PyPI mirt is also tried on the dense 20 x 12,032
matrix in a subprocess under an address-space limit (resource.setrlimit; it was killed at 21.8 GB
resident on this machine), and its outcome is recorded.

    .venv/bin/python bench/calibration_mmlu_pro.py [--pyirt-epochs 2000] [--try-mirt --mirt-mem-gib 6]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from calibration import ResponseSet, fit_mml, fit_pyirt  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "mmlu_pro" / "responses.parquet"

_MIRT_CHILD = r"""
import json, resource, sys, time
import numpy as np
limit = int(float(sys.argv[2]) * 2**30)
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
import mirt
y = np.load(sys.argv[1])
t = time.perf_counter()
fit = mirt.fit_mirt(y, model="2PL")
print(json.dumps({"seconds": time.perf_counter() - t, "n_iter": int(fit.n_iterations),
                  "converged": bool(fit.converged)}))
"""


def try_mirt(rs: ResponseSet, mem_gib: float, timeout_s: float) -> str:
    y = np.full((rs.n_models, rs.n_items), np.nan)
    y[rs.model_idx, rs.item_idx] = rs.score
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "y.npy"
        np.save(path, y)
        t = time.perf_counter()
        try:
            proc = subprocess.run([sys.executable, "-c", _MIRT_CHILD, str(path), str(mem_gib)],
                                  capture_output=True, text=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired:
            return f"mirt: no result within {timeout_s:.0f} s (killed)"
        secs = time.perf_counter() - t
    if proc.returncode == 0:
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        return (f"mirt: fitted in {out['seconds']:.1f} s, {out['n_iter']} iterations, "
                f"converged {out['converged']} (under a {mem_gib:g} GiB address-space limit)")
    tail = (proc.stderr or "").strip().splitlines()[-1:] or ["(no message)"]
    return (f"mirt: FAILED under a {mem_gib:g} GiB address-space limit after {secs:.1f} s "
            f"(exit {proc.returncode}): {tail[0][:160]}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=20261123)
    ap.add_argument("--pyirt-epochs", type=int, default=2000)
    ap.add_argument("--skip-pyirt", action="store_true")
    ap.add_argument("--try-mirt", action="store_true")
    ap.add_argument("--mirt-mem-gib", type=float, default=6.0)
    ap.add_argument("--mirt-timeout", type=float, default=600.0)
    args = ap.parse_args()
    if not DATA.exists():
        print(f"MMLU-Pro responses not found at {DATA}; nothing to do")
        return 0
    df = pd.read_parquet(DATA, columns=["model", "question_id", "correct"])
    rs = ResponseSet.from_frame(df, "model", "question_id", "correct")
    print(f"MMLU-Pro: {rs.n_models} models x {rs.n_items} items, {rs.n_obs:,} responses "
          f"(density {rs.density:.3f})")
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = fit_mml(rs, "2pl", rng=np.random.default_rng(args.seed), seed=args.seed)
    t_ours = time.perf_counter() - t
    n_cal = int((ours.item_status == "calibrated").sum())
    print(f"ours (mml 2pl): {t_ours:.2f} s, {ours.n_iter} EM steps, converged {ours.converged}, "
          f"{n_cal} items calibrated, status counts "
          f"{pd.Series(ours.item_status).value_counts().to_dict()}")
    n_correct = np.bincount(rs.item_idx, weights=rs.score, minlength=rs.n_items)
    n_seen = rs.counts_per_item()
    mid = (n_correct >= 3) & (n_correct <= 17)
    print(f"items with 3-17 correct: {int(mid.sum())} (of {rs.n_items}; answered by {int(np.median(n_seen))} "
          f"models at the median)")
    if not args.skip_pyirt:
        t = time.perf_counter()
        theirs = fit_pyirt(rs, rng=np.random.default_rng(args.seed), epochs=args.pyirt_epochs)
        t_py = time.perf_counter() - t
        ok = mid & np.isfinite(theirs.params.b)
        r_b = float(np.corrcoef(ours.params.b[ok], theirs.params.b[ok])[0, 1])
        rho = float(pd.Series(ours.params.b[ok]).corr(pd.Series(theirs.params.b[ok]), method="spearman"))
        r_th = float(np.corrcoef(ours.theta, theirs.theta)[0, 1])
        print(f"py-irt 2pl ({args.pyirt_epochs} epochs, subprocess): {t_py:.1f} s "
              f"(training {theirs.settings['train_seconds']:.1f} s)")
        print(f"difficulty agreement on the {int(ok.sum())} items with 3-17 correct: Pearson {r_b:.3f}, "
              f"Spearman {rho:.3f}; ability agreement over the 20 models: Pearson {r_th:.3f}")
    if args.try_mirt:
        print(try_mirt(rs, args.mirt_mem_gib, args.mirt_timeout))
    return 0


if __name__ == "__main__":
    sys.exit(main())
