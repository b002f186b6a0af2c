"""Template item generators: determinism, correct answers (re-derived from the question text with an
independent solver per generator), sound multiple choice, bands that follow the knobs, language mix,
and 50,000 distinct items."""

from __future__ import annotations

import datetime as dt
import json
import re
from fractions import Fraction
from graphlib import TopologicalSorter

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from adtbase.errors import InputError
from itembank.generators import (
    COLUMNS,
    EASY_BELOW,
    GENERATORS,
    HARD_FROM,
    difficulty_band,
    generate_items,
    knob_difficulty,
)

TAG_KEYS = {"scenario", "domain", "task", "ability", "difficulty_band"}
SCENARIOS = {"general", "industry", "application", "safety"}


@pytest.fixture(scope="module")
def items() -> pd.DataFrame:
    return generate_items(6000, np.random.default_rng(20261123))


def _params(row: pd.Series) -> dict:
    return json.loads(row["generator_params"])


def _name(row: pd.Series) -> str:
    return row["generator"].split("@")[0]


# ------------------------------------------------------------------------------------------------
# Independent solvers: each reads only the question text (never the generator's params).
# ------------------------------------------------------------------------------------------------
def solve_arithmetic(q: str, lang: str) -> str:
    expr = re.search(r"\d+(?: [-+×] \d+)+", q)
    assert expr, q
    return str(eval(expr.group(0).replace("×", "*")))  # digits and + - * only, by the regex


# Sizes in SI base units (m, kg, s, m^2, m^3, m/s), written from the definitions, not from the module.
_SI = {
    "millimeter": Fraction(1, 1000), "centimeter": Fraction(1, 100), "meter": Fraction(1), "kilometer": Fraction(1000),
    "milligram": Fraction(1, 10**6), "gram": Fraction(1, 1000), "kilogram": Fraction(1), "tonne": Fraction(1000),
    "second": Fraction(1), "minute": Fraction(60), "hour": Fraction(3600), "day": Fraction(24 * 3600),
    "milliliter": Fraction(1, 10**6), "liter": Fraction(1, 1000), "cubic meter": Fraction(1),
    "square centimeter": Fraction(1, 10**4), "square meter": Fraction(1), "hectare": Fraction(10**4),
    "square kilometer": Fraction(10**6),
    "kilometer per hour": Fraction(1000, 3600), "meter per second": Fraction(1),
}
_ZH_UNIT = {
    "毫米": "millimeter", "厘米": "centimeter", "米": "meter", "千米": "kilometer",
    "毫克": "milligram", "克": "gram", "千克": "kilogram", "吨": "tonne",
    "秒": "second", "分钟": "minute", "小时": "hour", "天": "day",
    "毫升": "milliliter", "升": "liter", "立方米": "cubic meter",
    "平方厘米": "square centimeter", "平方米": "square meter", "公顷": "hectare", "平方千米": "square kilometer",
    "千米每小时": "kilometer per hour", "米每秒": "meter per second",
}


def _en_unit(word: str) -> str:
    word = word.replace("meters per", "meter per").replace("kilometers per", "kilometer per")
    return word[:-1] if word.endswith("s") and word[:-1] in _SI else word


def solve_units(q: str, lang: str) -> Fraction:
    if lang == "en":
        m = (re.fullmatch(r"Convert ([\d.]+) (.+) to (.+)\.", q)
             or re.fullmatch(r"How many (?P<t>.+) are in (?P<v>[\d.]+) (?P<f>.+)\?", q)
             or re.fullmatch(r"(?P<v>[\d.]+) (?P<f>.+) equals how many (?P<t>.+)\?", q))
        assert m, q
        v, f, t = (m.group(1), m.group(2), m.group(3)) if q.startswith("Convert") else (m["v"], m["f"], m["t"])
        src, dst = _en_unit(f), _en_unit(t)
    else:
        m = re.fullmatch(r"把 ([\d.]+) (\S+?)换算成(\S+)。", q) or re.fullmatch(r"([\d.]+) (\S+?)等于多少(\S+)？", q)
        assert m, q
        v, src, dst = m.group(1), _ZH_UNIT[m.group(2)], _ZH_UNIT[m.group(3)]
    return Fraction(v) * _SI[src] / _SI[dst]


