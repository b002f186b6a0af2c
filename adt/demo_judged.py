"""The demo world with subjective items (issue 15), end to end through the product's commands.

A SIMULATION: the candidates are ``simulated`` models of known ability and the judges are ``simjudge`` judges of
known bias (``runners.simjudge``, a simulation device that reads the quality the simulated candidate writes into
its answers). What it is for: to show that the loop sample -> run -> judge -> calibrate -> report works with
judge-scored items in the form, and how well the truth (abilities, judges' biases) comes back.

- ``subjective_items``: open items with a rubric (one criterion, four levels) or a reference answer (the reference
  scale, three levels), and pairwise items whose baseline answer is a simulated answer of quality 0; true
  parameters (a, b) per item; tagged ``domain=writing``.
- ``PANEL``: the simulated judges and their true biases.
- ``judged_round``: the commands, in order, through ``invoke`` (one CLI call: argument list -> stdout; the bench
  passes the CLI in-process, the test ``click.testing.CliRunner``): import the items, calibrate on the past runs,
  sample the round's form (a share of ``domain=writing``), publish, run every model, calibrate (the judge-scored
  answers are still pending, so this is the leaderboard without subjective items), ``adt judge run`` with the
  panel, calibrate again (now with them), report with per-type sub-scores.

``expert_levels``: a simulated human expert (a noiseless, unbiased simulated judge: the simulation's truth), who
scores the human queue. ``judge_figures`` / ``longer_wins``: what the judgments show of each judge's biases (the truth is ``PANEL``).
``bench/judge_world.py`` prints the figures; ``tests/adt/test_judge_world.py`` runs a small world.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from adt.demo import DemoWorld
from adtbase.rubric import parse_judge_key
from adtbase.verdicts import combine_orders
from itembank import open_bank
from runners import JudgeCase, create, judge_cases, read_simulated_quality, write_simulated_answer

SOURCE = "demo-judged"
DOMAIN = "writing"
RUBRIC = {"version": 1, "criteria": [{"name": "quality", "description": "how well the answer does what is asked",
                                      "levels": ["poor", "fair", "good", "excellent"]}]}
_TOPICS = {"en": ("photosynthesis", "compound interest", "the water cycle", "recursion", "supply and demand",
                  "vaccination", "plate tectonics", "public-key encryption"),
           "zh": ("光合作用", "复利", "水循环", "递归", "供求关系", "疫苗接种", "板块构造", "公钥加密")}
_ASK = {("open", "en"): "Explain {topic} to a newcomer in a short paragraph (task {k}).",
        ("open", "zh"): "请用一小段话向初学者解释{topic}（任务 {k}）。",
        ("pairwise", "en"): "Write a friendly reply to a user asking about {topic} (request {k}).",
        ("pairwise", "zh"): "请友好地回复一位询问{topic}的用户（请求 {k}）。"}


@dataclass(frozen=True)
class SimJudge:
    """One simulated judge and its true biases (``runners.simjudge.Bias``)."""

    name: str
    severity: float = 0.0
    position_bias: float = 0.0
    length_bias: float = 0.0
    noise: float = 0.4
    seed: int = 0

    def spec(self) -> dict[str, Any]:
        """An entry of an ``adt judge run --judges`` file."""
        args = {k: v for k, v in asdict(self).items() if k != "name"}
        return {"name": self.name, "backend": "simjudge", "model": "simjudge", "args": args}


PANEL = (SimJudge("fair", seed=11), SimJudge("harsh", severity=0.8, seed=12),
         SimJudge("lenient-first", severity=-0.6, position_bias=1.0, seed=13),
         SimJudge("long-lover", severity=0.2, length_bias=1.0, seed=14))


def subjective_items(n: int, rng: np.random.Generator, *, pairwise_share: float = 0.4) -> tuple[pd.DataFrame,
                                                                                                   pd.DataFrame]:
    """``n`` judge-scored items in the import's columns (``id``, ``question``, ``type``, ``language``, ``tags`` and
    ``rubric`` / ``reference`` / ``baseline``), and their true parameters (``id, a, b, c, d``)."""
    rows = []
    for k in range(n):
        lang = "zh" if rng.random() < 0.3 else "en"
        kind = "pairwise" if rng.random() < pairwise_share else "open"
        topic = str(rng.choice(_TOPICS[lang]))
        row: dict[str, Any] = {"id": f"judged/{k:05d}", "question": _ASK[(kind, lang)].format(topic=topic, k=k),
                               "type": kind, "language": lang, "tags": {"domain": DOMAIN},
                               "rubric": None, "reference": None, "baseline": None}
        if kind == "pairwise":
            row["baseline"] = write_simulated_answer(0.0, int(rng.integers(20, 161)), rng)
        elif rng.random() < 0.6:
            row["rubric"] = RUBRIC
        else:
            row["reference"] = f"A reference explanation of {topic}." if lang == "en" else f"关于{topic}的参考解释。"
        rows.append(row)
    items = pd.DataFrame(rows)
    truth = pd.DataFrame({"id": items["id"], "a": np.exp(rng.normal(0.25, 0.3, n)), "b": rng.normal(0.0, 1.0, n),
                          "c": 0.0, "d": 1.0})
    return items, truth


def write_jsonl(items: pd.DataFrame, path: Path) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        for rec in items.to_dict("records"):
            fh.write(json.dumps({k: v for k, v in rec.items() if v is not None}, ensure_ascii=False) + "\n")
    return path


@dataclass(frozen=True)
class JudgedRound:
    """What the commands said (their ``--json`` outputs)."""

    import_report: dict[str, Any]
    params: dict[str, list[float]]            # the true item parameters by item id (objective and judged)
    form: dict[str, Any]
    runs: list[dict[str, Any]]
    calibration_objective: dict[str, Any]     # after the runs, judge-scored answers still pending
    judge_run: dict[str, Any]
    calibration_all: dict[str, Any]           # after the judges scored them
    report: str                               # the report's path
    queue: dict[str, Any]                     # the human queue after the judge run


Invoke = Callable[[Sequence[str]], str]


def judged_round(invoke: Invoke, bank_path: Path, workdir: Path, world: DemoWorld, items: pd.DataFrame,
                 truth: pd.DataFrame, *, form_size: int, writing_share: float, seed: int,
                 calibrate: Sequence[str] = ("--irt", "2pl"), final: Sequence[str] | None = None,
                 judges: Sequence[SimJudge] = PANEL, say: Callable[[str], None] = print) -> JudgedRound:
    """The round's commands in order (module doc); ``invoke(args)`` runs ``adt --bank BANK *args`` and returns its
    stdout (raising on a non-zero exit). ``items``/``truth``: ``subjective_items``'s; ``calibrate``: the fit's
    flags; ``final``: the last fit's (default ``calibrate`` linked, fixed anchors; ``--method facets`` fits the
    graded items with the judges as raters, on its own scale). The simulated models' parameter file (the world's truth, which the simulated
    backend reads) gets the judged items' ids from the bank once they are imported."""
    def call(*args: str) -> dict[str, Any]:
        return json.loads(invoke([*args, "--json"]))

    items_path = write_jsonl(items, workdir / "judged_items.jsonl")
    imported = call("bank", "import", str(items_path), "--source", SOURCE, "--license", "CC0-1.0", "--extend-taxonomy")
    say(f"[1] imported {imported.get('new_items')} judge-scored items ({SOURCE})")
    with open_bank(bank_path, purpose="demo: the judged items' ids") as bank:
        id_of = bank.items_for_aliases(truth["id"].tolist(), SOURCE)
    params = {r.item_id: [r.a, r.b, r.c, r.d] for r in world.params.itertuples()}
    params.update({id_of[r.id]: [r.a, r.b, r.c, r.d] for r in truth.itertuples()})
    params_path = workdir / "true_params.json"
    params_path.write_text(json.dumps(params))
    models = world.models
    call("calibrate", *calibrate, "--seed", str(seed))
    form = call("sample", "--name", "round-1", "--strategy", "stratified", "--size", str(form_size), "--seed", str(seed),
                "--quota", "frequency_tier=high:0.1,medium:0.4,low:0.5", "--quota", f"domain={DOMAIN}:{writing_share}")
    call("form", "publish", "round-1", "--round", "1")
    say(f"[2] sampled and published round-1 ({form_size} items, {writing_share:.0%} {DOMAIN})")
    runs = [call("run", "--form", "round-1", "--model", str(m), "--backend", "simulated", "--round", "1",
                 "--backend-arg", f"theta={float(t)}", "--backend-arg", f"params={params_path}",
                 "--backend-arg", f"rng={seed + i}", "--no-progress")
            for i, (m, t) in enumerate(zip(models["model"], models["theta"], strict=True))]
    say(f"[3] ran {len(runs)} models")
    objective = call("calibrate", *calibrate, "--link", "fixed", "--seed", str(seed))
    say("[4] calibrated with the judge-scored answers still pending (the objective items only)")
    judges_file = workdir / "judges.json"
    judges_file.write_text(json.dumps([j.spec() for j in judges]))
    judged = call("judge", "run", "--form", "round-1", "--judges", str(judges_file), "--no-progress")
    say(f"[5] judge run: {judged['n_calls']} calls, {judged['n_inconsistent']} inconsistent pairs, "
        f"{judged['n_scored']} answers scored")
    queue = call("judge", "queue", "--limit", "0")
    both = call("calibrate", *(final if final is not None else (*calibrate, "--link", "fixed")), "--seed", str(seed))
    say("[6] calibrated again, the judged answers in")
    report = workdir / "report.html"
    call("report", "--round", "1", "--by", "item_type", "--out", str(report), "--worlds", "25", "--no-loo")
    say(f"[7] report with per-type sub-scores: {report}")
    return JudgedRound(imported, params, form, runs, objective, judged, both, str(report), queue)


