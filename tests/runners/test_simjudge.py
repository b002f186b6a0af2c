"""The simulated judge (``simjudge``, a simulation device) and the simulated candidate's written answers: the
judge reads the real rendered prompts, answers verdicts the strict parser accepts, and shows the biases it was
given; the candidate's answers carry a quality drawn from ability and item parameters."""

from __future__ import annotations

import numpy as np
import pytest

from adtbase.errors import InputError
from adtbase.rubric import JUDGE_FIELDS, build_judge_key
from runners import create
from runners.base import Request, ScoringRule
from runners.judge import JudgeCase, judge, parse_verdict, render_judge_prompt
from runners.simjudge import SimulatedJudge, read_quality, write_answer
from runners.simulated import SimulatedRunner

RUBRIC = {"criteria": [{"name": "accuracy", "levels": ["wrong", "partly", "mostly", "right"]},
                       {"name": "clarity", "levels": ["unclear", "clear"]}]}


def answer(z: float, words: int = 40, seed: int = 0) -> str:
    return write_answer(z, words, np.random.default_rng(seed))


def pair_case(z_cand: float, z_base: float, lang: str = "en", words: tuple[int, int] = (40, 40), k: int = 0
              ) -> JudgeCase:
    key = build_judge_key({"baseline": answer(z_base, words[1], k + 1)}, allowed=JUDGE_FIELDS)
    return JudgeCase("r", f"it_{k}", "sim-01", "Explain {it}.", answer(z_cand, words[0], k), key, lang)


def rubric_case(z: float, lang: str = "en", k: int = 0, rubric: dict | None = None) -> JudgeCase:
    fields = {"rubric": rubric or RUBRIC} if rubric is not False else {"reference": "The reference."}
    return JudgeCase("r", f"it_{k}", "sim-01", "Explain.", answer(z, 40, k), build_judge_key(fields, allowed=JUDGE_FIELDS),
                     lang)


def verdicts(j: SimulatedJudge, cases: list[JudgeCase]) -> list:
    return judge(j, "sim", cases)


def test_answers_carry_their_quality_and_only_one_marker_counts() -> None:
    text = answer(-1.234, 10)
    assert read_quality(text) == pytest.approx(-1.234)
    assert read_quality("no marker") is None
    assert read_quality(text + " " + answer(0.5)) is None   # two markers: ambiguous, refused


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_a_fair_noiseless_judge_picks_the_better_answer_in_both_orders(lang: str) -> None:
    j = SimulatedJudge("fair,noise=0")
    calls = verdicts(j, [pair_case(1.0, -0.5, lang), pair_case(-1.0, 0.5, lang, k=1), pair_case(0.0, 0.05, lang, k=2)])
    got = {(c.item_id, c.order): c.verdict for c in calls}
    assert all(c.problem is None for c in calls)
    assert got[("it_0", "ab")] == got[("it_0", "ba")] == 1.0       # candidate better, whichever shown first
    assert got[("it_1", "ab")] == got[("it_1", "ba")] == 0.0
    assert got[("it_2", "ab")] == got[("it_2", "ba")] == 0.5       # within the tie margin


def test_position_bias_prefers_the_first_shown_and_shows_as_inconsistent_pairs() -> None:
    cases = [pair_case(0.0, 0.0, k=k) for k in range(200)]
    fair = verdicts(SimulatedJudge("fair", noise=0.5, tie_margin=0.0), cases)
    first = verdicts(SimulatedJudge("first", noise=0.5, tie_margin=0.0), cases)

    def first_shown_wins(calls: list) -> float:   # A won: ab -> candidate (1.0), ba -> baseline (0.0)
        return float(np.mean([(c.verdict == 1.0) == (c.order == "ab") for c in calls]))

    assert 0.35 < first_shown_wins(fair) < 0.65
    assert first_shown_wins(first) > 0.85


