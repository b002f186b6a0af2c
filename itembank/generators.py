"""Template item generators for the dynamic bank (origin "template").

Five generators (arithmetic, unit conversion, date arithmetic, string manipulation, simple logic)
write English and Chinese items. Each draws *difficulty knobs* (digits, operation count, carries,
string length, chain length, ...) and turns them into a latent ``true_difficulty`` on the IRT ``b``
scale with a fixed, documented formula (``Generator.difficulty``); the declared difficulty band is
that value cut at ``EASY_BELOW`` / ``HARD_FROM``. The knobs and the drawn instance values are kept as
``generator_params`` (JSON) so every item can be traced to the generator version that made it.

``generate_items`` returns the bank's canonical import columns (``id, question, choices, answer, type,
language, tags``) plus ``origin``, ``generator`` (name@version), ``generator_params`` and
``true_difficulty``. Multiple-choice answers are the correct letter; numeric answers are exact decimal
text; open answers are the exact expected string. ``true_difficulty`` describes the problem, not the
format: a simulation should add guessing (c = 1/4) for multiple choice itself.

Multiple choice: four choices with plausible distractors (precedence and carry slips, decimal-point
slips, the factor applied the wrong way, off-by-one dates, neighbours in a chain, near-miss strings).
Numbers and dates are listed in ascending order with the key's rank drawn uniformly, so neither its
position nor "the middle value" gives it away.

Speed: randomness is drawn in vectorised blocks per generator and language; per-item work is string
formatting only (50,000 items in about 1.2-1.5 s on an idle 2-core machine).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd

from adtbase.errors import InputError

# Band cut points on the latent difficulty scale (IRT b): easy < -0.5 <= medium < 0.5 <= hard.
EASY_BELOW = -0.5
HARD_FROM = 0.5
LANGUAGES = ("en", "zh")
LETTERS = "ABCD"
COLUMNS = [
    "id", "question", "choices", "answer", "type", "language", "tags",
    "origin", "generator", "generator_params", "true_difficulty",
]

# One generated item before band/provenance are attached:
# (dedupe key, question, choices or None, answer, type, tags without band, params).
Row = tuple[str, str, list[str] | None, str, str, dict[str, Any], dict[str, Any]]


def difficulty_band(true_difficulty: float) -> str:
    """The declared band of a latent difficulty (fixed cut points, the same for every generator)."""
    if true_difficulty < EASY_BELOW:
        return "easy"
    return "medium" if true_difficulty < HARD_FROM else "hard"


@dataclass(frozen=True)
class Generator:
    """One template generator: ``build`` writes k items in one language, ``difficulty`` scores knobs."""

    name: str
    version: str
    build: Callable[[int, str, np.random.Generator], list[Row]]
    difficulty: Callable[[dict[str, Any]], float]

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"


def _mc(correct: str, candidates: Sequence[str], pos: int) -> tuple[list[str], str]:
    """Four choices: the first three distinct candidates that differ from ``correct``, answer at ``pos``."""
    seen = {correct}
    picks: list[str] = []
    for cand in candidates:
        if cand not in seen:
            seen.add(cand)
            picks.append(cand)
            if len(picks) == 3:
                break
    if len(picks) < 3:  # every generator supplies guaranteed-distinct fallbacks, so this is a bug
        raise RuntimeError(f"fewer than 3 distractors for answer {correct!r}: {candidates!r}")
    picks.insert(pos, correct)
    return picks, LETTERS[pos]


def _mc_ordered(value: Any, below: Iterable[Any], above: Iterable[Any], rank: int,
                text: Callable[[Any], str | None]) -> tuple[list[str], str]:
    """Four ordered choices (numbers, dates) with ``rank`` distractors below the key, the rest above.

    Choices are listed in ascending order, so the key's letter is its rank; drawing ``rank`` uniformly
    keeps "the middle value" or "the smallest" from giving the key away. Where one side's pool is too
    short (a count cannot fall below 1), the other side makes up the difference. Candidates whose
    ``text`` is None (no exact decimal) are skipped.
    """
    key = text(value)
    seen = {key}
    sides: list[list[Any]] = [[], []]
    for side, pool, keep in ((0, below, lambda v: v < value), (1, above, lambda v: v > value)):
        for v in pool:
            t = text(v)
            if t is not None and t not in seen and keep(v):
                seen.add(t)
                sides[side].append(v)
    n_hi = min(3 - min(rank, len(sides[0])), len(sides[1]))
    if 3 - n_hi > len(sides[0]) or key is None:  # generators supply enough candidates: a bug
        raise RuntimeError(f"too few ordered distractors for {key!r}")
    values = sorted([*sides[0][: 3 - n_hi], value, *sides[1][:n_hi]])
    return [str(text(v)) for v in values], LETTERS[values.index(value)]


def _fmt_fraction(x: Fraction) -> str | None:
    """Exact decimal text of x ("2.5", "-12", "0.0036"), or None if its decimal does not terminate."""
    den = x.denominator
    k2 = k5 = 0
    while den % 2 == 0:
        den //= 2
        k2 += 1
    while den % 5 == 0:
        den //= 5
        k5 += 1
    if den != 1:
        return None
    k = max(k2, k5)
    scaled = x.numerator * 10**k // x.denominator
    sign = "-" if scaled < 0 else ""
    digits = str(abs(scaled))
    if k == 0:
        return sign + digits
    digits = digits.rjust(k + 1, "0")
    whole, frac = digits[:-k], digits[-k:].rstrip("0")
    return sign + whole + ("." + frac if frac else "")


def _decimals(text: str) -> int:
    return len(text.split(".")[1]) if "." in text else 0


# --------------------------------------------------------------------------------------------------
# arithmetic: integer expressions with + - x, standard precedence
# --------------------------------------------------------------------------------------------------
_OPS = "+-×"
_ARITH_EN = ("Compute {e}.", "What is {e}?", "Calculate the value of {e}.")
_ARITH_ZH = ("计算 {e} 的结果。", "{e} 等于多少？", "求 {e} 的值。")
_ARITH_OFFSETS = (1, 2, 3, 9, 10, 11, 20, 100)


def _carries(a: int, b: int, subtract: bool) -> int:
    """Column carries of a + b, or borrows of max(a, b) - min(a, b), done by hand."""
    if subtract and a < b:
        a, b = b, a
    count = carry = 0
    while a or b:
        da, db = a % 10, b % 10
        if subtract:
            carry = 1 if da - carry < db else 0
        else:
            carry = 1 if da + db + carry >= 10 else 0
        count += carry
        a //= 10
        b //= 10
    return count


def _evaluate(nums: Sequence[int], ops: str) -> tuple[int, int]:
    """(value with x before + and -, value read left to right: the classic precedence slip)."""
    acc, sign, term = 0, 1, nums[0]
    for op, x in zip(ops, nums[1:], strict=True):
        if op == "×":
            term *= x
        else:
            acc += sign * term
            sign, term = (1 if op == "+" else -1), x
    value = acc + sign * term
    naive = nums[0]
    for op, x in zip(ops, nums[1:], strict=True):
        naive = naive + x if op == "+" else naive - x if op == "-" else naive * x
    return value, naive


def template_solver(generator: str, params: Any) -> Callable[[Sequence[float]], float] | None:
    """The generator's own answer rule as a function of the question's numbers in reading order, for
    ``itembank.variants.renumber`` (``None`` where the generator has none: only arithmetic today).
    Arithmetic: the operands are the question's numbers, the ops come from ``generator_params``."""
    if not generator.startswith("arithmetic@"):
        return None
    try:
        ops = (json.loads(params) if isinstance(params, str) else dict(params or {}))["ops"]
    except (ValueError, KeyError, TypeError):
        return None

    def solve(numbers: Sequence[float]) -> float:
        if len(numbers) != len(ops) + 1 or any(not float(x).is_integer() for x in numbers):
            raise ValueError(f"{len(ops) + 1} whole operands expected for ops {ops!r}, got {list(numbers)}")
        return float(_evaluate([int(x) for x in numbers], ops)[0])
    return solve


