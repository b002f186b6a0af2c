"""Make tests/data/pre006_bank/: a bank as adt wrote it before migration 006 (per-item history events), with the
as-of views its own code gave at each head, for tests/itembank/test_batch_history.py.

Run it with the pre-006 code on the path (it is kept for the record; the fixture is committed):
    git worktree add --detach /tmp/pre006 c615945
    PYTHONPATH=/tmp/pre006 python tests/data/make_pre006_bank.py
The bank is stored as DuckDB's EXPORT DATABASE (Parquet files and the schema), which any later DuckDB imports, and
as the old code's own export (``export/``, the state after the recorded views plus its export head).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

import duckdb
import pandas as pd

from itembank import ImportOptions, open_bank, snapshot

OUT = Path(__file__).resolve().parent / "pre006_bank"
ROWS = [{"id": f"q{i}", "question": f"What is {i} + {i}?", "choices": [str(2 * i), str(2 * i + 1), "7"],
         "answer": "A", "tags": {"domain": ["math"] + (["trivia"] if i % 3 == 0 else [])}} for i in range(12)]
LATER = [{"id": "x-q1", "question": "What is 1 + 1?", "choices": ["2", "3", "7"], "answer": "A",
          "tags": {"domain": ["math", "history"]}},          # q1 again: aliased + tagged events
         {"id": "x-new", "question": "Capital of Peru?", "choices": ["Lima", "Quito"], "answer": "A",
          "tags": {"domain": "geography"}}]


def frame_json(frame: pd.DataFrame) -> object:
    drop = [c for c in ("difficulty_band", "calibrated_b") if c in frame.columns]
    return json.loads(frame.drop(columns=drop).to_json(orient="split", index=False))


def main() -> None:
    work = Path(tempfile.mkdtemp())
    bank_path = work / "bank.duckdb"
    heads = []
    with open_bank(bank_path, create=True) as bank:
        src = work / "a.jsonl"
        src.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
        bank.import_items([src], ImportOptions(source="toy", extend_taxonomy=True))
        heads.append(bank.record_head("after import"))
        pd.DataFrame({"model": ["m1", "m1", "m2", "m2"], "qid": ["q0", "q1", "q0", "q2"],
                      "score": [1.0, 0.0, 0.5, 1.0]}).to_parquet(work / "r.parquet")
        bank.import_responses(work / "r.parquet", source="toy", model_col="model", item_col="qid", score_col="score",
                              round_no=1)
        ids = {f"q{i}": bank.resolve(f"toy:q{i}") for i in range(12)}
        bank.start_run("run1", model="m3", kind="form")
        bank.ingest_responses("run1", pd.DataFrame({"item_id": [ids["q3"], ids["q4"]], "score": [1.0, 0.0]}))
        heads.append(bank.record_head("after responses"))
        bank.tag(["toy:q5"], "domain", "trivia")
        bank.retire(["toy:q6"], reason="leaked")
        bank.set_review_state(["toy:q7"], "draft")
        new = bank.edit_item("toy:q7", reviewer="ana", question="What is 7 + 7, exactly?", reason="clearer")
        bank.set_stage(["toy:q8"], "operational", reason="calibrated")
        bank.save_form("f1", [ids["q9"], ids["q10"]], spec={}, strategy="random", seed=1, snapshot_id="s",
                       calibration_id=None, objectives={}, content_hash="h", n_uncalibrated=2)
        bank.publish("f1", round_no=2)
        heads.append(bank.record_head("after curation"))
        later = work / "b.jsonl"
        later.write_text("".join(json.dumps(r) + "\n" for r in LATER))
        bank.import_items([later], ImportOptions(source="x", extend_taxonomy=True))
        bank.ingest_responses("run1", pd.DataFrame({"item_id": [ids["q5"], new], "score": [1.0, 1.0]}))
        heads.append(bank.head())
        expected = {
            "head": str(bank.head()), "snapshot_id": bank.snapshot_id(), "edited_item": new,
            "as_of": {str(h): {"items": frame_json(bank.items(include_retired=True, as_of=h)),
                               "trivia": frame_json(bank.items({"domain": ["trivia", "history"]}, as_of=h))}
                      for h in heads},
            "history_q1": [list(r) for r in bank.item_history("toy:q1")[["seq", "kind", "ref"]].itertuples(index=False)],
        }
        snapshot.export(bank, work / "export")   # an export made by the old code (records one more head)
        expected["export_snapshot_id"] = bank.snapshot_id()
    if OUT.exists():
        shutil.rmtree(OUT)
    conn = duckdb.connect(str(bank_path))
    conn.execute(f"EXPORT DATABASE '{OUT}' (FORMAT PARQUET)")
    conn.close()
    (OUT / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True))
    shutil.copytree(work / "export", OUT / "export")
    shutil.rmtree(work)
    print(f"wrote {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
