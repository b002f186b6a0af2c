"""itembank.variants: the key follows a shuffle, renumber recomputes (and refuses), perturb is reproducible."""

from __future__ import annotations

import itertools
import json
import textwrap

import numpy as np
import pytest

from adtbase import itemtypes, sandbox
from adtbase.errors import InputError, VariantRefused
from itembank import ImportOptions, open_bank
from itembank.content import LETTERS, content_hash, item_id_from_hash
from itembank.variants import _follow_key, edit_words, perturb, question_numbers, renumber, shuffle_options

needs_sandbox = pytest.mark.skipif(sandbox.available() is not None, reason=str(sandbox.available()))

JANET = {"item_id": "it_janet", "item_type": "numeric", "language": "en", "tags": {}, "choices": None,
         "answer": "18",
         "question": "Janet’s ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes "
                     "muffins for her friends every day with four. She sells the remainder at the farmers' "
                     "market daily for $2 per fresh duck egg. How much in dollars does she make every day at "
                     "the farmers' market?"}
JANET_PROGRAM = "def solve(n0, n1):\n    return (n0 - 3 - 4) * n1\n"
ROBE = {"item_id": "it_robe", "item_type": "numeric", "language": "en", "tags": {}, "choices": None, "answer": "3",
        "question": "A robe takes 2 bolts of blue fiber and half that much white fiber.  How many bolts in total "
                    "does it take?"}
ROBE_PROGRAM = "def solve(n0):\n    return n0 + n0 / 2\n"
JOSH = {"item_id": "it_josh", "item_type": "numeric", "language": "en", "tags": {}, "choices": None,
        "answer": "70000",
        "question": "Josh decides to try flipping a house.  He buys a house for $80,000 and then puts in $50,000 "
                    "in repairs.  This increased the value of the house by 150%.  How much profit did he make?"}
JOSH_PROGRAM = "def solve(n0, n1, n2):\n    return n0 * (1 + n2 / 100) - n0 - n1\n"
MC_SUM = {"item_id": "it_sum", "item_type": "mc", "language": "zh", "tags": {},
          "question": "计算 12 + 30 的结果。", "choices": ["40", "42", "44", "52"], "answer": "B"}


def mc_item(n: int, key: str, kind: str = "mc") -> dict:
    return {"item_id": f"it_{kind}{n}", "item_type": kind, "language": "en", "tags": {},
            "question": "Which one?", "choices": [f"option {i}" for i in range(n)], "answer": key}


def key_texts(item: dict) -> set[str]:
    kind = itemtypes.get(item["item_type"])
    return {item["choices"][LETTERS.index(label)] for label in kind.key_labels(item["answer"])}


# ---------------------------------------------------------------- shuffle

@pytest.mark.parametrize("n", [2, 3, 4, 5])
def test_key_follows_every_permutation(n):
    """Exhaustive on small cases: every order, every key, single and multi-select (partial credit kept)."""
    for order in itertools.permutations(range(n)):
        new_choices = [f"option {i}" for i in order]
        for k in range(n):
            key = LETTERS[k]
            new = _follow_key(itemtypes.get("mc"), key, list(order), new_choices)
            assert new_choices[LETTERS.index(new)] == f"option {k}"
        for pair in itertools.combinations(range(n), 2):
            key = ",".join(LETTERS[i] for i in pair) + " (partial credit)"
            new = _follow_key(itemtypes.get("multi"), key, list(order), new_choices)
            assert new.endswith(" (partial credit)")
            labels = itemtypes.get("multi").key_labels(new)
            assert {new_choices[LETTERS.index(label)] for label in labels} == {f"option {i}" for i in pair}
            assert list(labels) == sorted(labels)


def test_shuffle_options_variant_and_provenance(rng):
    for n, key, kind in ((4, "C", "mc"), (2, "A", "mc"), (5, "B,E", "multi")):
        parent = mc_item(n, key, kind)
        child = shuffle_options(parent, rng)
        assert child["choices"] != parent["choices"] and sorted(child["choices"]) == sorted(parent["choices"])
        assert key_texts(child) == key_texts(parent)
        assert child["origin"] == "variant" and child["generator"] == "variant:shuffle@1"
        assert child["parent_item_id"] == parent["item_id"]
        params = json.loads(child["generator_params"])
        assert params["method"] == "shuffle" and [parent["choices"][i] for i in params["order"]] == child["choices"]
        redo = [int(i) for i in np.random.default_rng(params["seed"]).permutation(n)]   # the seed redoes it
        assert redo == params["order"] or redo == list(range(n))                     # (identity: drawn again)
        assert child["item_id"] == item_id_from_hash(
            content_hash(child["question"], child["choices"], child["answer"]))
    with pytest.raises(VariantRefused, match="choice item"):
        shuffle_options(ROBE, rng)