_WEEK_EN = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_WEEK_ZH = ["星期一", "星期二", "星期三", "星期四", "星期五", "星期六", "星期日"]


def _dates(q: str, lang: str) -> list[dt.date]:
    if lang == "en":
        return [dt.datetime.strptime(s, "%B %d, %Y").date()
                for s in re.findall(r"(?:January|February|March|April|May|June|July|August|September|"
                                    r"October|November|December) \d{1,2}, \d{4}", q)]
    return [dt.date(int(y), int(m), int(d)) for y, m, d in re.findall(r"(\d{4})年(\d{1,2})月(\d{1,2})日", q)]


def solve_dates(q: str, lang: str) -> str:
    days = _dates(q, lang)
    week = _WEEK_EN if lang == "en" else _WEEK_ZH
    fmt = (lambda d: d.isoformat()) if lang == "en" else (lambda d: f"{d.year}年{d.month}月{d.day}日")
    if lang == "en":
        if m := re.match(r"What date is (\d+) (day|days|week|weeks) (after|before)", q):
            delta = dt.timedelta(days=int(m.group(1)) * (7 if m.group(2).startswith("week") else 1))
            return fmt(days[0] + delta if m.group(3) == "after" else days[0] - delta)
        if q.startswith("How many days after"):
            return str((days[1] - days[0]).days)
        if m := re.match(r"If today is (\w+), what day of the week will it be in (\d+) days\?", q):
            return week[(week.index(m.group(1)) + int(m.group(2))) % 7]
        assert q.startswith("What day of the week was"), q
        return week[days[0].weekday()]
    if m := re.search(r"日(之后|之前) (\d+) (天|周)是哪一天", q):
        delta = dt.timedelta(days=int(m.group(2)) * (7 if m.group(3) == "周" else 1))
        return fmt(days[0] + delta if m.group(1) == "之后" else days[0] - delta)
    if "晚多少天" in q:  # "B比A晚多少天": B comes first in the text
        return str((days[0] - days[1]).days)
    if m := re.match(r"如果今天是(星期.)，那么 (\d+) 天之后是星期几？", q):
        return week[(week.index(m.group(1)) + int(m.group(2))) % 7]
    assert q.endswith("是星期几？") and len(days) == 1, q
    return week[days[0].weekday()]


def solve_strings(q: str, lang: str, task: str) -> str:
    quoted = re.findall(r'"([^"]*)"', q) if lang == "en" else re.findall(r"“([^”]*)”", q)
    op = task.removeprefix("string_")
    if op in ("count", "remove"):
        # The character comes first, except in "删去字符串“s”中所有的“c”".
        s, target = quoted if lang == "zh" and op == "remove" else quoted[::-1]
        return str(s.count(target)) if op == "count" else s.replace(target, "")
    s = quoted[0]
    if op == "length":
        return str(len(s))
    if op == "reverse":
        return s[::-1]
    if op == "sort":
        return "".join(sorted(s))
    assert op == "char_at", task
    k = int(re.search(r"(?:number|第) (\d+)", q).group(1))
    return s[k - 1]


_EN_REL = {"taller": ("taller", "shorter", "tallest", "shortest"), "older": ("older", "younger", "oldest", "youngest"),
           "heavier": ("heavier", "lighter", "heaviest", "lightest"), "faster": ("faster", "slower", "fastest", "slowest")}
_ZH_MORE = {"高", "年龄大", "重", "跑得快"}
_ZH_LESS = {"矮", "年龄小", "轻", "跑得慢"}
_ORD = ["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth"]


