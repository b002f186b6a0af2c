"""Wall time of ``adt report`` on the MMLU-Pro bank (20 models x 12k items), default settings.

Issue 12: the report took 8.5 minutes on 35 models; it must take under 60 s on the MMLU-Pro bank. This
runs the product's command line as a user would: ``adt --bank BANK calibrate`` (once, when the bank has
no calibration) and ``adt --bank BANK report --out DIR/report.html``, timing the whole command and each
section by the progress lines the report prints on stderr ("leaderboard ...", "slices ...").

Usage: python bench/report_time.py [--bank PATH] [--out DIR] [--repeat N] [-- REPORT ARGS ...]
  --bank: an MMLU-Pro bank to reuse (built there first when the file does not exist; default: a temp dir)

Measured (2026-12-06, the shared 2-core box; default settings: 20 models, 11,873 items, 235,747
responses, domain and language slices, no forms):
  before issue 12's fixes: 570 s (9.5 min), load average 1.5-5 (slices 5+ min: each model's ability
  posterior and 20 parameter draws recomputed for every slice value)
  after: 31.6 s and 30.8 s at load average 3.5 (start-up 2 s, leaderboard 21 s, slices 3 s,
  diagnostics 4 s, page 0.4 s); 45-54 s while other jobs pushed the load to 4-5.
  The leaderboard and slice tables are identical to the 9.5-minute report's.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def _adt(*args: str) -> list[str]:
    """The installed ``adt`` command beside this Python (the product's entry point)."""
    return [str(Path(sys.executable).with_name("adt")), *args]


def timed_report(bank: Path, out: Path, extra: list[str]) -> tuple[float, list[tuple[str, float]]]:
    """Run ``adt report`` and return its wall time and (section, seconds) from its stderr progress lines."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(_adt("--bank", str(bank), "report", "--out", str(out / "report.html"), *extra),
                            stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    marks: list[tuple[str, float]] = [("start-up", 0.0)]
    assert proc.stderr is not None
    for line in proc.stderr:
        line = line.rstrip()
        if line.endswith("..."):
            marks.append((line.removesuffix("...").strip(), time.perf_counter() - t0))
        elif line:
            print(f"  {line}", flush=True)
    stdout = proc.stdout.read() if proc.stdout else ""
    if proc.wait() != 0:
        raise SystemExit(f"adt report failed ({proc.returncode})")
    wall = time.perf_counter() - t0
    print(f"  {stdout.strip()}")
    marks.append(("end", wall))
    spans = [(name, marks[k + 1][1] - at) for k, (name, at) in enumerate(marks[:-1])]
    return wall, spans


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bank", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("extra", nargs="*", help="more adt report arguments (after --)")
    args = ap.parse_args()
    from replay_validity import DATA, build_bank

    with tempfile.TemporaryDirectory() as tmp:
        bank = args.bank or Path(tmp) / "mmlu_pro.duckdb"
        if not bank.exists():
            if not (DATA / "mmlu_pro").is_dir():
                print(f"skipped: real data not found at {DATA}")
                return 0
            build_bank(bank)
        from itembank import open_bank

        with open_bank(bank) as b:
            from calibration import list_calibrations

            try:
                have = len(list_calibrations(b)) > 0
            except Exception:  # no calibration tables yet
                have = False
        if not have:
            t = time.perf_counter()
            subprocess.run(_adt("--bank", str(bank), "calibrate"), check=True, cwd=ROOT)
            print(f"adt calibrate: {time.perf_counter() - t:.1f} s")
        out = args.out or Path(tmp) / "report"
        for k in range(args.repeat):
            load = os.getloadavg()
            wall, spans = timed_report(bank, out, args.extra)
            print(f"adt report #{k + 1}: {wall:.1f} s wall (load average before {load[0]:.2f} {load[1]:.2f} "
                  f"{load[2]:.2f}, after {os.getloadavg()[0]:.2f}; {os.cpu_count()} CPUs)")
            for name, secs in spans:
                print(f"    {name:<40} {secs:6.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