# ------------------------------------------------------------------------------ what the judgments show

def judge_figures(judgments: pd.DataFrame) -> pd.DataFrame:
    """Per simulated judge, what its judgments show (see module doc)."""
    machine = judgments[~judgments["judge"].str.startswith("human:")].copy()
    point = machine[machine["order"] == ""]
    offset = point.groupby(["run_id", "item_id"])["verdict"].transform("mean")
    point = point.assign(off=point["verdict"] - offset)
    rows = []
    for judge, calls in machine.groupby("judge"):
        pair = calls[calls["order"] != ""]
        n_inc = n_pairs = 0
        for _, two in pair.groupby(["run_id", "item_id"]):
            v = dict(zip(two["order"], two["verdict"].astype(float), strict=True))
            status = combine_orders(v.get("ab", math.nan), v.get("ba", math.nan)).status
            n_pairs += status != "none"
            n_inc += status == "inconsistent"
        decided = pair[pair["verdict"].isin([0.0, 1.0])]
        first_won = ((decided["verdict"] == 1.0) == (decided["order"] == "ab")).mean()
        rows.append({"judge": judge, "pointwise_offset": point[point["judge"] == judge]["off"].mean(),
                     "pairs": n_pairs, "inconsistent": n_inc, "first_position_wins": float(first_won),
                     "unparseable": int(calls["verdict"].isna().sum())})
    return pd.DataFrame(rows)


