"""Start-up cost of the CLI, guarded by what it imports (never by a stopwatch).

``adt --help`` loads no command module and no heavy library; a bank command loads its own module, the
bank's libraries (pandas, DuckDB) and nothing of the IRT maths, plots or optimisers; and a light bank command
(``adt init``, ``adt bank stats``, ``bank verify``, ``bank history``) loads DuckDB alone: no pandas, numpy or
pyarrow (issue 12: importing pandas was 0.7 s of the 1.0 s ``adt bank stats`` took). What makes that so:
the top-level group loads a command's module when the command is looked up (``adt.cli.COMMANDS``), the
``itembank`` and ``calibration`` faces load their names on first use (``_LAZY``), so opening a bank (whose
migrations name ``calibration``) registers the room's migrations without importing scipy, ``itembank.bank``
imports numpy, pandas, pyarrow and the importer in the methods that use them, the bank commands import the
importer, snapshot and spool in their own commands, and the light ones print an ``adtbase.table.Table``
(``Bank.stats_table``, ``Bank.item_history_table``: a frame's text without pandas) through
``adtbase.jsonable``, which imports neither numpy nor pandas.
"""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("pandas", "numpy", "scipy", "matplotlib", "pymoo", "duckdb", "pyarrow", "torch", "transformers",
         "sklearn", "vllm", "py_irt")
# What a bank command may not load: everything heavy but the bank's own libraries.
NOT_FOR_BANK = tuple(m for m in HEAVY if m not in ("pandas", "numpy", "duckdb", "pyarrow"))
# What a light bank command may not load: everything heavy but DuckDB.
NOT_FOR_LIGHT = tuple(m for m in HEAVY if m != "duckdb")

PROBE = """
import json, sys
from adt.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    assert exc.code in (0, None), exc.code
heavy = json.loads({heavy!r})
print(json.dumps({{"heavy": sorted(m for m in sys.modules if m.split(".")[0] in heavy),
                  "commands": sorted(m for m in sys.modules if m.startswith("adt.commands."))}}))
"""


def loaded_by(args: list[str], cwd: Path) -> dict[str, list[str]]:
    """Run ``adt ARGS`` in a fresh interpreter; the heavy modules and command modules it imported."""
    code = PROBE.format(heavy=json.dumps(HEAVY))
    out = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "ADT_BANK_WAIT": "5"},
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_help_imports_no_heavy_module_and_no_command(tmp_path: Path) -> None:
    seen = loaded_by(["--help"], tmp_path)
    assert seen == {"heavy": [], "commands": []}


def test_bank_stats_imports_no_irt_maths_plots_or_models(tmp_path: Path) -> None:
    created = loaded_by(["--bank", "b.duckdb", "init"], tmp_path)
    assert created["commands"] == [] and not [m for m in created["heavy"] if m.split(".")[0] in NOT_FOR_BANK]
    seen = loaded_by(["--bank", "b.duckdb", "bank", "stats"], tmp_path)
    assert seen["commands"] == ["adt.commands.bank"]
    assert not [m for m in seen["heavy"] if m.split(".")[0] in NOT_FOR_BANK], seen["heavy"]


@pytest.fixture(scope="module")
def small_bank(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bank of six tagged items, made through the CLI."""
    folder = tmp_path_factory.mktemp("light")
    rows = [{"id": f"q{i}", "question": f"What is {i} + 1?", "choices": [str(i), str(i + 1), "0", "-1"],
             "answer": "B", "domain": "math" if i % 2 else "law"} for i in range(6)]
    (folder / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    loaded_by(["--bank", "b.duckdb", "init"], folder)
    loaded_by(["--bank", "b.duckdb", "bank", "import", "items.jsonl", "--source", "toy", "--tag-col", "domain"], folder)
    return folder / "b.duckdb"


@pytest.mark.parametrize("args", [
    ["init"],
    ["bank", "stats"],
    ["bank", "stats", "--json"],
    ["bank", "stats", "--by", "domain", "--by", "frequency_tier", "--filter", "language=en"],
    ["bank", "verify"],
    ["bank", "verify", "--json"],
    ["bank", "history", "toy:q1"],
    ["bank", "history", "toy:q1", "--json"],
])
def test_light_bank_commands_import_duckdb_alone(small_bank: Path, tmp_path: Path, args: list[str]) -> None:
    """No pandas, numpy, pyarrow or scipy (nor anything heavier): DuckDB is the only heavy library."""
    bank = tmp_path / "new.duckdb" if args == ["init"] else small_bank
    seen = loaded_by(["--bank", str(bank), *args], tmp_path)
    assert seen["commands"] == ([] if args == ["init"] else ["adt.commands.bank"])
    assert [m for m in seen["heavy"] if m.split(".")[0] in NOT_FOR_LIGHT] == [], seen["heavy"]
    assert "duckdb" in seen["heavy"]


def test_a_lazy_command_shows_its_full_help(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "adt", "calibrate", "--help"], cwd=tmp_path, capture_output=True,
                         text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "Usage: adt calibrate [OPTIONS]" in out.stdout
    assert "--irt" in out.stdout and "--anchor-calibration" in out.stdout


def test_command_table_matches_the_commands() -> None:
    """``COMMANDS`` lists every command with the module that defines it and the line its help starts with,
    so ``adt --help`` (which reads the table) says what ``adt CMD --help`` says."""
    import click

    from adt.cli import COMMANDS, cli

    cli.load_all()
    assert set(cli.commands) == {*COMMANDS, "init"}
    for name, (module, line) in COMMANDS.items():
        command = cli.commands[name]
        assert command.callback is not None and command.callback.__module__ == module, name
        assert click.Command(name, help=line).get_short_help_str(1000) == command.get_short_help_str(1000), name
    defining = {p.stem for p in (ROOT / "adt" / "commands").glob("*.py") if p.stem != "__init__"}
    assert {m.rsplit(".", 1)[1] for m, _ in COMMANDS.values()} == defining


@pytest.mark.parametrize("room", ["itembank", "calibration", "runners"])
def test_lazy_face_names_resolve_and_match_the_type_checking_block(room: str) -> None:
    """Every ``_LAZY`` name loads, and the names the type checker sees are the ones that load."""
    face = importlib.import_module(room)
    lazy: dict[str, str] = face._LAZY
    for name in lazy:
        assert getattr(face, name) is not None, name
    tree = ast.parse((ROOT / room / "__init__.py").read_text(encoding="utf-8"))
    typed: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for stmt in node.body:
                if isinstance(stmt, ast.ImportFrom):
                    typed.update(a.asname or a.name for a in stmt.names)
    assert typed == set(lazy)