def _arith_difficulty(p: dict[str, Any]) -> float:
    return (
        -2.2
        + 0.55 * (p["digits"] - 1)
        + 0.75 * (p["n_ops"] - 1)
        + 0.5 * p["ops"].count("×")
        + 0.3 * min(p["carries"], 3)
        + 0.4 * p["negative"]
    )


def _build_arithmetic(k: int, lang: str, rng: np.random.Generator) -> list[Row]:
    digits = rng.choice([1, 2, 3, 4], size=k, p=[0.2, 0.35, 0.3, 0.15])
    n_ops = rng.choice([1, 2, 3], size=k, p=[0.45, 0.33, 0.22])
    ops = rng.choice(3, size=(k, 3), p=[0.4, 0.35, 0.25])
    u = rng.random((k, 4))
    lo = np.where(digits == 1, 2, 10 ** (digits - 1))
    nums = (lo[:, None] + np.floor(u * (10**digits - lo)[:, None])).astype(np.int64)
    # A x operand has at most two digits so products stay readable.
    d_mul = np.minimum(digits, 2)
    lo_mul = np.where(d_mul == 1, 2, 10 ** (d_mul - 1))
    nums_mul = (lo_mul[:, None] + np.floor(u * (10**d_mul - lo_mul)[:, None])).astype(np.int64)
    is_mc = rng.random(k) < 0.5
    pos = rng.integers(0, 4, k)
    order = np.argsort(rng.random((k, len(_ARITH_OFFSETS))), axis=1)
    tmpl = rng.integers(0, 3, k)
    templates = _ARITH_EN if lang == "en" else _ARITH_ZH
    mc_lead = "Which of the following equals {e}?" if lang == "en" else "下列哪一项等于 {e}？"

    rows: list[Row] = []
    for d, n, op_row, a_row, m_row, mc, ps, ordr, t in zip(
        digits.tolist(), n_ops.tolist(), ops.tolist(), nums.tolist(), nums_mul.tolist(),
        is_mc.tolist(), pos.tolist(), order.tolist(), tmpl.tolist(), strict=True,
    ):
        op_str = "".join(_OPS[o] for o in op_row[:n])
        operands = [a_row[0]] + [m_row[j + 1] if op_str[j] == "×" else a_row[j + 1] for j in range(n)]
        value, naive = _evaluate(operands, op_str)
        carries = _carries(operands[0], operands[1], op_str[0] == "-") if op_str[0] != "×" else 0
        expr = str(operands[0]) + "".join(f" {o} {x}" for o, x in zip(op_str, operands[1:], strict=True))
        params = {"digits": d, "n_ops": n, "ops": op_str, "carries": carries,
                  "negative": int(value < 0), "operands": operands}
        answer = str(value)
        if mc:
            # Off by a little (1-3), or a carry/borrow slip at a random column (9-11, 20, 100 times
            # 10**column), or the precedence slip (left to right).
            scale = 10 ** (ordr[0] % max(1, len(str(abs(value))) - 1))
            slips = [_ARITH_OFFSETS[j] * (scale if _ARITH_OFFSETS[j] >= 9 else 1) for j in ordr]
            # A negative choice for a non-negative result would give itself away.
            below = [v for v in [naive] + [value - o for o in slips] if v >= 0 or value < 0]
            above = [naive] + [value + o for o in slips]
            choices, letter = _mc_ordered(value, below, above, ps, str)
            rows.append((expr, mc_lead.format(e=expr), choices, letter, "mc", {}, params))
        else:
            rows.append((expr, templates[t].format(e=expr), None, answer, "numeric", {}, params))
    for row in rows:
        p = row[6]
        row[5].update(scenario="general", domain="mathematics", task="arithmetic",
                      ability=["calculation"] if p["n_ops"] == 1 else ["calculation", "multi_step_reasoning"])
    return rows


