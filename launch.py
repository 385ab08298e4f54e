#!/usr/bin/env python3
"""Start AIPROD Studio from a fresh clone: `python3 launch.py`.

1. Creates `.venv` beside this file if it is missing.
2. Installs the locked dependencies (`requirements.lock`, every package pinned with its
   hashes) and the studio itself (editable) — again only when the lock changed.
3. Starts the studio on http://127.0.0.1:7860 (`aiprod-studio ui`); if the model vault
   holds no pipeline it first builds the tiny test model.

`python3 launch.py test [PYTEST ARGS]` does steps 1–2 and runs the test suite instead.
Flags after `launch.py` pass through to `aiprod-studio ui` (`--port`, `--models-dir`,
`--data-dir`, `--device`, …). Standard library only: nothing else exists before step 2.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("AIPROD_VENV", ROOT / ".venv"))
LOCK = ROOT / "requirements.lock"
STAMP = VENV / ".aiprod-installed"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")


def say(message: str) -> None:
    print(f"[launch] {message}", flush=True)


def run(cmd: list[str]) -> None:
    say(" ".join(str(c) for c in cmd))
    result = subprocess.run(cmd, cwd=ROOT)
    if result.returncode != 0:
        sys.exit(f"[launch] failed (exit {result.returncode}): {' '.join(str(c) for c in cmd)}")


def wanted_stamp() -> str:
    h = hashlib.sha256()
    for f in (LOCK, ROOT / "pyproject.toml"):
        h.update(f.read_bytes())
    return h.hexdigest()


def bootstrap() -> None:
    if sys.version_info[:2] != (3, 11):
        sys.exit(f"[launch] AIPROD Studio needs Python 3.11 (torch 2.14.1 wheels); this is {sys.version.split()[0]}")
    if not PYTHON.exists():
        say(f"creating the virtual environment in {VENV}")
        venv.EnvBuilder(with_pip=True, clear=False).create(VENV)
    stamp = wanted_stamp()
    if STAMP.exists() and STAMP.read_text().strip() == stamp:
        return
    say("installing the locked dependencies (first run: several GB for torch, a few minutes)")
    pip = [str(PYTHON), "-m", "pip", "--disable-pip-version-check"]
    run([*pip, "install", "--require-hashes", "--no-deps", "-r", str(LOCK)])
    run([*pip, "install", "--no-deps", "--no-build-isolation", "-e", str(ROOT)])
    STAMP.write_text(stamp + "\n")
    say("environment ready")


def main(argv: list[str]) -> int:
    bootstrap()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if argv[:1] == ["test"]:
        cmd = [str(PYTHON), "-m", "pytest", *argv[1:]]
    elif argv[:1] == ["install"]:
        return 0
    else:
        cmd = [str(PYTHON), "-m", "aiprod_studio", "ui", *argv]
    say(" ".join(cmd))
    try:
        return subprocess.run(cmd, cwd=ROOT, env=env).returncode
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
