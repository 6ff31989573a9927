"""The import rule of the package (docs/design.md, "Layers"):

    commands -> stages -> teachers -> library -> {io, errors, settings}

Every import of gazecli (module level and inside functions) is read from the source with `ast`;
an import that points up a layer, an import from one stage into another, or a cycle fails.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "gazecli"

# io, errors, settings, and the torch-free config dataclasses the settings validate against
BASE = ("gazecli._version", "gazecli.core.io", "gazecli.core.errors", "gazecli.core.settings",
        "gazecli.core.constants", "gazecli.core.models.configs")
RANKS = {"base": 0, "library": 1, "teachers": 2, "stages": 3, "commands": 4}
# the demo runs the other commands: it may call their entry points, nothing else of theirs
ENTRY_POINTS = {"run_gradcam", "train_diffusion", "train_student", "pseudo_label_report", "train_vqa"}


def module_names() -> dict[str, Path]:
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def layer(module: str) -> str:
    if any(module == b or module.startswith(b + ".") for b in BASE):
        return "base"
    if module.startswith("gazecli.core.stages"):
        return "stages"
    if module.startswith("gazecli.core.teachers"):
        return "teachers"
    if module.startswith("gazecli.core"):
        return "library"
    return "commands"  # gazecli, gazecli.cli, gazecli.commands.*


def imports(mods: dict[str, Path]) -> list[tuple[str, str, str, int]]:
    """(importer, imported module, imported name or '', line) for every gazecli import."""
    out = []
    for module, path in mods.items():
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                out += [(module, a.name, "", node.lineno) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                for a in node.names:
                    target = f"{base}.{a.name}"
                    out.append((module, target if target in mods else base, a.name, node.lineno))
    resolved = []
    for module, target, name, line in out:
        if not target.startswith("gazecli"):
            continue
        while target not in mods and "." in target:
            target = target.rsplit(".", 1)[0]
        if target != module:
            resolved.append((module, target, name, line))
    return resolved


EDGES = imports(module_names())


def test_the_walk_sees_lazy_imports():
    # a guard for the test itself: imports inside functions are part of the graph
    assert any(m == "gazecli" and t == "gazecli.core.stages.predict" for m, t, _, _ in EDGES)
    assert len({m for m, *_ in EDGES}) > 40


def test_no_upward_import():
    bad = [f"{m}:{line} imports {t} ({layer(m)} -> {layer(t)})" for m, t, _, line in EDGES
           if RANKS[layer(t)] > RANKS[layer(m)]]
    assert not bad, "\n".join(bad)


def test_no_stage_imports_another_stage():
    def stage(module: str) -> str:  # a stage is a module or a package under core/stages
        return module.split(".")[3] if module.count(".") >= 3 else ""

    bad = []
    for m, t, name, line in EDGES:
        if layer(m) != "stages" or layer(t) != "stages" or stage(t) in ("", "common") or stage(m) == stage(t):
            continue
        if stage(m) == "demo" and name in ENTRY_POINTS:
            continue
        bad.append(f"{m}:{line} imports {t}.{name}")
    assert not bad, "\n".join(bad)


def test_no_import_cycle():
    graph: dict[str, set[str]] = {}
    for m, t, _, _ in EDGES:
        graph.setdefault(m, set()).add(t)
    # Tarjan's strongly connected components
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, "\n".join(" <-> ".join(c) for c in cycles)


@pytest.mark.parametrize("argv", [["--help"], ["train-student", "--help"], ["demo", "--help"]])
def test_help_does_not_import_torch(argv):
    code = ("import sys\nfrom gazecli.cli import main\ntry:\n    main(%r)\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('torch', 'torchvision', 'transformers', 'cv2') if m in sys.modules]\n"
            "print('HEAVY', heavy)\n") % (argv,)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=PACKAGE.parent)
    assert "HEAVY []" in out.stdout, out.stdout[-2000:] + out.stderr[-2000:]


def test_settings_validate_without_torch(tmp_path):
    code = ("import sys\nfrom gazecli.core.settings import TrainDiffusionSettings, load_settings\n"
            "s = load_settings(TrainDiffusionSettings, {'data': %r})\n"
            "print('HEAVY', [m for m in ('torch', 'cv2') if m in sys.modules], s.model_channels)\n") % (str(tmp_path),)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=PACKAGE.parent)
    assert "HEAVY [] 64" in out.stdout, out.stdout[-2000:] + out.stderr[-2000:]


def test_shared_names_have_one_definition():
    from gazecli.core import constants
    from gazecli.core.data import gazeworld_qa
    from gazecli.core.data.gazeworld import CLASSES
    from gazecli.core.models import STUDENT_MODELS
    from gazecli.core.teachers import TEACHERS

    assert tuple(TEACHERS) == constants.TEACHER_NAMES  # the settings' --teacher choices are the registry's
    assert gazeworld_qa.QUESTION_TYPES is constants.QUESTION_TYPES and STUDENT_MODELS is constants.STUDENT_MODELS
    assert CLASSES is gazeworld_qa.CLASS_NAMES


def test_no_module_over_450_lines():
    # one concept per module; the GazeWorld generator (one long procedural scene description) is the exception
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 450 and p.name != "gazeworld.py"}
    assert not long, long


def test_docstrings_point_inside_the_repository():
    # documents outside the repository (issues, the specification, working notes) are not cited
    import re

    outside = re.compile(r"method-spec|gazeworld-notes|anchors §|§\d|\bissue \d")
    cited = [f"{p.relative_to(PACKAGE)}:{i}" for p in PACKAGE.rglob("*.py")
             for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if outside.search(line)]
    assert not cited, cited
    for doc in ("design.md", "formats.md", "compat.md"):
        assert (PACKAGE.parent / "docs" / doc).is_file()
