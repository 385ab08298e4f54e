"""The lock file and the bootstrap: pinned, hashed, no cloud SDKs, stdlib-only launcher."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLOUD_SDKS = re.compile(
    r"^(google-.*|google|boto3|botocore|aiobotocore|s3fs|stripe|wandb|azure-.*|sentry-sdk|"
    r"mixpanel|segment-analytics-python|posthog)$"
)


def locked() -> dict[str, str]:
    pins = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", (ROOT / "requirements.lock").read_text()):
        m = re.match(r"([A-Za-z0-9_.\-]+)==([^\s\\]+)", block)
        if m:
            assert "--hash=sha256:" in block, f"{m.group(1)} is pinned without a hash"
            pins[m.group(1).lower().replace("_", "-")] = m.group(2)
    return pins


def test_torch_pins_and_every_dependency_locked():
    pins = locked()
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"
    for dep in (
        "diffusers",
        "transformers",
        "gradio",
        "optimum-quanto",
        "av",
        "soundfile",
        "open-clip-torch",
        "sqlite-utils",
        "platformdirs",
        "peft",
        "accelerate",
        "safetensors",
        "pydantic",
        "pytest",
        "gradio-client",
    ):
        assert dep in pins, dep
    assert int(pins["sqlite-utils"].split(".")[0]) >= 4
    assert tuple(int(x) for x in pins["gradio"].split(".")[:2]) >= (6, 20)


def test_no_cloud_sdk_in_the_dependency_tree():
    assert [name for name in locked() if CLOUD_SDKS.match(name)] == []


def test_launcher_uses_only_the_standard_library():
    tree = ast.parse((ROOT / "launch.py").read_text())
    modules = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    modules |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert modules - {"__future__"} <= set(sys.stdlib_module_names)


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python3 launch.py test" in readme and "python3 launch.py test" in ci
