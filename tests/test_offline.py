"""Offline by construction: the environment is set, and nothing tries to leave the machine."""

from __future__ import annotations

import ast
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from aiprod_studio import offline

ROOT = Path(__file__).resolve().parent.parent


def test_enforce_sets_the_offline_environment(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "True")
    offline.enforce()
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert os.environ["HF_HUB_DISABLE_TELEMETRY"] == "1"
    assert os.environ["DO_NOT_TRACK"] == "1"
    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"


def test_guard_blocks_remote_and_allows_loopback():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    with offline.no_network() as attempts:
        raw = socket.socket()
        with pytest.raises(offline.NetworkBlocked):
            raw.connect(("192.0.2.1", 80))  # TEST-NET-1: never reachable anyway
        raw.close()
        with pytest.raises(offline.NetworkBlocked):
            socket.getaddrinfo("example.com", 443)
        local = socket.create_connection(server.getsockname(), timeout=1)
        local.close()
    server.close()
    assert ("192.0.2.1", 80) in attempts and ("example.com",) in attempts
    assert len(attempts) == 2


GUARDED_RUN = textwrap.dedent(
    """
    import json, sys
    from aiprod_studio import offline
    attempts = []
    with offline.no_network(attempts):
        import diffusers, transformers, gradio, optimum.quanto  # import-time phoning home would show here
        from aiprod_studio.settings import load_settings
        from engine.studio import Studio
        from engine.runners import make_worker
        from ui.app import build_app
        studio = Studio(load_settings(models_dir=sys.argv[1], data_dir=sys.argv[2], device="cpu"))
        worker = make_worker(studio).start()
        job = worker.enqueue(studio.build_recipe({"prompt": "guarded render", "quantization": "int8"}))
        row = worker.wait(job, timeout_s=120)
        build_app(studio, worker)
        worker.stop()
    print(json.dumps({"attempts": [repr(a) for a in attempts], "status": row["status"]}))
    """
)


def test_import_render_and_ui_build_make_no_network_attempt(tiny_vault, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "GRADIO_"))}
    proc = subprocess.run(
        [sys.executable, "-c", GUARDED_RUN, str(tiny_vault), str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = __import__("json").loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"attempts": [], "status": "done"}


def test_no_download_code_outside_provisioning():
    """Only the vault's provisioning may reach a hub; nothing else calls a download API."""
    needles = ("hf_hub_download", "snapshot_download", "urlopen(", "requests.get(", "httpx.get(")
    offenders = []
    for package in ("aiprod_studio", "engine", "ui"):
        for f in (ROOT / package).rglob("*.py"):
            text = f.read_text(encoding="utf-8")
            offenders += [f"{f.relative_to(ROOT)}: {n}" for n in needles if n in text and "provision" not in f.name]
    assert offenders == []


def test_every_from_pretrained_is_local_only():
    calls = []
    for package in ("engine", "ui"):
        for f in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "from_pretrained":
                    local = any(
                        k.arg == "local_files_only" and getattr(k.value, "value", None) is True for k in node.keywords
                    )
                    calls.append((f"{f.relative_to(ROOT)}:{node.lineno}", local))
    assert len(calls) >= 4  # the pipeline, the quantized copy, the tiny model, the scenarist
    assert [where for where, local in calls if not local] == []
