"""The import rules of the design: ui → engine → aiprod_studio; core never imports torch/gradio."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# package → top-level modules it must never import
FORBIDDEN = {
    "aiprod_studio": {"torch", "gradio", "gradio_client", "diffusers", "transformers", "optimum", "peft", "accelerate",
                      "av", "soundfile", "open_clip", "numpy", "engine", "ui"},
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
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                "import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant):
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

    code = ("import sys, aiprod_studio.cli, aiprod_studio.jobs.history, aiprod_studio.vault.store, aiprod_studio.recipe;"
            "print(sorted(m for m in ('torch','gradio','diffusers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"
