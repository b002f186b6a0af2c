"""Multi-select items ("select all that apply"): keys in every form, import, prompt, extraction, exact and
partial-credit scoring, the runners (generation only), fractional scores in calibration, lm-eval export."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from adt import lmeval
from adtbase import itemtypes
from adtbase.errors import InputError
from calibration import ResponseSet, fit_mml
from itembank import ImportOptions, open_bank
from runners import build_request, create, score_logliks, score_request
from runners.base import loglik_continuations

MULTI = itemtypes.get("multi")
CHOICES = ["Paris", "Rome", "Berlin", "Madrid"]


@pytest.mark.parametrize(("raw", "key"), [
    (["B", "D"], "B,D"), (["D", "B"], "B,D"), ("B,D", "B,D"), ("D, B", "B,D"), ("b;d", "B,D"), ("B and D", "B,D"),
    ("BD", "B,D"), ("D,B,B", "B,D"), ("B", "B"), ([1, 3], "B,D"), ("[1, 3]", "B,D"), ('["B", "D"]', "B,D"),
    (np.array([3, 1]), "B,D"), (["Rome", "Madrid"], "B,D"), ("Rome; Madrid", "B,D"), ("Berlin", "C"),
    ("B,D (partial credit)", "B,D (partial credit)"),
])
def test_keys_in_every_form_have_one_canonical_text(raw: object, key: str) -> None:
    assert MULTI.canonical_key(raw, choices=CHOICES) == key


def test_run_together_labels_only_when_unambiguous() -> None:
    assert MULTI.canonical_key("BD", choices=["x", "y", "z", "BD"]) == "D"      # an option's text wins
    assert MULTI.canonical_key("B", choices=["B", "x", "y"]) == "B"             # a single letter is a label, as for mc


@pytest.mark.parametrize(("raw", "fmt", "needle"), [
    ("A,Z", "auto", "names a label not among the 4 choices (A-D)"), ([4], "auto", "index 4 is not among the 4"),
    ("[]", "auto", "names no correct option"), ("Lisbon", "auto", "is not a set of labels"),
    ("B,D", "index", "is not a 0-based index"), ([1, 3], "letter", "is not a label"),
])
def test_bad_keys_say_why(raw: object, fmt: str, needle: str) -> None:
    with pytest.raises(ValueError, match=re.escape(needle)):
        MULTI.canonical_key(raw, choices=CHOICES, answer_format=fmt)


def test_import_any_key_form_gives_one_item(bank_path: Path, tmp_path: Path) -> None:
    rows = [{"id": "a", "question": "Capitals?", "choices": CHOICES, "type": "multi", "answer": ["D", "B"]},
            {"id": "b", "question": "Capitals?", "choices": CHOICES, "type": "multi", "answer": [1, 3]},
            {"id": "c", "question": "Capitals?", "choices": CHOICES, "type": "multi", "answer": "B,D"}]
    path = tmp_path / "m.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    csv = tmp_path / "m.csv"
    csv.write_text('id,question,A,B,C,answer,partial_credit\n1,Pick primes,2,4,5,"A,C",yes\n'
                   '2,Pick evens,2,4,5,AC,\n3,Bad,2,4,5,AZ,maybe\n', encoding="utf-8")
    with open_bank(bank_path) as bank:
        rep = bank.import_items([path], ImportOptions(source="m"))
        assert (rep.rows, rep.new_items) == (3, 1)
        assert bank.item("m:a")["answer"] == "B,D" and bank.item("m:a")["item_type"] == "multi"
        with pytest.raises(InputError) as err:
            bank.import_items([csv], ImportOptions(source="c", item_type="multi", choice_cols=("A", "B", "C")))
        assert "line 4: field 'answer': answer 'AZ' is not a set of labels" in str(err.value)
        assert "line 4: field 'partial_credit': 'maybe' is not true or false" in str(err.value)
        csv.write_text("\n".join(csv.read_text().splitlines()[:3]) + "\n", encoding="utf-8")
        bank.import_items([csv], ImportOptions(source="c", item_type="multi", choice_cols=("A", "B", "C")))
        assert bank.item("c:1")["answer"] == "A,C (partial credit)" and bank.item("c:2")["answer"] == "A,C"
        with pytest.raises(InputError, match="field 'partial_credit': multiple-choice items have no partial credit"):
            bank.import_items([_one(tmp_path, {"question": "Q?", "choices": ["a", "b"], "answer": "A",
                                               "partial_credit": True})], ImportOptions(source="x"))


def _one(tmp_path: Path, row: dict) -> Path:
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps(row) + "\n", encoding="utf-8")
    return path


ITEM = {"item_id": "it_m", "question": "Which are capitals of EU countries?", "choices": CHOICES,
        "answer": "A,C,D", "item_type": "multi", "language": "en"}


def test_prompt_asks_for_every_correct_letter_and_generation_scores_the_set() -> None:
    req = build_request(ITEM)            # mc_mode "loglik" (the default) does not apply: generation
    assert req.template_id == "multi-en-0shot@1" and not req.uses_loglik
    assert "letters of every correct option, separated by commas" in req.prompt
    assert "\nA. Paris\nB. Rome\nC. Berlin\nD. Madrid\nAnswer:" in req.prompt
    assert score_request(req, " A, C, D") == ("A,C,D", 1.0)
    assert score_request(req, "The answer is D, C and A.") == ("A,C,D", 1.0)
    assert score_request(req, "Answer: ACD") == ("A,C,D", 1.0)
    assert score_request(req, "A, C") == ("A,C", 0.0)           # exact set match by default
    assert score_request(req, "Berlin, I think") == (None, 0.0)
    few = build_request(ITEM | {"item_id": "it_2"}, fewshot_items=[ITEM])
    assert "Answer: A, C, D\n\n" in few.prompt


@pytest.mark.parametrize(("output", "credit"), [
    ("A, C, D", 1.0), ("A, C", 2 / 3), ("A", 1 / 3), ("A, B", 1 / 4), ("A, B, C, D", 3 / 4), ("B", 0.0),
    ("nothing", 0.0),
])
def test_partial_credit_is_the_jaccard_index(output: str, credit: float) -> None:
    req = build_request(ITEM | {"answer": "A,C,D (partial credit)"})
    assert score_request(req, output)[1] == pytest.approx(credit)


def test_single_option_loglik_is_refused_naming_the_type() -> None:
    req = build_request(ITEM, mc_mode="loglik")
    with pytest.raises(ValueError, match=r"item type 'multi' \(multi-select\) is scored by generation only"):
        score_logliks(req, [-1.0, -2.0, -3.0, -4.0])
    with pytest.raises(ValueError, match=r"item type 'multi'"):
        loglik_continuations(req)


def test_simulated_and_replayed_runs() -> None:
    req = build_request(ITEM)
    sim = create("simulated", theta=0.0, params={"it_m": (1.0, 0.0, 0.0, 1.0)},
                 rng=np.random.default_rng(5)).score([req] * 30)
    assert {r.extracted for r in sim if r.score == 1} == {"A,C,D"}
    wrong = {r.extracted for r in sim if r.score == 0}
    assert wrong and "A,C,D" not in wrong
    record = pd.DataFrame({"model": "m", "question_id": ["it_m"], "pred": ["A,C"], "pred_missing": False,
                           "correct": [2 / 3]})
    (res,) = create("replay", responses=record, model="m").score([req])
    assert res.score == pytest.approx(2 / 3)


def test_partial_credit_scores_calibrate_as_fractional_scores(rng: np.random.Generator) -> None:
    """The MML fitter takes a score s in [0, 1] as s successes and 1 - s failures (no thresholding)."""
    n_models, n_items = 40, 12
    theta = rng.normal(size=n_models)
    b = np.linspace(-1.5, 1.5, n_items)
    p = 1 / (1 + np.exp(-(theta[:, None] - b[None, :])))
    thirds = rng.binomial(3, p) / 3            # partial credit in thirds, as a three-option key gives
    m, i = np.meshgrid(np.arange(n_models), np.arange(n_items), indexing="ij")
    rs = ResponseSet.from_frame(pd.DataFrame({"model": m.ravel().astype(str), "item": i.ravel().astype(str),
                                              "score": thirds.ravel()}), "model", "item", "score")
    assert set(np.round(rs.score * 3)) <= {0, 1, 2, 3} and ((rs.score > 0) & (rs.score < 1)).any()
    fit = fit_mml(rs, "2pl", rng=rng)
    assert fit.converged
    order = np.argsort([int(x) for x in fit.params.item_ids])
    assert np.corrcoef(fit.params.b[order], b)[0, 1] > 0.9


def test_lmeval_export_refuses_multi_select_and_inexact_numeric_keys(monkeypatch: pytest.MonkeyPatch,
                                                                       tmp_path: Path) -> None:
    items = pd.DataFrame({"item_id": ["it_1", "it_2"], "item_type": ["mc", "multi"], "answer": ["A", "A,C"],
                          "question": ["q1", "q2"], "choices": [["a", "b"], ["a", "b", "c"]]})
    monkeypatch.setattr(lmeval, "form_items", lambda bank, form: items)
    with pytest.raises(InputError, match=r"\['multi'\] have no lm-eval export .*multi-select: .*no set match.*it_2"):
        lmeval.export_task(None, "f1", tmp_path / "out")  # type: ignore[arg-type]
    items = pd.DataFrame({"item_id": ["it_3", "it_4"], "item_type": ["numeric", "numeric"],
                          "answer": ["42", "3.27e-22 ± 1%"], "question": ["q3", "q4"], "choices": [None, None]})
    with pytest.raises(InputError, match=r"1 numeric item\(s\) have a key lm-eval's exact match cannot score.*it_4"):
        lmeval.export_task(None, "f2", tmp_path / "out")  # type: ignore[arg-type]
    assert not any((tmp_path / "out").glob("*.yaml"))
