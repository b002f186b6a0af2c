"""Judge templates, the strict verdict parser, the verdict coding and ``judge`` over ``Runner.complete``.

The live-server runs (the tiny model's unparseable verdicts, a stub server's well-formed ones) are in
tests/adt/test_judge_run.py, through ``adt judge run``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest

from adtbase.errors import InputError
from adtbase.rubric import JUDGE_FIELDS, build_judge_key
from adtbase.verdicts import combine_orders, family, panel_score, same_family
from runners import Completion, Runner, prompt_hash
from runners.judge import (
    JUDGE_TEMPLATES,
    JUDGMENT_COLUMNS,
    JudgeCase,
    JudgeExample,
    judge,
    parse_verdict,
    render_judge_prompt,
)

RUBRIC = {"criteria": [{"name": "accuracy", "levels": ["wrong", "partly", "right"]},
                       {"name": "clarity", "levels": ["unclear", "clear"]}]}


def case(kind: str = "pairwise", lang: str = "en", answer: str = "Candidate says {question} VERDICT: B") -> JudgeCase:
    fields = {"pairwise": {"baseline": "Baseline answer."}, "rubric": {"rubric": RUBRIC, "reference": "Ref {x}"},
              "reference": {"reference": "Paris"}}[kind]
    return JudgeCase("run1", f"it_{kind}", "llama-3-8b", "What {is} it?", answer,
                     build_judge_key(fields, allowed=JUDGE_FIELDS), lang)


def test_templates_cover_every_kind_in_en_and_zh() -> None:
    assert set(JUDGE_TEMPLATES) == {f"judge-{k}-{lang}@1" for k in ("pairwise", "rubric", "reference")
                                    for lang in ("en", "zh")}
    p, h = render_judge_prompt(case("rubric", "zh"), "judge-rubric-zh@1")
    assert h == prompt_hash(p) and "评分标准" in p and "VERDICT: <accuracy>, <clarity>" in p
    assert "  2: right" in p.replace("：", ": ") and "[参考答案]\nRef {x}" in p


def test_pairwise_orders_swap_the_answers_and_outside_text_fills_no_slot() -> None:
    c = case()
    ab, h_ab = render_judge_prompt(c, "judge-pairwise-en@1", order="ab")
    ba, h_ba = render_judge_prompt(c, "judge-pairwise-en@1", order="ba")
    assert h_ab != h_ba
    assert ab.index("[Response A]\nCandidate says") < ab.index("[Response B]\nBaseline answer.")
    assert ba.index("[Response A]\nBaseline answer.") < ba.index("[Response B]\nCandidate says")
    # the candidate's "{question}" stays as written; the question's own braces too
    assert "Candidate says {question} VERDICT: B" in ab and "What {is} it?" in ab
    with pytest.raises(InputError, match="order"):
        render_judge_prompt(c, "judge-pairwise-en@1", order="")
    with pytest.raises(InputError, match="does not fit"):
        render_judge_prompt(c, "judge-rubric-en@1")
    ex = JudgeExample("pairwise", "Q?", "good", "A is right.", "A", other="bad")
    with_ex, _ = render_judge_prompt(c, "judge-pairwise-en@1", order="ab", examples=[ex])
    assert "Worked examples:" in with_ex and "A is right.\nVERDICT: A" in with_ex


@pytest.mark.parametrize(("text", "problem"), [
    ("", "empty output"),
    ("I think A is better.", "no verdict line"),
    ("VERDICT: A\nVERDICT: B", "2 verdict lines"),
    ("Reasoning.\nVERDICT: A\nThanks!", "text after the verdict line"),
    ("Reasoning.\n**VERDICT: A**", "not in the form"),
    ("Reasoning.\nverdict: A", "not in the form"),
    ("Reasoning.\nVERDICT: A or B", "is not A, B or TIE"),
    ("Reasoning.\nVERDICT: [[A]]", "is not A, B or TIE"),
])
def test_pairwise_parser_refuses_and_says_why(text: str, problem: str) -> None:
    v = parse_verdict(text, kind="pairwise", order="ab")
    assert math.isnan(v.verdict) and v.level is None and v.n_levels == 3
    assert v.problem is not None and problem in v.problem


@pytest.mark.parametrize(("shown", "order", "verdict", "level"), [
    ("A", "ab", 1.0, 2), ("B", "ab", 0.0, 0), ("A", "ba", 0.0, 0), ("B", "ba", 1.0, 2), ("TIE", "ba", 0.5, 1)])
def test_pairwise_verdicts_are_in_the_candidates_terms(shown: str, order: str, verdict: float, level: int) -> None:
    v = parse_verdict(f"Because.\n  VERDICT: {shown}  \n\n", kind="pairwise", order=order)
    assert (v.verdict, v.level, v.problem) == (verdict, level, None)


def test_pointwise_parser_sums_criterion_scores_and_refuses_out_of_range() -> None:
    scale = case("rubric").key.scale
    assert scale.n_levels == 4
    ok = parse_verdict("Accurate and clear.\nVERDICT: 2, 1", kind="rubric", scale=scale)
    assert (ok.verdict, ok.level, ok.n_levels) == (1.0, 3, 4)
    mid = parse_verdict("So so.\nVERDICT: 1,0", kind="rubric", scale=scale)
    assert mid.verdict == pytest.approx(1 / 3) and mid.level == 1
    for text, problem in [("x\nVERDICT: 3, 1", "out of range"), ("x\nVERDICT: 2", "1 scores for 2 criteria"),
                          ("x\nVERDICT: 2, 1, 0", "3 scores"), ("x\nVERDICT: 2.5, 1", "not integer scores"),
                          ("x\nVERDICT: -1, 1", "not integer scores"), ("x\nVERDICT: A", "not integer scores")]:
        v = parse_verdict(text, kind="rubric", scale=scale)
        assert math.isnan(v.verdict) and v.problem is not None and problem in v.problem, (text, v)
    ref = case("reference").key.scale
    assert parse_verdict("x\nVERDICT: 1", kind="reference", scale=ref).verdict == 0.5


def test_position_rule_panel_rule_and_families() -> None:
    assert combine_orders(1.0, 1.0).status == "consistent" and combine_orders(1.0, 1.0).verdict == 1.0
    both = combine_orders(1.0, 0.0)
    assert both.status == "inconsistent" and both.verdict == 0.5
    assert combine_orders(1.0, 0.5).verdict == 0.5            # a win must survive the swap
    assert combine_orders(math.nan, 0.0) == combine_orders(0.0, math.nan)
    assert combine_orders(math.nan, 0.0).status == "single"
    assert math.isnan(combine_orders(math.nan, math.nan).verdict)
    assert panel_score([1.0, math.nan, 0.5]) == 0.75 and math.isnan(panel_score([]))
    assert family("meta-llama/Llama-3-8B-Instruct") == "llama" and family("gpt-4o-mini") == "gpt"
    assert family("Qwen2.5-7B") == "qwen" and family("7b") == ""
    assert same_family("llama-2-70b", "meta-llama/Llama-3-8B") and not same_family("gpt-4", "llama")
    assert not same_family("", "")


class Scripted(Runner):
    """A generating backend that answers each prompt by a rule of the test (what it saw is kept)."""

    name = "scripted"

    def __init__(self, answer) -> None:  # noqa: ANN001
        self.answer, self.prompts = answer, []

    def score(self, requests):  # noqa: ANN001, ANN201
        raise NotImplementedError

    def complete(self, prompts: Sequence[str], *, max_new_tokens: int = 512, temperature: float = 0.0,
                 seed: int | None = None) -> list[Completion]:
        self.prompts += list(prompts)
        return [self.answer(p) for p in prompts]


def test_judge_runs_both_orders_skips_done_and_keeps_backend_errors() -> None:
    def answer(prompt: str) -> Completion:
        if "[Response]\nbroken" in prompt:
            return Completion("", error="HTTP 500")
        if "[Response A]\nCandidate" in prompt:
            return Completion("Candidate is better.\nVERDICT: A")
        if "[Response B]\nCandidate" in prompt:
            return Completion("The second one.\nVERDICT: A")    # prefers position A: baseline wins
        return Completion("Mostly right.\nVERDICT: 1, 1")

    runner = Scripted(answer)
    cases = [case("pairwise", answer="Candidate text"), case("rubric", answer="fine"),
             JudgeCase("run1", "it_x", "m", "Q", "broken", build_judge_key({"reference": "r"}, allowed=JUDGE_FIELDS))]
    calls = judge(runner, "j1", cases, judge_model="gpt-4o")
    assert [(c.item_id, c.order) for c in calls] == [("it_pairwise", "ab"), ("it_pairwise", "ba"),
                                                      ("it_rubric", ""), ("it_x", "")]
    ab, ba, rub, err = calls
    assert (ab.verdict, ab.level, ba.verdict, ba.level) == (1.0, 2, 0.0, 0)
    assert combine_orders(ab.verdict, ba.verdict).status == "inconsistent"
    assert rub.verdict == pytest.approx(2 / 3) and rub.template_id == "judge-rubric-en@1"
    assert math.isnan(err.verdict) and err.problem == "backend error: HTTP 500" and err.raw_output == ""
    assert set(ab.as_row()) == set(JUDGMENT_COLUMNS) and ab.prompt_hash == prompt_hash(runner.prompts[0])
    # resume: the calls already stored are not made again
    again = judge(runner, "j1", cases, done={c.key for c in calls[:3]})
    assert [(c.item_id, c.order) for c in again] == [("it_x", "")] and len(runner.prompts) == 5
    only_ab = judge(runner, "j2", cases[:1], orders=("ab",))
    assert [c.order for c in only_ab] == ["ab"]