def test_shuffle_is_reproducible():
    a = shuffle_options(mc_item(4, "A"), np.random.default_rng(5))
    b = shuffle_options(mc_item(4, "A"), np.random.default_rng(5))
    assert a == b


# ---------------------------------------------------------------- renumber

def test_question_numbers_contract():
    assert question_numbers(JANET) == {"n0": 16, "n1": 2}
    assert question_numbers(JOSH) == {"n0": 80000, "n1": 50000, "n2": 150}


@needs_sandbox
@pytest.mark.parametrize(("item", "program", "truth"), [
    (JANET, JANET_PROGRAM, lambda n0, n1: (n0 - 7) * n1),
    (ROBE, ROBE_PROGRAM, lambda n0: n0 * 1.5),
    (JOSH, JOSH_PROGRAM, lambda n0, n1, n2: n0 * n2 / 100 - n1),
])
def test_renumber_recomputes_gsm8k_like_answers(item, program, truth, rng):
    child = renumber(item, program, rng)
    params = json.loads(child["generator_params"])
    numbers = {k: int(v.replace(",", "")) for k, v in params["numbers"].items()}
    assert child["question"] != item["question"]
    assert question_numbers(child) == numbers                 # the new question holds the new numbers
    expected = truth(**numbers)
    assert float(child["answer"]) == pytest.approx(expected) and float(expected).is_integer()
    assert child["answer"] == str(int(expected))
    assert child["parent_item_id"] == item["item_id"] and child["origin"] == "variant"
    assert child["generator"] == "variant:renumber@1" and params["old_numbers"]


@needs_sandbox
def test_renumber_multiple_choice_keeps_offsets(rng):
    child = renumber(MC_SUM, "def solve(n0, n1):\n    return n0 + n1\n", rng)
    n = question_numbers(child)
    key_value = n["n0"] + n["n1"]
    assert child["answer"] == "B" and child["choices"][1] == str(key_value)
    assert [int(c) - key_value for c in child["choices"]] == [-2, 0, 2, 10]


@needs_sandbox
@pytest.mark.parametrize(("program", "reason"), [
    ("def solve(n0, n1):\n    return n0 * n1\n", "parent's own numbers"),                  # wrong
    ("def solve(n0):\n    return 1\n", "failed"),                                          # wrong signature
    ("def solve(n0, n1):\n    return 'many'\n", "not a finite number"),                     # junk
    ("def solve(n0, n1):\n    return None\n", "not a finite number"),
    ("def solve(n0, n1):\n    while True:\n        pass\n", "CPU"),                         # hostile: spins
    (textwrap.dedent("""
        import os, socket
        def solve(n0, n1):
            os.system("rm -rf ~ /work")
            socket.create_connection(("1.1.1.1", 80), timeout=2)
            return (n0 - 7) * n1
     """), "failed"),                                                                          # hostile: reaches out
])
def test_renumber_refuses_bad_programs(program, reason, rng):
    with pytest.raises(VariantRefused, match=reason):
        renumber(JANET, program, rng)


def test_renumber_refuses_items_it_cannot_handle(rng):
    with pytest.raises(VariantRefused, match="no\\w* numbers|has none"):
        renumber(mc_item(4, "A"), JANET_PROGRAM, rng)
    with pytest.raises(VariantRefused, match="options that are numbers"):
        renumber({**mc_item(4, "A"), "question": "Which of 3 options?"}, JANET_PROGRAM, rng)


def test_renumber_uses_the_sandbox_passed_in(rng):
    """The sandbox is a parameter: a refusal from it (fails closed) stops the variant."""
    def refusing(code, *, inputs, limits):
        return sandbox.SandboxResult(ok=False, value=None, stdout="", stderr="", error="no namespaces",
                                     timed_out=False, exit_code=97, output_truncated=False, wall_s=0.0)
    with pytest.raises(VariantRefused, match="no namespaces"):
        renumber(JANET, JANET_PROGRAM, rng, sandbox=refusing)