def test_length_bias_prefers_the_longer_answer_at_equal_quality() -> None:
    cases = [pair_case(0.0, 0.0, words=(150, 15), k=k) for k in range(100)]
    assert np.mean([c.verdict for c in verdicts(SimulatedJudge("long", tie_margin=0.0), cases)]) > 0.9
    assert 0.3 < np.mean([c.verdict for c in verdicts(SimulatedJudge("fair", noise=1.0, tie_margin=0.0), cases)]) < 0.7


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_pointwise_levels_follow_quality_and_severity(lang: str) -> None:
    cases = [rubric_case(z, lang, k) for k, z in enumerate(np.linspace(-3, 3, 60))]
    harsh = verdicts(SimulatedJudge("harsh"), cases)
    lenient = verdicts(SimulatedJudge("lenient"), cases)
    assert all(c.problem is None and c.n_levels == 5 for c in harsh + lenient)
    h, l_ = np.array([c.level for c in harsh]), np.array([c.level for c in lenient])
    assert h.mean() < l_.mean() - 0.5
    assert np.corrcoef(np.linspace(-3, 3, 60), h)[0, 1] > 0.8
    ref = verdicts(SimulatedJudge("fair,noise=0"), [rubric_case(3.0, lang, 0, False), rubric_case(-3.0, lang, 1, False)])
    assert [c.level for c in ref] == [2, 0]        # the reference scale: three levels


def test_same_prompt_same_verdict_and_refusals_are_parsed_as_refusals() -> None:
    c = pair_case(0.1, 0.0)
    prompt, _ = render_judge_prompt(c, "judge-pairwise-en@1", order="ab")
    j = SimulatedJudge("noisy,seed=4")
    assert [o.text for o in j.complete([prompt] * 3)] == [j.complete([prompt])[0].text] * 3
    refusing = SimulatedJudge("fair", refuse=1.0)
    out = refusing.complete([prompt])[0]
    assert out.ok and parse_verdict(out.text, kind="pairwise", order="ab").problem == "no verdict line"
    bare = JudgeCase("r", "it", "m", "Q", "an answer with no marker", c.key)
    assert "no single sim-quality" in str(SimulatedJudge().complete([render_judge_prompt(bare, "judge-pairwise-en@1",
                                                                                         order="ab")[0]])[0].error)
    assert "not a judge prompt" in str(SimulatedJudge().complete(["hello"])[0].error)


def test_spec_and_registry() -> None:
    j = create("simjudge", model="harsh,noise=0.1,seed=3", length_bias=0.5)
    assert (j.bias.severity, j.bias.noise, j.bias.seed, j.bias.length_bias) == (0.8, 0.1, 3, 0.5)
    with pytest.raises(InputError, match="unknown preset 'grumpy'.*unknown key 'bogus'"):
        SimulatedJudge("grumpy,bogus=1")
    with pytest.raises(InputError, match="refuse=2"):
        SimulatedJudge(refuse=2.0)


def test_the_simulated_candidate_writes_graded_answers_for_judge_scored_items() -> None:
    rule = ScoringRule("judge", build_judge_key({"baseline": "b"}, allowed=JUDGE_FIELDS).text())
    reqs = [Request(f"it_{k}", "Q", "pairwise", rule) for k in range(300)]
    mc = Request("it_mc", "Q\nA. x\nB. y", "mc", ScoringRule("choice", "A"), choices=("x", "y"))
    strong = SimulatedRunner(2.0, {r.item_id: (1.0, 0.0, 0.0, 1.0) for r in [*reqs, mc]}, np.random.default_rng(1))
    weak = SimulatedRunner(-2.0, strong.params, np.random.default_rng(1))
    zs = [read_quality(r.raw_output) for r in strong.score(reqs)]
    zw = [read_quality(r.raw_output) for r in weak.score(reqs)]
    assert np.mean(zs) == pytest.approx(2.0, abs=0.15) and np.mean(zw) == pytest.approx(-2.0, abs=0.15)
    assert np.std(zs) == pytest.approx(0.5, abs=0.1)
    lengths = [len(r.raw_output) for r in strong.score(reqs[:50])]
    assert max(lengths) > 2 * min(lengths)            # lengths vary, apart from quality
    mixed = strong.score([reqs[0], mc])
    assert mixed[0].score == 0.0 and read_quality(mixed[0].extracted or "") is not None
    assert mixed[1].extracted in ("A", "B")