def solve_ordering(q: str, lang: str) -> str:
    # Edges "more -> less"; a topological order lists people from most to least.
    graph: dict[str, set[str]] = {}
    if lang == "en":
        for a, word, b in re.findall(r"(\w+) is (\w+) than (\w+)\.", q):
            more, less = (a, b) if any(word == r[0] for r in _EN_REL.values()) else (b, a)
            graph.setdefault(less, set()).add(more)
            graph.setdefault(more, set())
    else:
        for a, b, word in re.findall(r"(\S{2})比(\S{2})(高|矮|年龄大|年龄小|重|轻|跑得快|跑得慢)。", q):
            more, less = (a, b) if word in _ZH_MORE else (b, a)
            graph.setdefault(less, set()).add(more)
            graph.setdefault(more, set())
    order = list(TopologicalSorter(graph).static_order())  # predecessors (the "more" side) first
    rank = {p: i for i, p in enumerate(order)}
    if lang == "en":
        if m := re.search(r"Is (\w+) (\w+) than (\w+)\? Answer yes or no\.$", q):
            return "yes" if rank[m.group(1)] < rank[m.group(3)] else "no"
        m = re.search(r"Who is the (?:(\w+) )?(\w+)\?$", q)
        assert m, q
        superlative = m.group(2)
        k = _ORD.index(m.group(1)) if m.group(1) else 0
        top = any(superlative == r[2] for r in _EN_REL.values())
        return order[k] if top else order[-1 - k]
    if m := re.search(r"(\S{2})比(\S{2})(高|年龄大|重|跑得快)吗？请回答“是”或“否”。$", q):
        return "是" if rank[m.group(1)] < rank[m.group(2)] else "否"
    if m := re.search(r"第 (\d+) 位是谁？$", q):
        return order[int(m.group(1)) - 1]
    assert q.endswith(("谁最高？", "谁年龄最大？", "谁最重？", "谁跑得最快？", "谁最矮？", "谁年龄最小？",
                       "谁最轻？", "谁跑得最慢？")), q
    top = q.endswith(("谁最高？", "谁年龄最大？", "谁最重？", "谁跑得最快？"))
    return order[0] if top else order[-1]


def solve_proposition(q: str, lang: str) -> str:
    x = int(re.search(r"x = (\d+)", q).group(1))
    expr = re.search(r'"(.*)"', q).group(1) if lang == "en" else re.search(r"命题“(.*)”是真还是假", q).group(1)
    py = expr
    for pat, rep in [
        (r"x is not divisible by (\d+)", r"x % \1 != 0"), (r"x is divisible by (\d+)", r"x % \1 == 0"),
        (r"x is even", "x % 2 == 0"), (r"x is odd", "x % 2 == 1"),
        (r"x 不能被 (\d+) 整除", r"x % \1 != 0"), (r"x 能被 (\d+) 整除", r"x % \1 == 0"),
        (r"x 是偶数", "x % 2 == 0"), (r"x 是奇数", "x % 2 == 1"),
        ("（", "("), ("）", ")"), (" 且 ", " and "), (" 或 ", " or "),
    ]:
        py = re.sub(pat, rep, py)
    assert re.fullmatch(r"[x\d%=!<> ()andor]+", py), py
    value = eval(py, {}, {"x": x})  # only x, numbers, comparisons, and/or, by the check above
    return ("true" if value else "false") if lang == "en" else ("真" if value else "假")


def expected_answer(row: pd.Series) -> str | Fraction:
    q, lang, task = row["question"], row["language"], row["tags"]["task"]
    name = _name(row)
    if name == "arithmetic":
        return solve_arithmetic(q, lang)
    if name == "unit_conversion":
        return solve_units(q, lang)
    if name == "date_arithmetic":
        return solve_dates(q, lang)
    if name == "string_manipulation":
        return solve_strings(q, lang, task)
    assert name == "simple_logic", name
    return solve_ordering(q, lang) if task.startswith("ordering") else solve_proposition(q, lang)


def _keyed(row: pd.Series) -> str:
    return row["choices"]["ABCD".index(row["answer"])] if row["type"] == "mc" else row["answer"]


