"""Run the test suite group by group and print how long each group took.

Groups are folders under tests/ (``lint`` runs ruff and mypy). Exit status is non-zero if any
group failed; pytest's "no tests collected" (5) counts as a failure so CI can't pass on nothing.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def run_group(group: str) -> tuple[int, str]:
    if group == "lint":
        cmds = [[str(BIN / "ruff"), "check", "."], [str(BIN / "mypy")]]
        for cmd in cmds:
            rc = subprocess.call(cmd, cwd=ROOT)
            if rc:
                return rc, "failed"
        return 0, "ok"
    path = ROOT / "tests" / group
    if not path.exists():
        return 0, "no tests yet"
    rc = subprocess.call([sys.executable, "-m", "pytest", "-q", str(path)], cwd=ROOT)
    return rc, "ok" if rc == 0 else f"failed (pytest exit {rc})"


def main(groups: list[str]) -> int:
    summary = []
    worst = 0
    for group in groups:
        print(f"\n===== test group: {group} =====", flush=True)
        start = time.perf_counter()
        rc, status = run_group(group)
        summary.append((group, time.perf_counter() - start, status))
        worst = worst or rc
    print("\n===== test timing =====")
    for group, seconds, status in summary:
        print(f"{group:<14} {seconds:8.1f} s  {status}")
    print(f"{'total':<14} {sum(s for _, s, _ in summary):8.1f} s")
    return 1 if worst else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["lint", "itembank", "calibration", "sampler", "runners", "adt"]))