# --------------------------------------------------------------------------------------------------
# unit conversion: metric and time units, area, speed (industry scenario)
# --------------------------------------------------------------------------------------------------
# (symbol, English singular, English plural, Chinese, size in the family's smallest unit)
_UNITS: dict[str, list[tuple[str, str, str, str, Fraction]]] = {
    "length": [("mm", "millimeter", "millimeters", "毫米", Fraction(1)),
               ("cm", "centimeter", "centimeters", "厘米", Fraction(10)),
               ("m", "meter", "meters", "米", Fraction(1000)),
               ("km", "kilometer", "kilometers", "千米", Fraction(10**6))],
    "mass": [("mg", "milligram", "milligrams", "毫克", Fraction(1)),
             ("g", "gram", "grams", "克", Fraction(1000)),
             ("kg", "kilogram", "kilograms", "千克", Fraction(10**6)),
             ("t", "tonne", "tonnes", "吨", Fraction(10**9))],
    "time": [("s", "second", "seconds", "秒", Fraction(1)),
             ("min", "minute", "minutes", "分钟", Fraction(60)),
             ("h", "hour", "hours", "小时", Fraction(3600)),
             ("d", "day", "days", "天", Fraction(86400))],
    "volume": [("mL", "milliliter", "milliliters", "毫升", Fraction(1)),
               ("L", "liter", "liters", "升", Fraction(1000)),
               ("m3", "cubic meter", "cubic meters", "立方米", Fraction(10**6))],
    "area": [("cm2", "square centimeter", "square centimeters", "平方厘米", Fraction(1)),
             ("m2", "square meter", "square meters", "平方米", Fraction(10**4)),
             ("ha", "hectare", "hectares", "公顷", Fraction(10**8)),
             ("km2", "square kilometer", "square kilometers", "平方千米", Fraction(10**10))],
    "speed": [("km/h", "kilometer per hour", "kilometers per hour", "千米每小时", Fraction(1)),
              ("m/s", "meter per second", "meters per second", "米每秒", Fraction(18, 5))],
}
_FAMILIES = list(_UNITS)
_FAMILY_P = [0.22, 0.2, 0.2, 0.14, 0.14, 0.1]
_FAMILY_WEIGHT = {"length": 0.0, "mass": 0.0, "time": 0.0, "volume": 0.1, "area": 0.45, "speed": 0.2}
_UNIT_EN = ("Convert {v} {f} to {t}.", "How many {t} are in {v} {f}?")
_UNIT_ZH = ("把 {v} {f}换算成{t}。", "{v} {f}等于多少{t}？")


def _is_power_of_ten(r: Fraction) -> bool:
    for x in (r.numerator, r.denominator):
        while x % 10 == 0:
            x //= 10
        if x != 1:
            return False
    return True


def _unit_difficulty(p: dict[str, Any]) -> float:
    return (
        -1.7
        + 0.2 * p["factor_log10"]
        + 0.55 * (p["direction"] == "to_larger")
        + 0.7 * (not p["power_of_ten"])
        + 0.25 * p["value_decimals"]
        + 0.2 * p["answer_decimals"]
        + _FAMILY_WEIGHT[p["family"]]
    )


def _build_units(k: int, lang: str, rng: np.random.Generator) -> list[Row]:
    fam = rng.choice(len(_FAMILIES), size=k, p=_FAMILY_P)
    pair_u = rng.random((k, 2))
    dec = rng.choice([0, 1, 2], size=k, p=[0.5, 0.35, 0.15])
    mantissa = rng.integers(1, 1000, k)
    is_mc = rng.random(k) < 0.5
    pos = rng.integers(0, 4, k)
    shuffle = rng.random((k, 6))
    tmpl = rng.integers(0, 2, k)
    rows: list[Row] = []
    for f, (u0, u1), d, m, mc, ps, sh, t in zip(
        fam.tolist(), pair_u.tolist(), dec.tolist(), mantissa.tolist(), is_mc.tolist(),
        pos.tolist(), shuffle.tolist(), tmpl.tolist(), strict=True,
    ):
        family = _FAMILIES[f]
        units = _UNITS[family]
        a = int(u0 * len(units))
        b = int(u1 * (len(units) - 1))
        b = b + 1 if b >= a else b  # a different unit of the same family
        src, dst = units[a], units[b]
        ratio = src[4] / dst[4]
        nice = Fraction(m, 10**d)
        # Put the round number on whichever side keeps both sides terminating decimals.
        if _fmt_fraction(ratio) is not None or _fmt_fraction(1 / ratio) is None:
            value, result = nice, nice * ratio
        else:
            value, result = nice / ratio, nice
        v_txt, answer = _fmt_fraction(value), _fmt_fraction(result)
        assert v_txt is not None and answer is not None
        params = {
            "family": family, "from": src[0], "to": dst[0], "value": v_txt,
            "direction": "to_smaller" if ratio > 1 else "to_larger",
            "factor_log10": round(abs(math.log10(ratio)), 3),
            "power_of_ten": _is_power_of_ten(ratio),
            "value_decimals": _decimals(v_txt), "answer_decimals": _decimals(answer),
        }
        if lang == "en":
            q = _UNIT_EN[t].format(v=v_txt, f=src[1] if value == 1 else src[2], t=dst[2])
            mc_q = f"{v_txt} {src[1] if value == 1 else src[2]} equals how many {dst[2]}?"
        else:
            q = _UNIT_ZH[t].format(v=v_txt, f=src[3], t=dst[3])
            mc_q = f"{v_txt} {src[3]}等于多少{dst[3]}？"
        key = f"{family}|{src[0]}|{dst[0]}|{v_txt}"
        if mc:
            # Slips of the decimal point, and the factor applied the wrong way round.
            powers = [10 ** (1 + j % 3) for j in sorted(range(6), key=sh.__getitem__)]
            wrong_way = value / ratio
            choices, letter = _mc_ordered(result, [wrong_way] + [result / f for f in powers],
                                          [wrong_way] + [result * f for f in powers], ps, _fmt_fraction)
            rows.append((key, mc_q, choices, letter, "mc", {}, params))
        else:
            rows.append((key, q, None, answer, "numeric", {}, params))
    for row in rows:
        row[5].update(scenario="industry", domain="measurement", task="unit_conversion",
                      ability=["quantitative_reasoning", "domain_knowledge"])
    return rows


# --------------------------------------------------------------------------------------------------
# date arithmetic: add/subtract days or weeks, days between dates, weekdays
# --------------------------------------------------------------------------------------------------
_MONTHS_EN = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
              "October", "November", "December")
_WEEKDAYS_EN = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_WEEKDAYS_ZH = ("星期一", "星期二", "星期三", "星期四", "星期五", "星期六", "星期日")
_DATE_KINDS = ("add", "between", "weekday_after", "weekday_of")
_DATE_KIND_P = (0.4, 0.25, 0.2, 0.15)
_EPOCH = dt.date(1970, 1, 1).toordinal()  # day numbers below count from 1970-01-01, as numpy's do
_DAY0 = dt.date(1980, 1, 1).toordinal() - _EPOCH
_DAY_SPAN = dt.date(2040, 1, 1).toordinal() - dt.date(1980, 1, 1).toordinal()
_DATE_SHIFTS = (1, 2, 7, 10, 30, 31, 365)


