"""The import rules of the design: ui → engine → aiprod_studio; core never imports torch/gradio."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# package → top-level modules it must never import
FORBIDDEN = {
    "aiprod_studio": {
        "torch",
        "gradio",
        "gradio_client",
        "diffusers",
        "transformers",
        "optimum",
        "peft",
        "accelerate",
        "av",
        "soundfile",
        "open_clip",
        "numpy",
        "engine",
        "ui",
    },
    "engine": {"gradio", "gradio_client", "ui"},
    "ui": set(),
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            found.add(str(node.args[0].value).split(".")[0])
    return found


def test_every_package_respects_its_import_rules():
    violations = []
    for package, forbidden in FORBIDDEN.items():
        files = sorted((ROOT / package).rglob("*.py"))
        assert files, f"package {package} has no modules"
        for f in files:
            bad = imported_modules(f) & forbidden
            if bad:
                violations.append(f"{f.relative_to(ROOT)} imports {sorted(bad)}")
    assert violations == []


def test_only_ui_imports_gradio():
    users = []
    for f in sorted(ROOT.rglob("*.py")):
        rel = f.relative_to(ROOT)
        if rel.parts[0] in (".venv", "tests", "benchmarks") or "gradio" not in imported_modules(f):
            continue
        users.append(rel.parts[0])
    assert set(users) == {"ui"}


def test_the_checker_sees_violations(tmp_path):
    bad = tmp_path / "m.py"
    bad.write_text("import torch\nfrom gradio import Blocks\nimport importlib\nimportlib.import_module('engine.x')\n")
    assert imported_modules(bad) == {"torch", "gradio", "importlib", "engine"}


def test_importing_the_core_loads_no_torch_or_gradio():
    import subprocess
    import sys

    code = (
        "import sys, aiprod_studio.cli, aiprod_studio.jobs.history, aiprod_studio.vault.store, aiprod_studio.recipe;"
        "print(sorted(m for m in ('torch','gradio','diffusers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"


# -- no import circles between files ------------------------------------------------------------------
PACKAGES = ("aiprod_studio", "engine", "ui")


def _runtime_imports(tree: ast.AST) -> list[str]:
    """Modules a file imports when it runs (inside functions too); `if TYPE_CHECKING:` blocks are
    for the type checker only and are skipped."""
    found: list[str] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.extend(f"{node.module}.{alias.name}" for alias in node.names)
            found.append(node.module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, set[str]]:
    """module → the modules of `packages` it imports (a name imported from a package that is a
    module of its own counts as that module)."""
    modules = {}
    for package in packages:
        for f in sorted((root / package).rglob("*.py")):
            name = ".".join(f.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
            modules[name] = f
    graph = {}
    for name, f in modules.items():
        targets = set()
        for imported in _runtime_imports(ast.parse(f.read_text(encoding="utf-8"))):
            if imported in modules and imported != name and not name.startswith(imported + "."):
                targets.add(imported)
        graph[name] = targets
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def test_no_import_circles_between_files():
    assert circles(import_graph(ROOT)) == []


def test_the_circle_finder_sees_a_circle_through_a_function_level_import(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg.b import thing\n")
    (pkg / "b.py").write_text("def thing():\n    from pkg import c\n")
    (pkg / "c.py").write_text("import pkg.a\n")
    (pkg / "d.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import a\n")
    graph = import_graph(tmp_path, ("pkg",))
    assert graph["pkg.d"] == set()  # type-checking imports do not run
    assert circles(graph) == [["pkg.a", "pkg.b", "pkg.c"]]