# ------------------------------------------------------------------------------------------------
def test_same_seed_gives_the_same_items_and_another_seed_does_not() -> None:
    a = generate_items(1500, np.random.default_rng(11))
    b = generate_items(1500, np.random.default_rng(11))
    c = generate_items(1500, np.random.default_rng(12))
    pd.testing.assert_frame_equal(a, b)
    assert len(set(a["question"]) & set(c["question"])) < 150  # only tiny spaces (e.g. 1-digit sums) overlap


def test_canonical_columns_and_provenance(items: pd.DataFrame) -> None:
    assert list(items.columns) == COLUMNS
    assert items["id"].is_unique
    assert set(items["type"]) == {"mc", "numeric", "open"}
    assert set(items["origin"]) == {"template"}
    assert set(items["generator"]) == {g.label for g in GENERATORS.values()}
    for row in items.itertuples():
        assert row.id.startswith(row.generator.split("@")[0] + "/")
        assert set(row.tags) == TAG_KEYS and row.tags["scenario"] in SCENARIOS
        assert isinstance(row.tags["ability"], list) and row.tags["ability"]
        assert isinstance(json.loads(row.generator_params), dict)
        if row.type == "mc":
            assert len(row.choices) == 4 and row.answer in "ABCD" and len(row.answer) == 1
        else:
            assert row.choices is None and row.answer != ""
    by_gen = items.groupby("generator")["tags"].apply(lambda t: {x["scenario"] for x in t})
    assert by_gen["unit_conversion@1.0"] == {"industry"}
    assert by_gen["date_arithmetic@1.0"] == {"application"}
    # Parquet is the interchange format: the frame converts to Arrow as it is.
    table = pa.Table.from_pandas(items)
    assert table.num_rows == len(items) and pa.types.is_struct(table.schema.field("tags").type)


def test_answers_match_an_independent_solver(items: pd.DataFrame) -> None:
    checked: dict[str, int] = {}
    for _, row in items.iterrows():
        want = expected_answer(row)
        got = _keyed(row)
        if isinstance(want, Fraction):
            assert Fraction(got) == want, (row["question"], got, want)
        else:
            assert got == want, (row["question"], got, want)
        checked[row["tags"]["task"]] = checked.get(row["tags"]["task"], 0) + 1
    # every kind of question was re-derived, not just the easy ones
    assert set(checked) >= {"arithmetic", "unit_conversion", "date_offset", "date_difference", "weekday",
                            "string_length", "string_char_at", "string_count", "string_reverse",
                            "string_remove", "string_sort", "ordering_rank", "ordering_comparison",
                            "propositional_logic"}
    assert min(checked.values()) >= 50


def test_numeric_answers_are_plain_exact_decimals(items: pd.DataFrame) -> None:
    numeric = items[items["type"] == "numeric"]["answer"]
    assert numeric.str.fullmatch(r"-?\d+(\.\d*[1-9])?").all()  # no separators, exponents, trailing zeros


def test_multiple_choice_is_sound(items: pd.DataFrame) -> None:
    mc = items[items["type"] == "mc"]
    assert len(mc) > 1500
    for row in mc.itertuples():
        assert len(set(row.choices)) == 4, row  # distractors differ from the key and from each other
        assert all(c.strip() for c in row.choices)
    # The key's position carries no information.
    share = mc["answer"].value_counts(normalize=True)
    assert set(share.index) == set("ABCD") and share.between(0.21, 0.29).all(), share
    # Numbers and dates are listed in ascending order, and the key's rank among them is uniform: neither
    # "the middle value" nor "the smallest" gives it away.
    ordered = mc[mc["tags"].map(lambda t: t["task"] in ("arithmetic", "unit_conversion", "string_length"))]
    assert len(ordered) > 800
    ranks = []
    for row in ordered.itertuples():
        values = [Fraction(c) for c in row.choices]
        assert values == sorted(values)
        ranks.append("ABCD".index(row.answer))
    assert (np.bincount(ranks, minlength=4) / len(ranks) > 0.19).all()
    dates = mc[mc["tags"].map(lambda t: t["task"] == "date_offset")]
    for row in dates.itertuples():
        days = [dt.date.fromisoformat(c) if row.language == "en" else _dates(c, "zh")[0] for c in row.choices]
        assert days == sorted(days)
    # A non-negative arithmetic result never comes with a negative (give-away) distractor.
    arith = mc[mc["generator"].str.startswith("arithmetic")]
    for row in arith.itertuples():
        key = int(row.choices["ABCD".index(row.answer)])
        assert key < 0 or all(int(c) >= 0 for c in row.choices)


