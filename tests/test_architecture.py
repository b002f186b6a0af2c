"""The import contract between rooms (DESIGN.md, "Rooms, faces and imports").

An AST check over every ``.py`` in the rooms, ``adt/`` and ``bench/`` (tests may import anything):

- a room (``itembank``, ``calibration``, ``sampler``, ``runners``) is imported only through its face:
  ``import calibration`` or ``from calibration import NAME`` with ``NAME`` one the face's ``__init__.py``
  binds (or lists in its ``_LAZY`` table), never ``calibration.store`` or any other submodule; a room's
  own files import themselves freely. ``adtbase`` is the common base: any of its public modules;
- an import of another package of ours follows an arrow of the list in DESIGN.md (the fenced ``imports``
  block, read here): no room imports ``adt/``, no arrow that list does not draw, and the list draws no
  arrow the code does not have.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROOMS = ("itembank", "calibration", "sampler", "runners")
BASE = "adtbase"
PACKAGES = (BASE, *ROOMS, "adt", "bench")


def allowed_arrows(design: str | None = None) -> dict[str, set[str]]:
    """importer -> the packages it may import, from DESIGN.md's ``imports`` block."""
    text = design if design is not None else (ROOT / "DESIGN.md").read_text(encoding="utf-8")
    block = re.search(r"^```imports\n(.*?)^```", text, re.M | re.S)
    assert block, "DESIGN.md has no ```imports block"
    out: dict[str, set[str]] = {}
    for line in block.group(1).splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        left, _, right = line.partition("->")
        out[left.strip()] = {p.strip() for p in right.split(",") if p.strip()}
    return out


def face_names(room: str) -> set[str]:
    """The names a room's ``__init__.py`` binds at top level, plus the keys of its ``_LAZY`` table."""
    tree = ast.parse((ROOT / room / "__init__.py").read_text(encoding="utf-8"))
    names: set[str] = set()

    def bind(node: ast.stmt) -> None:
        if isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
            if any(isinstance(t, ast.Name) and t.id == "_LAZY" for t in targets) and isinstance(node.value, ast.Dict):
                names.update(k.value for k in node.value.keys if isinstance(k, ast.Constant) and isinstance(k.value, str))
        elif isinstance(node, ast.If | ast.Try):
            for child in [*node.body, *getattr(node, "orelse", []), *getattr(node, "finalbody", [])]:
                bind(child)

    for node in tree.body:
        bind(node)
    return {n for n in names if not n.startswith("_") or n == "__version__"}


def imports(tree: ast.AST) -> Iterator[tuple[int, str, list[str] | None]]:
    """(line, absolute module, names imported from it or None for ``import module``); relative imports
    stay inside their own package and are skipped."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, None
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module, [a.name for a in node.names]


def violations(package: str, source: str, where: str, arrows: dict[str, set[str]],
               faces: dict[str, set[str]]) -> tuple[list[str], set[str]]:
    """What breaks the contract in one file of ``package``; and the packages it imports."""
    problems, used = [], set()
    for line, module, names in imports(ast.parse(source)):
        target = module.split(".")[0]
        if target not in PACKAGES or target == package:
            continue
        used.add(target)
        at = f"{where}:{line}: {module}"
        if target not in arrows.get(package, set()):
            problems.append(f"{at}: {package} -> {target} is not an arrow of DESIGN.md's list")
        if target == BASE:
            if any(part.startswith("_") for part in module.split(".")[1:]):
                problems.append(f"{at}: a private module of the base")
        elif target in ROOMS:
            if module != target:
                problems.append(f"{at}: reaches into {target}'s internals; import from its face ({target})")
            else:
                unknown = sorted(set(names or ()) - faces[target] - {"*"})
                if unknown:
                    problems.append(f"{at}: {', '.join(unknown)} not on {target}'s face ({target}/__init__.py)")
    return problems, used


def python_files(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py") if "__pycache__" not in p.parts)


def scan() -> tuple[list[str], dict[str, set[str]]]:
    arrows = allowed_arrows()
    faces = {room: face_names(room) for room in ROOMS}
    problems: list[str] = []
    used: dict[str, set[str]] = {p: set() for p in PACKAGES}
    for package in PACKAGES:
        for path in python_files(package):
            found, targets = violations(package, path.read_text(encoding="utf-8"),
                                        str(path.relative_to(ROOT)), arrows, faces)
            problems += found
            used[package] |= targets
    return problems, used


def test_every_package_is_in_designs_list() -> None:
    assert set(allowed_arrows()) == set(PACKAGES)


def test_rooms_import_each_other_only_through_their_faces_and_along_designs_arrows() -> None:
    problems, _ = scan()
    assert not problems, "\n".join(problems)


def test_designs_list_draws_only_arrows_the_code_has() -> None:
    _, used = scan()
    arrows = allowed_arrows()
    unused = sorted(f"{p} -> {t}" for p, targets in arrows.items() for t in targets - used[p])
    assert not unused, f"DESIGN.md draws arrows no import follows (remove them): {unused}"


def test_the_arrows_have_no_cycle() -> None:
    arrows = allowed_arrows()
    done: set[str] = set()

    def visit(node: str, path: tuple[str, ...]) -> None:
        assert node not in path, f"import cycle: {' -> '.join((*path, node))}"
        if node in done:
            return
        for nxt in arrows.get(node, ()):
            visit(nxt, (*path, node))
        done.add(node)

    for package in arrows:
        visit(package, ())


DESIGN = """
```imports
adtbase ->
itembank -> adtbase
calibration -> adtbase, itembank
adt -> adtbase, itembank, calibration
```
"""


@pytest.mark.parametrize(("package", "source", "expected"), [
    ("adt", "from calibration import fit_mml\nimport itembank\nfrom adtbase.errors import InputError\n", []),
    ("adt", "from calibration.store import load_calibration\n", ["reaches into calibration's internals"]),
    ("adt", "import calibration.store\n", ["reaches into calibration's internals"]),
    ("adt", "def f():\n    from itembank.bank import COLUMN_KEYS\n", ["reaches into itembank's internals"]),
    ("adt", "from calibration import no_such_name\n", ["no_such_name not on calibration's face"]),
    ("calibration", "from adt.cli import cli\n", ["calibration -> adt is not an arrow"]),
    ("itembank", "from calibration import fit_mml\n", ["itembank -> calibration is not an arrow"]),
    ("calibration", "from .store import load_calibration\nfrom calibration.irt import prob\n", []),
    ("adt", "from adtbase._secret import x\n", ["a private module of the base"]),
])
def test_the_check_catches_what_it_should(package: str, source: str, expected: list[str]) -> None:
    faces = {room: face_names(room) for room in ROOMS}
    problems, _ = violations(package, source, "x.py", allowed_arrows(DESIGN), faces)
    assert len(problems) == len(expected), problems
    for problem, want in zip(problems, expected, strict=True):
        assert want in problem
