"""The runner contract and the backend registry, checked the same way over every local backend."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from adtbase.errors import InputError, RunnerError
from runners import Request, Result, Runner, ScoringRule, available, create, register
from runners.base import check_results, loglik_continuations


def requests(n: int = 12) -> list[Request]:
    out = []
    for i in range(n):
        if i % 3 == 2:
            out.append(Request(f"n{i}", f"Question: {i} + 1 = ?\nAnswer:", "numeric",
                               ScoringRule("numeric", str(i + 1)), max_new_tokens=4))
        else:
            out.append(Request(f"m{i}", "Question: " + "word " * (i * 3 % 11) + "?\nAnswer:", "mc",
                               ScoringRule("choice", "B"), choices=("one", "two", "three" * (i % 4 + 1))))
    return out


@pytest.fixture(params=["replay", "simulated", "hf"])
def backend(request: pytest.FixtureRequest, tiny_model_dir: Path) -> Runner:
    reqs = requests()
    if request.param == "replay":
        rows = pd.DataFrame({"model": "m", "question_id": [r.item_id for r in reqs], "pred": "B",
                             "pred_missing": False, "correct": [i % 2 for i in range(len(reqs))]})
        return create("replay", responses=rows, model="m")
    if request.param == "simulated":
        params = {r.item_id: (1.0, 0.1 * k, 0.0, 1.0) for k, r in enumerate(reqs)}
        return create("simulated", theta=0.0, params=params, rng=np.random.default_rng(0))
    return create("hf", model=str(tiny_model_dir), device="cpu", dtype="float32", batch_tokens=64)


def test_every_backend_answers_in_request_order(backend: Runner) -> None:
    reqs = requests()
    order = np.random.default_rng(1).permutation(len(reqs))
    shuffled = [reqs[i] for i in order]
    with backend:
        results = backend.score(shuffled)
    assert [r.item_id for r in results] == [r.item_id for r in shuffled]
    assert all(isinstance(r, Result) and 0.0 <= r.score <= 1.0 and r.error is None for r in results)
    assert backend.score([]) == []


def test_registry_names_and_hints(monkeypatch: pytest.MonkeyPatch) -> None:
    from runners import registry

    monkeypatch.setattr(registry, "_TARGETS", dict(registry._TARGETS))  # registrations below stay local
    # The built-in backends (tests elsewhere in the same process may have added "package.module:Class" ones).
    assert {n for n in available() if ":" not in n} == {"hf", "openai", "replay", "simjudge", "simulated", "vllm"}
    with pytest.raises(InputError, match="did you mean 'replay'"):
        create("replya")
    with pytest.raises(InputError, match="bad backend arguments"):
        create("simulated", theta=0.0)
    with pytest.raises(InputError, match="package.module:Class"):
        register("x", "no_colon")
    register("broken", "runners.no_such_module:Nope")
    with pytest.raises(RunnerError, match="could not be imported"):
        create("broken")
    register("not_a_runner", "runners.base:Request")
    with pytest.raises(RunnerError, match="not a Runner subclass"):
        create("not_a_runner")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"item_type": "mc", "choices": ("a",)}, "at least 2 choices"),
    ({"item_type": "mc", "choices": ("a", "b"), "scoring": ScoringRule("exact", "a")}, "'choice' rule"),
    ({"item_type": "mc", "choices": ("a", "b"), "scoring": ScoringRule("choice", "C")}, "not one of"),
    ({"item_type": "open", "scoring": ScoringRule("choice", "A")}, "multiple-choice"),
    ({"item_type": "open", "choices": ("a", "b"), "scoring": ScoringRule("exact", "a")}, "has no choices"),
    ({"item_type": "essay"}, "item_type"),
    ({"mc_mode": "beam"}, "mc_mode"),
    ({"max_new_tokens": 0}, "max_new_tokens"),
])
def test_bad_requests_are_refused(kwargs: dict, message: str) -> None:
    base = {"item_id": "i", "prompt": "Q?", "item_type": "open", "scoring": ScoringRule("exact", "x")}
    with pytest.raises(ValueError, match=message):
        Request(**{**base, **kwargs})


def test_the_key_does_not_leave_through_public_views() -> None:
    req = Request("i", "Q?", "mc", ScoringRule("choice", "B"), choices=("secret-a", "secret-b"))
    assert "scoring" not in req.public() and "B" not in repr(req.scoring)
    with pytest.raises(ValueError, match="outside"):
        Result("i", "", None, 1.5)


def test_loglik_continuations_move_the_separator() -> None:
    req = Request("i", "Q?\nAnswer:", "mc", ScoringRule("choice", "A"), choices=(" Paris ", "Rome"))
    assert loglik_continuations(req) == ("Q?\nAnswer:", (" Paris", " Rome"))
    spaced = Request("i", "Q?\nAnswer: ", "mc", ScoringRule("choice", "A"), choices=("Paris", "Rome"),
                     loglik_target="label")
    assert loglik_continuations(spaced) == ("Q?\nAnswer:", (" A", " B"))
    newline = Request("i", "答案：\n", "mc", ScoringRule("choice", "A"), choices=("北京", "上海"))
    assert loglik_continuations(newline) == ("答案：", ("\n北京", "\n上海"))


def test_check_results_catches_broken_backends() -> None:
    reqs = requests(3)
    good = [Result(r.item_id, "", None, 0.0) for r in reqs]
    assert check_results(reqs, good, "x") == good
    with pytest.raises(RunnerError, match="2 results for 3 requests"):
        check_results(reqs, good[:2], "x")
    with pytest.raises(RunnerError, match="result 0 is for item"):
        check_results(reqs, good[::-1], "x")