def test_true_difficulty_and_band_come_from_the_knobs(items: pd.DataFrame) -> None:
    for _, row in items.iterrows():
        td = knob_difficulty(_name(row), _params(row))
        assert row["true_difficulty"] == pytest.approx(td, abs=1e-4)
        assert row["tags"]["difficulty_band"] == difficulty_band(row["true_difficulty"])
    assert difficulty_band(EASY_BELOW - 1e-9) == "easy" and difficulty_band(EASY_BELOW) == "medium"
    assert difficulty_band(HARD_FROM - 1e-9) == "medium" and difficulty_band(HARD_FROM) == "hard"
    # every generator spans all three bands
    bands = pd.crosstab(items["generator"], items["tags"].map(lambda t: t["difficulty_band"]), normalize="index")
    assert (bands[["easy", "medium", "hard"]] > 0.08).all().all(), bands


@pytest.mark.parametrize(("generator", "knob", "bump"), [
    ("arithmetic", "digits", 1), ("arithmetic", "n_ops", 1), ("arithmetic", "carries", 1),
    ("unit_conversion", "value_decimals", 1), ("unit_conversion", "factor_log10", 3),
    ("date_arithmetic", "offset", 90), ("string_manipulation", "length", 3),
    ("simple_logic", "chain_length", 1), ("simple_logic", "n_clauses", 1),
])
def test_each_knob_raises_difficulty(items: pd.DataFrame, generator: str, knob: str, bump: int) -> None:
    rows = [p for p in (json.loads(s) for s in items.loc[items["generator"].str.startswith(generator),
                                                          "generator_params"]) if knob in p]
    assert len(rows) > 100
    for p in rows[:300]:
        if knob == "carries" and p["carries"] >= 3:  # carries count up to three
            continue
        harder = {**p, knob: p[knob] + bump}
        assert knob_difficulty(generator, harder) > knob_difficulty(generator, p), (p, knob)


def test_bands_order_the_knobs_in_the_data() -> None:
    df = generate_items(4000, np.random.default_rng(5), generators=["arithmetic", "string_manipulation"])
    band = df["tags"].map(lambda t: t["difficulty_band"])
    params = pd.DataFrame([json.loads(s) for s in df["generator_params"]])
    arith = (df["generator"].str.startswith("arithmetic")).to_numpy()
    for knob in ("digits", "n_ops"):
        means = params[arith].groupby(band[arith].to_numpy())[knob].mean()
        assert means["easy"] < means["medium"] < means["hard"], (knob, means)
    means = params[~arith].groupby(band[~arith].to_numpy())["length"].mean()
    assert means["easy"] < means["medium"] < means["hard"], means


def test_carries_counted_like_by_hand(items: pd.DataFrame) -> None:
    def digit_sum(v: int) -> int:
        return sum(map(int, str(abs(v))))

    seen = 0
    for s in items.loc[items["generator"].str.startswith("arithmetic"), "generator_params"]:
        p = json.loads(s)
        a, b = p["operands"][:2]
        if p["ops"][0] == "+":  # carries of a + b = (S(a) + S(b) - S(a + b)) / 9
            assert p["carries"] == (digit_sum(a) + digit_sum(b) - digit_sum(a + b)) // 9
            seen += 1
        elif p["ops"][0] == "-":  # borrows of hi - lo = carries of lo + (hi - lo)
            hi, lo = max(a, b), min(a, b)
            assert p["carries"] == (digit_sum(lo) + digit_sum(hi - lo) - digit_sum(hi)) // 9
            seen += 1
    assert seen > 300