def _ymd(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Year, month, day arrays of day numbers since 1970-01-01."""
    stamp = days.astype("datetime64[D]")
    months = stamp.astype("datetime64[M]")
    year = months.astype("datetime64[Y]").astype(np.int64) + 1970
    month = months.astype(np.int64) % 12 + 1
    day = (stamp - months.astype("datetime64[D]")).astype(np.int64) + 1
    return year, month, day


def _leap_days_through(year: np.ndarray, month: np.ndarray) -> np.ndarray:
    """Number of 29 Februaries on or before the given (year, month) (any day of March onward counts)."""
    y = np.where(month >= 3, year, year - 1)
    return y // 4 - y // 100 + y // 400


def _date_difficulty(p: dict[str, Any]) -> float:
    kind = p["kind"]
    if kind == "weekday_of":
        return 0.9 + 0.3 * abs(p["year"] - 2000) / 20
    base = {"add": -1.45, "between": -1.15, "weekday_after": -1.35}[kind]
    return (
        base
        + 0.45 * math.log10(p["offset"])
        + 0.3 * (p.get("direction") == "before")
        + 0.2 * (p.get("unit") == "weeks")
        + 0.25 * p.get("crosses_month", False)
        + 0.3 * p.get("crosses_year", False)
        + 0.35 * p.get("crosses_leap_day", False)
    )


def _build_dates(k: int, lang: str, rng: np.random.Generator) -> list[Row]:
    kind = rng.choice(len(_DATE_KINDS), size=k, p=_DATE_KIND_P)
    base = _DAY0 + rng.integers(0, _DAY_SPAN, k)
    offset = np.exp(rng.uniform(0.0, np.log(1500.0), k)).astype(np.int64)
    weeks = rng.random(k) < 0.25
    offset = np.where(weeks & (kind == 0), 7 * np.maximum(1, offset // 7 % 60), offset)
    before = rng.random(k) < 0.3
    end = np.where(before, base - offset, base + offset)
    lo, hi = np.minimum(base, end), np.maximum(base, end)
    ly, lm, _ = _ymd(lo)
    hy, hm, _ = _ymd(hi)
    # A 29 February inside [lo, hi]: count them through hi minus those strictly before lo.
    lo_prev_y, lo_prev_m, _ = _ymd(lo - 1)
    leap = _leap_days_through(hy, hm) - _leap_days_through(lo_prev_y, lo_prev_m) > 0
    start_wd = rng.integers(0, 7, k)
    is_mc = rng.random(k) < 0.5
    pos = rng.integers(0, 4, k)
    shuffle = rng.random((k, len(_DATE_SHIFTS)))
    wd_names = _WEEKDAYS_EN if lang == "en" else _WEEKDAYS_ZH

    def day(number: int) -> dt.date:
        return dt.date.fromordinal(number + _EPOCH)

    def show(d: dt.date) -> str:
        return f"{_MONTHS_EN[d.month - 1]} {d.day}, {d.year}" if lang == "en" else f"{d.year}年{d.month}月{d.day}日"

    def answer_text(number: int) -> str:
        d = day(number)
        return d.isoformat() if lang == "en" else f"{d.year}年{d.month}月{d.day}日"

    # Python lists: per-item indexing of numpy arrays costs more than the formatting itself.
    (kind_l, offset_l, is_mc_l, pos_l, ly_l, hy_l, lm_l, hm_l, leap_l, weeks_l, before_l, base_l, end_l,
     shuffle_l, start_wd_l, lo_l, hi_l) = (
        a.tolist() for a in (kind, offset, is_mc, pos, ly, hy, lm, hm, leap, weeks, before, base, end,
                             shuffle, start_wd, lo, hi)
    )
    rows: list[Row] = []
    for i in range(k):
        kd = _DATE_KINDS[int(kind_l[i])]
        n = int(offset_l[i])
        mc = bool(is_mc_l[i])
        ps = int(pos_l[i])
        if kd in ("add", "between"):
            cross = {"crosses_month": bool(ly_l[i] != hy_l[i] or lm_l[i] != hm_l[i]),
                     "crosses_year": bool(ly_l[i] != hy_l[i]), "crosses_leap_day": bool(leap_l[i])}
        if kd == "add":
            unit = "weeks" if weeks_l[i] else "days"
            amount = n // 7 if unit == "weeks" else n
            direction = "before" if before_l[i] else "after"
            start_day = day(int(base_l[i]))
            start = show(start_day)
            params = {"kind": kd, "start": start_day.isoformat(), "offset": n,
                      "unit": unit, "direction": direction, **cross}
            if lang == "en":
                unit_txt = unit if amount != 1 else unit[:-1]
                stem = f"What date is {amount} {unit_txt} {direction} {start}?"
                q_open = stem + " Answer in the form YYYY-MM-DD."
            else:
                unit_txt = "周" if unit == "weeks" else "天"
                stem = f"{start}{'之前' if before_l[i] else '之后'} {amount} {unit_txt}是哪一天？"
                q_open = stem + "请用“YYYY年M月D日”的格式回答。"
            answer = answer_text(int(end_l[i]))
            key = f"add|{params['start']}|{unit}|{direction}|{amount}"
            if mc:
                wrong_way = int(base_l[i]) + (n if before_l[i] else -n)
                shifts = [_DATE_SHIFTS[j] for j in sorted(range(len(_DATE_SHIFTS)), key=shuffle_l[i].__getitem__)]
                end_day = int(end_l[i])
                choices, letter = _mc_ordered(end_day, [wrong_way] + [end_day - d for d in shifts],
                                              [wrong_way] + [end_day + d for d in shifts], ps, answer_text)
                rows.append((key, stem, choices, letter, "mc", {"task": "date_offset"}, params))
            else:
                rows.append((key, q_open, None, answer, "open", {"task": "date_offset"}, params))
        elif kd == "between":
            first, last = day(int(lo_l[i])), day(int(hi_l[i]))
            a_txt, b_txt = show(first), show(last)
            params = {"kind": kd, "start": first.isoformat(), "end": last.isoformat(), "offset": n, **cross}
            q = (f"How many days after {a_txt} is {b_txt}?" if lang == "en"
                 else f"{b_txt}比{a_txt}晚多少天？")
            key = f"between|{params['start']}|{params['end']}"
            if mc:
                shifts = [_DATE_SHIFTS[j] for j in sorted(range(len(_DATE_SHIFTS)), key=shuffle_l[i].__getitem__)]
                below = [n - d for d in shifts if n - d > 0] + [n - 2, n - 3]  # e.g. counting both ends
                choices, letter = _mc_ordered(n, [v for v in below if v > 0], [n + d for d in shifts] + [n + 2],
                                              ps, str)
                rows.append((key, q, choices, letter, "mc", {"task": "date_difference"}, params))
            else:
                rows.append((key, q, None, str(n), "numeric", {"task": "date_difference"}, params))
        elif kd == "weekday_after":
            w0 = int(start_wd_l[i])
            w1 = (w0 + n) % 7
            params = {"kind": kd, "start_weekday": _WEEKDAYS_EN[w0], "offset": n}
            if lang == "en":
                q = f"If today is {wd_names[w0]}, what day of the week will it be in {n} days?"
            else:
                q = f"如果今天是{wd_names[w0]}，那么 {n} 天之后是星期几？"
            key = f"weekday_after|{w0}|{n}"
            rows.append(_weekday_row(key, q, w1, wd_names, mc, ps, shuffle_l[i], params))
        else:
            the_day = day(int(base_l[i]))
            w = (int(base_l[i]) + 3) % 7  # 1970-01-01 was a Thursday
            params = {"kind": kd, "date": the_day.isoformat(), "year": the_day.year}
            q = (f"What day of the week was {show(the_day)}?" if lang == "en"
                 else f"{show(the_day)}是星期几？")
            key = f"weekday_of|{params['date']}"
            rows.append(_weekday_row(key, q, w, wd_names, mc, ps, shuffle_l[i], params))
    for row in rows:
        row[5].setdefault("task", "weekday")
        row[5].update(scenario="application", domain="calendar", ability=["temporal_reasoning"])
    return rows


def _weekday_row(key: str, q: str, w: int, names: Sequence[str], mc: bool, pos: int,
                 shuffle: Sequence[float], params: dict[str, Any]) -> Row:
    if not mc:
        return (key, q, None, names[w], "open", {}, params)
    order = sorted(range(6), key=shuffle.__getitem__)
    choices, letter = _mc(names[w], [names[(w + 1 + j) % 7] for j in order], pos)
    return (key, q, choices, letter, "mc", {}, params)


# --------------------------------------------------------------------------------------------------
# string manipulation: character-level operations on short strings
# --------------------------------------------------------------------------------------------------
_LATIN = "abcdefghijklmnopqrstuvwxyz"
_HANZI = "天地人和山水日月风云花草木火土金石春夏秋冬东南西北大小上下左右中心"
_STRING_OPS = ("length", "char_at", "count", "reverse", "remove", "sort")
_STRING_OP_WEIGHT = {"length": 0.3, "char_at": 0.35, "count": 0.5, "reverse": 0.6, "remove": 0.6, "sort": 0.9}


def _string_difficulty(p: dict[str, Any]) -> float:
    return (
        -1.75
        + _STRING_OP_WEIGHT[p["op"]]
        + 0.16 * (p["length"] - 4)
        + 0.1 * max(0, p.get("occurrences", 1) - 1)
        + 0.3 * (p["alphabet"] <= 4)  # many repeated characters are easy to lose track of
    )


def _mutations(s: str, alphabet: str, start: int) -> list[str]:
    """Strings differing from s at exactly one position each (so distinct from s and each other)."""
    out = []
    for j in range(len(s)):
        c = s[j]
        repl = alphabet[(alphabet.index(c) + start + 1) % len(alphabet)] if c in alphabet else alphabet[0]
        if repl == c:
            repl = alphabet[(alphabet.index(c) + 1) % len(alphabet)]
        out.append(s[:j] + repl + s[j + 1 :])
    return out


def _build_strings(k: int, lang: str, rng: np.random.Generator) -> list[Row]:
    op_idx = rng.integers(0, len(_STRING_OPS), k)
    length = rng.integers(4, 17, k)
    alpha_sizes = np.array([4, 8, 26] if lang == "en" else [4, 8, len(_HANZI)])
    alpha = alpha_sizes[rng.integers(0, 3, k)]
    codes = rng.random((k, 16))
    alpha_offset = rng.integers(0, 26, k)
    pick = rng.random(k)
    is_mc = rng.random(k) < 0.5
    pos = rng.integers(0, 4, k)
    mut = rng.integers(0, 3, k)
    rows: list[Row] = []
    for op_i, n, a, code_row, off, pk, mc, ps, mu in zip(
        op_idx.tolist(), length.tolist(), alpha.tolist(), codes.tolist(), alpha_offset.tolist(),
        pick.tolist(), is_mc.tolist(), pos.tolist(), mut.tolist(), strict=True,
    ):
        op = _STRING_OPS[op_i]
        pool = _LATIN if (lang == "en" or op == "sort") else _HANZI
        a = min(a, len(pool))
        start = off % len(pool)
        alphabet = (pool[start:] + pool[:start])[:a]
        idx = [int(u * a) for u in code_row[:n]]
        if len(set(idx)) == 1:  # keep at least two distinct characters
            idx[-1] = (idx[-1] + 1) % a
        s = "".join(alphabet[j] for j in idx)
        target_pos = int(pk * n)
        c = s[target_pos]
        params: dict[str, Any] = {"op": op, "length": n, "alphabet": a, "string": s}
        en = lang == "en"
        cands: list[str] = []
        ordered: tuple[int, list[int], list[int]] | None = None
        if op == "length":
            q = f'How many characters are in the string "{s}"?' if en else f"字符串“{s}”有多少个字符？"
            answer, typ = str(n), "numeric"
            ordered = (n, [n - 1, n - 2, n - 3], [n + 1, n + 2, n + 3])
        elif op == "char_at":
            params["position"] = target_pos + 1
            q = (f'What is character number {target_pos + 1} (counting from 1) of the string "{s}"?' if en
                 else f"字符串“{s}”从左数第 {target_pos + 1} 个字符是什么？")
            answer, typ = c, "open"
            near = [s[j] for j in (target_pos - 1, target_pos + 1, target_pos - 2, target_pos + 2)
                    if 0 <= j < n]
            cands = near + [ch for ch in pool if ch != c]
        elif op == "count":
            occ = s.count(c)
            params.update(target=c, occurrences=occ)
            q = (f'How many times does the character "{c}" appear in the string "{s}"?' if en
                 else f"字符“{c}”在字符串“{s}”中出现了几次？")
            answer, typ = str(occ), "numeric"
            ordered = (occ, [v for v in (occ - 1, occ - 2, occ - 3) if v >= 0], [occ + 1, occ + 2, occ + 3])
        elif op == "reverse":
            q = f'Write the string "{s}" in reverse order.' if en else f"把字符串“{s}”倒序写出来。"
            answer, typ = s[::-1], "open"
            rev = s[::-1]
            swaps = [rev[:j] + rev[j + 1] + rev[j] + rev[j + 2 :] for j in range(min(3, n - 1))]
            cands = [s, *swaps, *_mutations(rev, alphabet, mu)]
        elif op == "remove":
            rest = s.replace(c, "")
            params.update(target=c, occurrences=s.count(c))
            q = (f'Delete every "{c}" from the string "{s}". What string remains?' if en
                 else f"删去字符串“{s}”中所有的“{c}”，剩下的字符串是什么？")
            answer, typ = rest, "open"
            first_only = s.replace(c, "", 1)
            cands = [first_only, s, *_mutations(rest, alphabet, mu),
                     *(rest + ch for ch in alphabet)]
        else:
            q = (f'Sort the letters of "{s}" in alphabetical order.' if en
                 else f"把字符串“{s}”中的字母按字母表顺序排列。")
            answer, typ = "".join(sorted(s)), "open"
            desc = answer[::-1]
            cands = [desc, *_mutations(answer, alphabet, mu)]
        key = f"{op}|{s}|{c if op in ('count', 'remove') else ''}|{target_pos if op == 'char_at' else ''}"
        if mc:
            choices, letter = (_mc(answer, cands, ps) if ordered is None
                               else _mc_ordered(ordered[0], ordered[1], ordered[2], ps, str))
            rows.append((key, q, choices, letter, "mc", {"task": f"string_{op}"}, params))
        else:
            rows.append((key, q, None, answer, typ, {"task": f"string_{op}"}, params))
    for row in rows:
        row[5].update(scenario="general", domain="text_processing",
                      ability=["symbolic_manipulation", "character_level_processing"])
    return rows


# --------------------------------------------------------------------------------------------------
# simple logic: ordering chains and propositions about an integer
# --------------------------------------------------------------------------------------------------
_NAMES_EN = ("Alice", "Bob", "Carol", "David", "Emma", "Frank", "Grace", "Henry", "Iris", "Jack",
             "Kate", "Leo", "Mia", "Noah", "Olivia", "Peter", "Quinn", "Rose", "Sam", "Tina")
_NAMES_ZH = ("张伟", "王芳", "李娜", "刘洋", "陈静", "杨帆", "赵磊", "黄婷", "周杰", "吴敏",
             "徐强", "孙丽", "马超", "朱琳", "胡斌", "郭勇", "何欣", "林峰", "高洁", "罗军")
# en: (more, less, top, bottom); zh: (more stmt, less stmt, top q, bottom q, dimension, more, less, pair q)
_REL_EN = (("taller", "shorter", "tallest", "shortest"), ("older", "younger", "oldest", "youngest"),
           ("heavier", "lighter", "heaviest", "lightest"), ("faster", "slower", "fastest", "slowest"))
_REL_ZH = (
    ("{a}比{b}高。", "{a}比{b}矮。", "谁最高？", "谁最矮？", "身高", "高", "矮", "{a}比{b}高吗？"),
    ("{a}比{b}年龄大。", "{a}比{b}年龄小。", "谁年龄最大？", "谁年龄最小？", "年龄", "大", "小", "{a}比{b}年龄大吗？"),
    ("{a}比{b}重。", "{a}比{b}轻。", "谁最重？", "谁最轻？", "体重", "重", "轻", "{a}比{b}重吗？"),
    ("{a}比{b}跑得快。", "{a}比{b}跑得慢。", "谁跑得最快？", "谁跑得最慢？", "速度", "快", "慢", "{a}比{b}跑得快吗？"),
)
_ORDINAL_EN = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth")
_QUERIES = ("top", "bottom", "kth", "pair")
_QUERY_WEIGHT = {"top": 0.0, "bottom": 0.1, "kth": 0.55, "pair": 0.3}
# Predicates about x: (kind, English, Chinese); c/m filled in per item.
_PRED_KINDS = ("gt", "lt", "even", "odd", "div", "ndiv")


def _logic_difficulty(p: dict[str, Any]) -> float:
    if p["kind"] == "ordering":
        return (
            -1.6
            + 0.3 * (p["chain_length"] - 3)
            + 0.45 * p["shuffled"]
            + 0.15 * min(p["reversed_statements"], 3)
            + _QUERY_WEIGHT[p["query"]]
        )
    return (
        -1.7
        + 0.55 * (p["n_clauses"] - 1)
        + 0.3 * p["negations"]
        + 0.4 * p["mixed_connectives"]
        + 0.15 * (p["x_digits"] - 1)
        + 0.15 * p["divisibility_clauses"]
    )


def _build_logic(k: int, lang: str, rng: np.random.Generator) -> list[Row]:
    ordering = rng.random(k) < 0.55
    chain = rng.integers(3, 9, k)
    name_order = np.argsort(rng.random((k, len(_NAMES_EN))), axis=1)
    rel = rng.integers(0, 4, k)
    shuffled = rng.random(k) < 0.6
    flip = rng.random((k, 8)) < np.where(rng.random(k) < 0.5, 0.35, 0.0)[:, None]
    stmt_order = np.argsort(rng.random((k, 8)), axis=1)
    query = rng.choice(4, size=k, p=[0.3, 0.2, 0.25, 0.25])
    qpick = rng.random((k, 2))
    x_digits = rng.choice([1, 2, 3], size=k, p=[0.3, 0.4, 0.3])
    xs = (np.where(x_digits == 1, 1, 10 ** (x_digits - 1))
          + np.floor(rng.random(k) * (10**x_digits - np.where(x_digits == 1, 1, 10 ** (x_digits - 1))))
          ).astype(np.int64)
    n_clauses = rng.choice([1, 2, 3, 4], size=k, p=[0.3, 0.3, 0.25, 0.15])
    pred = rng.integers(0, len(_PRED_KINDS), (k, 4))
    const_shift = rng.integers(-30, 31, (k, 4))
    modulus = rng.choice([3, 4, 5, 7, 9], size=(k, 4))
    conn = rng.random((k, 3)) < 0.5
    is_mc = rng.random(k) < 0.6
    pos = rng.integers(0, 4, k)
    names = _NAMES_EN if lang == "en" else _NAMES_ZH
    rows: list[Row] = []
    for o, n, nord, r, sh, fl, so, qu, qp, mc, ps, x, xd, nc, pr, cs, md, cn in zip(
        ordering.tolist(), chain.tolist(), name_order.tolist(), rel.tolist(), shuffled.tolist(),
        flip.tolist(), stmt_order.tolist(), query.tolist(), qpick.tolist(), is_mc.tolist(), pos.tolist(),
        xs.tolist(), x_digits.tolist(), n_clauses.tolist(), pred.tolist(), const_shift.tolist(),
        modulus.tolist(), conn.tolist(), strict=True,
    ):
        if o:
            rows.append(_ordering_row(lang, names, n, nord, r, sh, fl, so, _QUERIES[qu], qp, mc, ps))
        else:
            rows.append(_proposition_row(lang, x, xd, nc, pr, cs, md, cn))
    for row in rows:
        row[5].update(scenario="general", domain="logic", ability=["deductive_reasoning"])
    return rows


def _ordering_row(lang: str, names: Sequence[str], n: int, name_idx: list[int], rel: int, shuffled: bool,
                  flip: list[bool], stmt_order: list[int], query: str, qpick: list[float], mc: bool,
                  pos: int) -> Row:
    people = [names[j] for j in name_idx[:n]]  # people[0] has the most of the quantity
    en = lang == "en"
    statements = []
    order = [j for j in stmt_order if j < n - 1] if shuffled else list(range(n - 1))
    for j in order:
        hi, lo = people[j], people[j + 1]
        if flip[j]:
            statements.append(f"{lo} is {_REL_EN[rel][1]} than {hi}." if en else _REL_ZH[rel][1].format(a=lo, b=hi))
        else:
            statements.append(f"{hi} is {_REL_EN[rel][0]} than {lo}." if en else _REL_ZH[rel][0].format(a=hi, b=lo))
    facts = " ".join(statements) if en else "".join(statements)
    params: dict[str, Any] = {"kind": "ordering", "chain_length": n, "shuffled": shuffled,
                              "reversed_statements": sum(flip[j] for j in range(n - 1)), "query": query,
                              "relation": _REL_EN[rel][0], "people": people}
    if query == "pair":
        first = int(qpick[0] * n)
        second = int(qpick[1] * (n - 1))
        second += second >= first  # two different people, either order
        yes = first < second
        params.update(asked=[people[first], people[second]])
        if en:
            q = f"{facts} Is {people[first]} {_REL_EN[rel][0]} than {people[second]}? Answer yes or no."
            answer = "yes" if yes else "no"
        else:
            q = facts + _REL_ZH[rel][7].format(a=people[first], b=people[second]) + "请回答“是”或“否”。"
            answer = "是" if yes else "否"
        key = f"ordering|{'|'.join(people)}|{rel}|{' '.join(statements)}|pair|{first}|{second}"
        return (key, q, None, answer, "open", {"task": "ordering_comparison"}, params)
    if query == "top":
        target = 0
        ask = f"Who is the {_REL_EN[rel][2]}?" if en else _REL_ZH[rel][2]
    elif query == "bottom":
        target = n - 1
        ask = f"Who is the {_REL_EN[rel][3]}?" if en else _REL_ZH[rel][3]
    else:
        target = 1 + int(qpick[0] * (n - 2))  # a middle rank, 2..n-1
        params["rank"] = target + 1
        zh = _REL_ZH[rel]
        ask = (f"Who is the {_ORDINAL_EN[target]} {_REL_EN[rel][2]}?" if en  # "the third tallest"
               else f"按{zh[4]}从{zh[5]}到{zh[6]}排列，第 {target + 1} 位是谁？")
    q = f"{facts} {ask}" if en else facts + ask
    key = f"ordering|{'|'.join(people)}|{rel}|{' '.join(statements)}|{query}|{target}"
    task = "ordering_rank"
    if mc and n >= 4:
        near = sorted((j for j in range(n) if j != target), key=lambda j: (abs(j - target), (j < target) == (qpick[1] < 0.5)))
        choices, letter = _mc(people[target], [people[j] for j in near], pos)
        return (key, q, choices, letter, "mc", {"task": task}, params)
    return (key, q, None, people[target], "open", {"task": task}, params)


def _proposition_row(lang: str, x: int, x_digits: int, n: int, pred: list[int], shift: list[int],
                     modulus: list[int], conn: list[bool]) -> Row:
    en = lang == "en"
    texts, values = [], []
    negations = divisibility = 0
    for j in range(n):
        kind = _PRED_KINDS[pred[j]]
        c = max(0, x + shift[j])
        m = modulus[j]
        if kind == "gt":
            t, v = f"x > {c}", x > c
        elif kind == "lt":
            t, v = f"x < {c}", x < c
        elif kind == "even":
            t, v = ("x is even" if en else "x 是偶数"), x % 2 == 0
        elif kind == "odd":
            t, v = ("x is odd" if en else "x 是奇数"), x % 2 == 1
        elif kind == "div":
            t, v = (f"x is divisible by {m}" if en else f"x 能被 {m} 整除"), x % m == 0
            divisibility += 1
        else:
            t, v = (f"x is not divisible by {m}" if en else f"x 不能被 {m} 整除"), x % m != 0
            divisibility += 1
            negations += 1
        texts.append(t)
        values.append(v)
    expr, value = texts[0], values[0]
    words = ("and", "or") if en else ("且", "或")
    open_p, close_p = ("(", ")") if en else ("（", "）")
    used = set()
    for j in range(1, n):
        is_and = conn[j - 1]
        used.add(is_and)
        left = f"{open_p}{expr}{close_p}" if j >= 2 else expr  # explicit grouping: no precedence rules
        expr = f"{left} {words[0] if is_and else words[1]} {texts[j]}"
        value = (value and values[j]) if is_and else (value or values[j])
    params = {"kind": "proposition", "x": x, "x_digits": x_digits, "n_clauses": n, "negations": negations,
              "mixed_connectives": len(used) == 2, "divisibility_clauses": divisibility}
    if en:
        q = f'Let x = {x}. Is the statement "{expr}" true or false? Answer true or false.'
        answer = "true" if value else "false"
    else:
        q = f"设 x = {x}。命题“{expr}”是真还是假？请回答“真”或“假”。"
        answer = "真" if value else "假"
    return (f"proposition|{x}|{'|'.join(texts)}|{conn[: n - 1]}", q, None, answer, "open",
            {"task": "propositional_logic"}, params)


# --------------------------------------------------------------------------------------------------
# registry and the bank-facing entry point
# --------------------------------------------------------------------------------------------------
GENERATORS: dict[str, Generator] = {
    g.name: g
    for g in (
        Generator("arithmetic", "1.0", _build_arithmetic, _arith_difficulty),
        Generator("unit_conversion", "1.0", _build_units, _unit_difficulty),
        Generator("date_arithmetic", "1.0", _build_dates, _date_difficulty),
        Generator("string_manipulation", "1.0", _build_strings, _string_difficulty),
        Generator("simple_logic", "1.0", _build_logic, _logic_difficulty),
    )
}


def knob_difficulty(generator: str, params: dict[str, Any]) -> float:
    """The latent difficulty a generator's knobs declare (the ``true_difficulty`` column)."""
    if generator not in GENERATORS:
        raise InputError(f"unknown generator {generator!r}; known: {', '.join(GENERATORS)}")
    return float(GENERATORS[generator].difficulty(params))


def _check_args(n: int, rng: Any, languages: Sequence[str], weights: Sequence[float],
                generators: Sequence[str]) -> np.ndarray:
    if not isinstance(rng, np.random.Generator):
        raise InputError(f"rng: expected a numpy.random.Generator, got {type(rng).__name__}")
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
        raise InputError(f"n: expected a non-negative integer, got {n!r}")
    if not languages or len(languages) != len(weights):
        raise InputError(f"languages {tuple(languages)} and language_weights {tuple(weights)} must be "
                         "non-empty and of the same length")
    bad = [lang for lang in languages if lang not in LANGUAGES]
    if bad:
        raise InputError(f"languages: unsupported {bad}; supported: {', '.join(LANGUAGES)}")
    if len(set(languages)) != len(languages):
        raise InputError(f"languages: repeated entries in {tuple(languages)}")
    w = np.asarray(weights, dtype=float)
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise InputError(f"language_weights: expected non-negative numbers with a positive sum, got {tuple(weights)}")
    unknown = [g for g in generators if g not in GENERATORS]
    if not generators or unknown:
        raise InputError(f"generators: unknown {unknown or '(none given)'}; known: {', '.join(GENERATORS)}")
    return w / w.sum()


def generate_items(
    n: int,
    rng: np.random.Generator,
    languages: Sequence[str] = ("en", "zh"),
    language_weights: Sequence[float] = (0.7, 0.3),
    *,
    generators: Sequence[str] | None = None,
    max_rounds: int = 50,
) -> pd.DataFrame:
    """``n`` distinct template items in the bank's canonical import columns (see the module docstring).

    Each item's language is drawn with ``language_weights`` and its generator uniformly from
    ``generators`` (default: all). Items whose problem repeats an earlier one (same generator, language
    and problem, whatever the wording or item type) are dropped and replaced by fresh draws, so the
    result has no duplicate questions. Deterministic for a given ``rng`` state.
    """
    names = list(GENERATORS) if generators is None else list(generators)
    p_lang = _check_args(n, rng, languages, language_weights, names)
    gens = [GENERATORS[g] for g in names]
    seen: set[str] = set()
    out: list[tuple[Generator, str, Row]] = []
    for _ in range(max_rounds):
        need = n - len(out)
        if need == 0:
            break
        lang_idx = rng.choice(len(languages), size=need, p=p_lang)
        gen_idx = rng.integers(0, len(gens), need)
        group = gen_idx * len(languages) + lang_idx
        # Build each (generator, language) group in one vectorised call, then deal rows back in draw order.
        batches: dict[int, list[Row]] = {}
        for g in np.unique(group).tolist():
            gi, li = divmod(g, len(languages))
            batches[g] = gens[gi].build(int(np.sum(group == g)), languages[li], rng)[::-1]
        for g in group.tolist():
            row = batches[g].pop()
            gen, lang = gens[g // len(languages)], languages[g % len(languages)]
            key = f"{gen.name}|{lang}|{row[0]}"
            if key not in seen:
                seen.add(key)
                out.append((gen, lang, row))
    else:
        if len(out) < n:
            raise InputError(f"could only generate {len(out)} distinct items of the {n} asked for "
                             f"(generators {names}, languages {tuple(languages)})")
    return _frame(out)


_JSON = json.JSONEncoder(ensure_ascii=False)  # params dicts are built in a fixed key order


def _frame(out: list[tuple[Generator, str, Row]]) -> pd.DataFrame:
    ids, questions, choices, answers, types, langs, tags = [], [], [], [], [], [], []
    labels, params_json, difficulty = [], [], []
    for gen, lang, (key, q, ch, ans, typ, tag, params) in out:
        td = round(float(gen.difficulty(params)), 4)
        ids.append(f"{gen.name}/{hashlib.blake2b(f'{lang}|{key}'.encode(), digest_size=8).hexdigest()}")
        questions.append(q)
        choices.append(ch)
        answers.append(ans)
        types.append(typ)
        langs.append(lang)
        tags.append({"scenario": tag["scenario"], "domain": tag["domain"], "task": tag["task"],
                     "ability": list(tag["ability"]), "difficulty_band": difficulty_band(td)})
        labels.append(gen.label)
        params_json.append(_JSON.encode(params))
        difficulty.append(td)
    return pd.DataFrame({
        "id": ids, "question": questions, "choices": choices, "answer": answers, "type": types,
        "language": langs, "tags": tags, "origin": "template", "generator": labels,
        "generator_params": params_json, "true_difficulty": np.asarray(difficulty, dtype=float),
    }, columns=COLUMNS)
