"""Review states (issue 13, first part), through the CLI: draft -> approved | rejected, forms draw approved
items only unless asked, every decision an event with the state it left, and refused moves change nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from adt.cli import cli
from itembank import open_bank


def _adt(bank: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--bank", str(bank), *args], catch_exceptions=False)


def _fails(bank: Path, *args: str) -> str:
    """The one-line message of a refused command (exit 1; ``adt.cli.main`` prints it)."""
    res = CliRunner().invoke(cli, ["--bank", str(bank), *args])
    assert res.exit_code == 1, res.output
    return res.output.strip() if isinstance(res.exception, SystemExit) else str(res.exception)


def _rows(prefix: str, n: int) -> list[dict]:
    return [{"id": f"{prefix}{k}", "question": f"{prefix} question {k}: which?", "choices": ["w", "x", "y", "z"],
             "answer": "ABCD"[k % 4], "tags": {"domain": "math" if k % 2 else "law"}} for k in range(n)]


@pytest.fixture()
def bank(tmp_path: Path) -> Path:
    path = tmp_path / "b.duckdb"
    assert _adt(path, "init").exit_code == 0
    for name, rows, state in (("cur", _rows("c", 6), None), ("gen", _rows("g", 8), "draft")):
        f = tmp_path / f"{name}.jsonl"
        f.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        args = ["bank", "import", str(f), "--source", name] + (["--review-state", state] if state else [])
        assert _adt(path, *args).exit_code == 0
    return path


def _states(bank: Path) -> dict[str, str]:
    with open_bank(bank) as b:
        frame = b.items(include_retired=True)
        names = {b.resolve(f"{s}:{p}{k}"): f"{p}{k}" for s, p, n in (("cur", "c", 6), ("gen", "g", 8))
                 for k in range(n)}
    return {names[i]: s for i, s in zip(frame["item_id"], frame["review_state"], strict=True)}


def _form_items(bank: Path, name: str) -> set[str]:
    out = json.loads(_adt(bank, "form", "show", name, "--json").output)
    return {str(a) for row in out["items"] for a in str(row.get("aliases", "")).split(",") if a}


def test_imports_arrive_as_declared_and_forms_draw_approved_only(bank: Path) -> None:
    st = _states(bank)
    assert {st[f"c{k}"] for k in range(6)} == {"approved"} and {st[f"g{k}"] for k in range(8)} == {"draft"}
    r = _adt(bank, "sample", "--strategy", "random", "--size", "6", "--name", "f1", "--seed", "1", "--json")
    assert r.exit_code == 0, r.output
    ids = json.loads(r.output)["item_ids"]
    with open_bank(bank) as b:
        states = set(b.items({"item_id": ids})["review_state"])
    assert states == {"approved"}
    # more than the approved items: refused, naming the drafts that wait and how to let them in
    msg = _fails(bank, "sample", "--strategy", "random", "--size", "10", "--name", "f2")
    assert "only 6 eligible items" in msg and "8 more are drafts waiting for review" in msg
    r = _adt(bank, "sample", "--strategy", "random", "--size", "10", "--name", "f2", "--review-state", "approved",
             "--review-state", "draft", "--json")
    assert r.exit_code == 0, r.output
    form = json.loads(r.output)
    assert form["spec"]["review_states"] == ["approved", "draft"]
    # a state that does not exist, or one never eligible: one line, exit 1, no form
    for bad, says in (("aproved", "did you mean 'approved'"), ("rejected", "never eligible")):
        assert says in _fails(bank, "sample", "--size", "2", "--name", "f3", "--review-state", bad)
    assert sorted(f["name"] for f in json.loads(_adt(bank, "form", "list", "--json").output)) == ["f1", "f2"]


def test_decisions_are_events_and_refused_moves_change_nothing(bank: Path) -> None:
    with open_bank(bank) as b:
        head0 = b.head()
    # a rejection needs a reason
    assert "needs a reason" in _fails(bank, "bank", "review", "gen:g0", "--state", "rejected")
    assert "1 items now rejected" in _adt(bank, "bank", "review", "gen:g0", "--state", "rejected", "--reason",
                                         "two keys are right", "--reviewer", "ana").output
    assert "2 items now approved" in _adt(bank, "bank", "review", "gen:g1", "gen:g2", "--reviewer", "ben").output
    # approved -> rejected and rejected -> approved skip the draft step: both named at once, nothing written
    with open_bank(bank) as b:
        b.retire(["cur:c5"], reason="leaked")
        head1 = b.head()
    msg = _fails(bank, "bank", "review", "gen:g0", "cur:c5", "gen:g3", "--state", "approved")
    assert "2 of 3 items cannot be approved; nothing changed" in msg
    assert "gen:g0 (it_" in msg and "is rejected: it can go to draft only" in msg and "cur:c5 (it_" in msg
    assert "is retired" in msg
    assert "is approved: it can go to draft only" in _fails(bank, "bank", "review", "gen:g1", "--state", "rejected",
                                                            "--reason", "x")
    with open_bank(bank) as b:
        assert b.head() == head1 and head1 != head0
    st = _states(bank)
    assert (st["g0"], st["g1"], st["g3"], st["c5"]) == ("rejected", "approved", "draft", "retired")
    # setting the state an item has is no move: no event
    assert "0 items now approved (1 already were)" in _adt(bank, "bank", "review", "gen:g1").output
    with open_bank(bank) as b:
        assert b.head() == head1
        hist = b.item_history("gen:g0")
    decided = hist[hist["kind"] == "rejected"]
    payload = json.loads(decided["payload"].iloc[0])
    assert payload == {"from": "draft", "reason": "two keys are right", "reviewer": "ana"}
    # re-review: back to draft, then approved; a rejected item is never drawn meanwhile
    r = _adt(bank, "sample", "--strategy", "all", "--name", "all1", "--review-state", "approved",
             "--review-state", "draft", "--json")
    with open_bank(bank) as b:
        gone = b.resolve("gen:g0")
    assert gone not in json.loads(r.output)["item_ids"]
    assert "1 items now draft" in _adt(bank, "bank", "review", "gen:g0", "--state", "draft").output
    assert "1 items now approved" in _adt(bank, "bank", "review", "gen:g0").output
    assert _states(bank)["g0"] == "approved"


def test_the_history_rolls_a_review_state_back_to_the_one_it_left(bank: Path) -> None:
    """An item imported as a draft and approved later was a draft before the approval (the import state is
    no event; the approval's "from" says what it was)."""
    with open_bank(bank) as b:
        before = b.head()
        b.set_review_state(["gen:g4"], "approved", reviewer="ana")
        b.retire(["cur:c1"], reason="leaked")
        then = b.items(include_retired=True, as_of=before).set_index("item_id")["review_state"]
        assert then[b.resolve("gen:g4")] == "draft" and then[b.resolve("cur:c1")] == "approved"
        assert b.items(include_retired=True).set_index("item_id").loc[b.resolve("gen:g4"), "review_state"] == "approved"
    assert _adt(bank, "bank", "verify").exit_code == 0


def test_adt_review_lists_the_queue_and_refuses_to_override_a_decision(bank: Path) -> None:
    """`adt review` for scripting: the queue of drafts, approve / reject / reopen with the reviewer's name, and a
    second reviewer's conflicting decision refused with who decided and when (nothing overwritten)."""
    queue = json.loads(_adt(bank, "review", "list", "--json").output)
    assert queue["state"] == "draft" and queue["total"] == 8 and len(queue["items"]) == 8
    assert "8 items draft" in _adt(bank, "review", "list", "--filter", "domain=math,law", "--limit", "3").output
    assert "1 items now rejected" in _adt(bank, "review", "reject", "gen:g5", "--reason", "key wrong: 4 is right",
                                         "--reviewer", "ana").output
    msg = _fails(bank, "review", "approve", "gen:g5", "--reviewer", "ben")
    assert "gen:g5 (it_" in msg and "is rejected" in msg and "by ana at" in msg and "key wrong: 4 is right" in msg
    assert _states(bank)["g5"] == "rejected"
    # rejecting needs --reason on this command too
    assert _adt(bank, "review", "reject", "gen:g6").exit_code == 2
    assert "1 items now approved" in _adt(bank, "review", "approve", "gen:g6", "--reviewer", "ben").output
    rejected = json.loads(_adt(bank, "review", "list", "--state", "rejected", "--json").output)["items"]
    assert [(r["last_state"], r["last_reviewer"], r["last_reason"]) for r in rejected] == \
        [("rejected", "ana", "key wrong: 4 is right")]
    shown = json.loads(_adt(bank, "review", "show", "gen:g5", "--json").output)
    assert shown["review_state"] == "rejected"
    assert [h["kind"] for h in shown["review_history"]] == ["rejected"]
    assert "1 items now draft" in _adt(bank, "review", "reopen", "gen:g5", "--reason", "key fixed").output
    assert len(json.loads(_adt(bank, "review", "list", "--json").output)["items"]) == 7   # 8 - g6 approved


def test_adt_review_edit_makes_a_new_version_and_supersedes_the_draft(bank: Path) -> None:
    """An edit is a new item (new content hash) whose parent is the old one, arriving as a draft; the old draft
    leaves the queue as rejected ('superseded by'), both with an event in the reviewer's name; bad edits and
    edits of decided items are refused with nothing written."""
    with open_bank(bank) as b:
        old = b.resolve("gen:g3")
        before = b.head()
    out = json.loads(_adt(bank, "review", "edit", "gen:g3", "--question", "g question 3: which one?", "--choice", "w",
                          "--choice", "x", "--choice", "y", "--choice", "zed", "--answer", "zed",
                          "--tag", "domain=physics", "--reason", "clearer", "--reviewer", "ana", "--json").output)
    new = out["item_id"]
    assert new.startswith("it_") and new != old
    shown = json.loads(_adt(bank, "review", "show", new, "--json").output)
    assert (shown["parent_item_id"], shown["review_state"], shown["source"]) == (old, "draft", "gen")
    assert shown["question"] == "g question 3: which one?" and shown["answer"] == "D"   # 'zed' is option D
    assert shown["tags"] == {"domain": ["physics"]} and shown["choices"] == ["w", "x", "y", "zed"]
    old_shown = json.loads(_adt(bank, "review", "show", "gen:g3", "--json").output)
    assert old_shown["review_state"] == "rejected" and old_shown["derived_items"] == [new]
    last = json.loads(old_shown["review_history"][-1]["payload"])
    assert last["reviewer"] == "ana" and last["reason"] == f"superseded by {new}: clearer"
    with open_bank(bank) as b:
        created = b.item_history(new)
        head = b.head()
    assert list(created["kind"]) == ["created"]
    assert json.loads(created["payload"].iloc[0])["parent"] == old
    queue = {r["item_id"] for r in json.loads(_adt(bank, "review", "list", "--json").output)["items"]}
    assert new in queue and old not in queue
    # refused, nothing written: the same content, a key outside the choices, a decided item, no change asked
    assert "an edit must change the item's content" in _fails(bank, "review", "edit", new, "--answer", "D",
                                                              "--reviewer", "ben")
    assert "answer 'E' is not among the 4 choices" in _fails(bank, "review", "edit", new, "--answer", "E",
                                                            "--reviewer", "ben")
    msg = _fails(bank, "review", "edit", "gen:g3", "--question", "again?", "--reviewer", "ben")
    assert "is rejected (rejected by ana at" in msg and "adt review reopen gen:g3" in msg
    assert _adt(bank, "review", "approve", "gen:g4", "--reviewer", "ana").exit_code == 0
    assert "send it back to draft first" in _fails(bank, "review", "edit", "gen:g4", "--question", "z?")
    with open_bank(bank) as b:
        assert b.head().n_events == head.n_events + 1   # only the approval
    assert _adt(bank, "review", "edit", new, "--reviewer", "ben").exit_code == 2
    assert _adt(bank, "bank", "verify").exit_code == 0
    with open_bank(bank) as b:   # as of the head before the edit: the old draft, no new item
        then = b.items(include_retired=True, as_of=before).set_index("item_id")["review_state"]
    assert then[old] == "draft" and new not in then.index