def test_language_mix_follows_the_weights() -> None:
    df = generate_items(5000, np.random.default_rng(3), languages=("en", "zh"), language_weights=(0.2, 0.8))
    assert df["language"].eq("zh").mean() == pytest.approx(0.8, abs=0.03)
    only_zh = generate_items(300, np.random.default_rng(3), languages=("zh",), language_weights=(1.0,))
    assert set(only_zh["language"]) == {"zh"}


def test_chinese_items_are_chinese_and_english_items_english(items: pd.DataFrame) -> None:
    assert items["language"].eq("zh").mean() == pytest.approx(0.3, abs=0.03)
    cjk = re.compile(r"[\u4e00-\u9fff]")
    for row in items.itertuples():
        outside_quotes = re.sub(r"“[^”]*”|\"[^\"]*\"", "", row.question)
        if row.language == "zh":
            assert len(cjk.findall(outside_quotes)) >= 3, row.question
            assert not re.search(r"[A-Za-z]{3,}", outside_quotes), row.question  # no English sentences
        else:
            assert not cjk.search(row.question), row.question
    zh = items[items["language"] == "zh"]
    for gen in GENERATORS.values():
        assert (zh["generator"] == gen.label).sum() > 100


def test_fifty_thousand_distinct_items() -> None:
    df = generate_items(50_000, np.random.default_rng(50_000))
    assert len(df) == 50_000
    assert df["question"].is_unique and df["id"].is_unique
    assert df.groupby(["generator", "language"]).size().min() > 1000


def test_duplicates_are_topped_up_and_exhaustion_is_reported() -> None:
    # Arithmetic alone draws many repeated one-digit sums: one round cannot fill the request...
    with pytest.raises(InputError, match="distinct items"):
        generate_items(8000, np.random.default_rng(9), languages=("en",), language_weights=(1,),
                       generators=["arithmetic"], max_rounds=1)
    # ...further rounds top it up with fresh, distinct problems.
    df = generate_items(8000, np.random.default_rng(9), languages=("en",), language_weights=(1,),
                        generators=["arithmetic"])
    assert len(df) == 8000 and df["id"].is_unique and df["question"].is_unique


def test_same_problem_keeps_its_id_across_seeds() -> None:
    a = generate_items(3000, np.random.default_rng(1), generators=["arithmetic"])
    b = generate_items(3000, np.random.default_rng(2), generators=["arithmetic"])
    shared = a.merge(b, on="question", suffixes=("_a", "_b"))
    assert len(shared) > 10
    assert (shared["id_a"] == shared["id_b"]).all()


@pytest.mark.parametrize("kwargs", [
    {"n": -1},
    {"rng": 7},
    {"languages": ("en", "fr"), "language_weights": (0.5, 0.5)},
    {"languages": ("en",), "language_weights": (0.5, 0.5)},
    {"language_weights": (-1.0, 2.0)},
    {"generators": ["calculus"]},
])
def test_bad_arguments_raise_input_error(kwargs: dict) -> None:
    args = {"n": 10, "rng": np.random.default_rng(0), **kwargs}
    with pytest.raises(InputError):
        generate_items(**args)


def test_the_bank_imports_generated_items_as_they_are(tmp_path) -> None:
    from itembank import ImportOptions, open_bank

    df = generate_items(400, np.random.default_rng(8))
    path = tmp_path / "generated.parquet"
    df.to_parquet(path)
    with open_bank(tmp_path / "bank.duckdb", create=True) as bank:
        report = bank.import_items([path], ImportOptions(source="adt-templates"))
        assert report.new_items == 400 and report.merged_within_files == 0
        got = bank.items().merge(df, on="question", suffixes=("_bank", ""))
    assert len(got) == 400
    assert (got["origin_bank"] == "template").all() and (got["generator_bank"] == got["generator"]).all()
    assert (got["difficulty_band"] == got["tags"].map(lambda t: t["difficulty_band"])).all()
    assert (got["answer_bank"] == got["answer"]).all() and (got["item_type"] == got["type"]).all()
    assert (got["scenario"] == got["tags"].map(lambda t: t["scenario"])).all()