# ---------------------------------------------------------------- perturb

def test_edit_words_share_and_reproducibility():
    text = " ".join(f"word{i}" for i in range(100))
    a = edit_words(text, np.random.default_rng(1), 0.1)
    assert a == edit_words(text, np.random.default_rng(1), 0.1) != edit_words(text, np.random.default_rng(2), 0.1)
    kept = set(a.split()) & set(text.split())
    assert len(kept) == 90
    zh = "小明有十二个苹果，他给了小红五个，还剩几个？"
    z = edit_words(zh, np.random.default_rng(1), 0.2, language="zh")
    changed = sum(x != y for x, y in zip(zh, z, strict=False)) + abs(len(zh) - len(z))
    assert z != zh and changed >= 1
    assert edit_words(text, np.random.default_rng(1), 0.0) == text


def test_perturb_is_reproducible_and_marked():
    for item in (MC_SUM, JANET, mc_item(4, "D")):
        a = perturb(item, np.random.default_rng(7))
        b = perturb(item, np.random.default_rng(7))
        c = perturb(item, np.random.default_rng(8))
        assert a == b and a != c
        assert a["origin"] == "perturbed" and a["perturbed"] and a["parent_item_id"] == item["item_id"]
        if item["choices"] is not None:
            assert key_texts(a) == key_texts(item)
    p = perturb(JANET, np.random.default_rng(7), word_share=0.0)
    assert question_numbers(p) != question_numbers(JANET) and p["answer"] == JANET["answer"]
    assert perturb(JANET, np.random.default_rng(7), renumber_numbers=False, word_share=0.0)["question"] == \
        JANET["question"]


def test_perturbed_copies_are_refused_by_the_importer(bank_path, tmp_path):
    row = perturb(MC_SUM, np.random.default_rng(7))
    path = tmp_path / "perturbed.jsonl"
    path.write_text(json.dumps({"id": "p1", "question": row["question"], "choices": row["choices"],
                                "answer": row["answer"], "type": "mc", "origin": row["origin"]}) + "\n")
    with open_bank(bank_path) as bank, pytest.raises(InputError, match="origin"):
        bank.import_items([path], ImportOptions(source="perturb"))


def test_new_numbers_keep_their_shape():
    from itembank.variants import _new_number
    rng = np.random.default_rng(0)
    for _ in range(50):
        assert _new_number("80,000", rng).endswith(",000") and len(_new_number("80,000", rng)) == 6
        assert _new_number("0.05", rng).startswith("0.") and len(_new_number("0.05", rng)) == 4
        assert len(_new_number("123456789012345678901234", rng)) == 24          # beyond int64: digit by digit
        assert _new_number("7", rng) in set("23456789") and _new_number("0", rng) == "0"


def template_items(rng: np.random.Generator) -> list[dict]:
    from itembank import generate_items
    frame = generate_items(30, rng, generators=["arithmetic"])
    return [{"item_id": r.id, "question": r.question, "choices": r.choices, "answer": r.answer,
             "item_type": r.type, "language": r.language, "tags": {}, "origin": r.origin,
             "generator": r.generator, "generator_params": r.generator_params} for r in frame.itertuples()]


def test_template_items_renumbered_by_their_generator_logic(rng):
    """No program: the arithmetic generator's own rule recomputes the key (checked here by eval)."""
    done = 0
    for item in template_items(rng):
        child = renumber(item, None, rng)
        params = json.loads(child["generator_params"])
        assert params["solver"] == f"template {item['generator']}" and "program_sha256" not in params
        numbers = [v for _, v in sorted(question_numbers(child).items(), key=lambda kv: int(kv[0][1:]))]
        ops = json.loads(item["generator_params"])["ops"]
        text = str(numbers[0]) + "".join(f" {'*' if o == '×' else o} {x}" for o, x in zip(ops, numbers[1:], strict=True))
        truth = eval(text)                                   # trusted: our own digits and operators
        if item["item_type"] == "numeric":
            assert int(child["answer"]) == truth, (child["question"], text)
        else:
            assert int(child["choices"][LETTERS.index(child["answer"])]) == truth
            if all(int(c) >= 0 for c in item["choices"]):
                assert all(int(c) >= 0 for c in child["choices"])
        done += 1
    assert done == 30


def test_no_program_is_refused_outside_templates(rng):
    with pytest.raises(VariantRefused, match="needs a solver program"):
        renumber(JANET, None, rng)