def longer_wins(judgments: pd.DataFrame, answers: pd.DataFrame) -> tuple[pd.Series, float]:
    """Per judge: the share of decided pairwise calls where the longer of the two answers won; and the truth's
    rate (the share of pairs where the truly better answer is the longer one), to read it against."""
    info = answers.set_index(["run_id", "item_id"])
    pairs = {}
    for (r, i), a in info.iterrows():
        base = parse_judge_key(str(a["key"])).baseline
        if base is not None:
            cand_q, base_q = read_simulated_quality(str(a["answer"])), read_simulated_quality(base)
            pairs[(r, i)] = (len(str(a["answer"])) > len(base), (cand_q or 0.0) > (base_q or 0.0))
    pair = judgments[(judgments["order"] != "") & judgments["verdict"].isin([0.0, 1.0])]
    longer_cand = np.array([pairs[(r, i)][0] for r, i in zip(pair["run_id"], pair["item_id"], strict=True)])
    won = (pair["verdict"] == 1.0).to_numpy() == longer_cand
    truth = float(np.mean([longer == better for longer, better in pairs.values()]))
    return pd.Series(won, index=pair.index).groupby(pair["judge"]).mean(), truth


def expert_levels(answers: pd.DataFrame) -> pd.Series:
    """Per judged answer (``Bank.judged_answers`` rows), the level a simulated human expert gives: a ``simjudge``
    with no bias and no noise (pairwise: one order; the ties within its margin), i.e. the truth of the
    simulation. Indexed by (run_id, item_id)."""
    expert = create("simjudge", model="fair", noise=0.0)
    cases = [JudgeCase(str(r.run_id), str(r.item_id), str(r.model), str(r.question), str(r.answer),
                       parse_judge_key(str(r.key)), str(r.language or "en")) for r in answers.itertuples()]
    calls = judge_cases(expert, "expert", cases, orders=("ab",))
    return pd.Series([c.level for c in calls], index=pd.MultiIndex.from_tuples([(c.run_id, c.item_id) for c in calls],
                                                                               names=["run_id", "item_id"]))
