"""The sovereignty report: what runs here, where every model came from, and proof nothing leaves.

`build_report` gathers the facts (model inventory with sources, licences, sizes and the
last verify result; installed packages with their licences; the offline settings in
force; the network self-test the caller ran) and `to_markdown` renders them for a
person. The self-test itself renders a clip and therefore lives in the engine.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import os
import platform
import sys
from typing import Any

from aiprod_studio import __version__
from aiprod_studio.offline import OFFLINE_ENV
from aiprod_studio.settings import DEFAULT_HOST, Settings
from aiprod_studio.vault.store import Vault
from aiprod_studio.vault.verify import last_results

KEY_PACKAGES = (
    "torch",
    "diffusers",
    "transformers",
    "optimum-quanto",
    "peft",
    "accelerate",
    "gradio",
    "av",
    "huggingface-hub",
    "safetensors",
)


def _field(dist: importlib.metadata.Distribution, name: str) -> str | None:
    """One field of a distribution's metadata, None when it has none."""
    meta = dist.metadata
    return meta[name] if name in meta else None


def package_license(dist: importlib.metadata.Distribution) -> str:
    """A distribution's licence from its metadata: License-Expression, License, or classifiers."""
    expr = _field(dist, "License-Expression")
    if expr:
        return expr.strip()
    classifiers = [
        c.split("::")[-1].strip() for c in dist.metadata.get_all("Classifier") or [] if c.startswith("License ::")
    ]
    text = (_field(dist, "License") or "").strip()
    if text and text.upper() != "UNKNOWN" and len(text) <= 80 and "\n" not in text:
        return text
    if classifiers:
        return ", ".join(sorted(set(classifiers)))
    return "unknown (see the package)" if not text else text.splitlines()[0][:80] + " …"


def dependencies() -> list[dict[str, str]]:
    seen: dict[str, dict[str, str]] = {}
    for dist in importlib.metadata.distributions():
        name = _field(dist, "Name")
        if name and name.lower() not in seen:
            seen[name.lower()] = {"name": name, "version": dist.version, "license": package_license(dist)}
    return sorted(seen.values(), key=lambda d: d["name"].lower())


def build_report(settings: Settings, self_test: dict[str, Any] | None) -> dict[str, Any]:
    vault = Vault(settings.models_dir)
    checks = last_results(vault)
    models = []
    for e in vault.entries():
        check = checks.get(e.name, {})
        models.append(
            {
                "name": e.name,
                "kind": e.kind,
                "family": e.family,
                "source": f"{e.source.repo}@{e.source.revision}" if e.source else None,
                "license": e.license,
                "size": e.total_size,
                "files": len(e.files),
                "digest": e.digest,
                "derived_from": e.derived_from,
                "quantization": e.quantization,
                "test_model": e.test_model,
                "last_check": check.get("status", "never checked"),
                "last_check_mode": check.get("mode"),
                "last_check_time": check.get("checked"),
            }
        )
    manifest_sha = (
        hashlib.sha256(vault.manifest_path.read_bytes()).hexdigest() if vault.manifest_path.is_file() else None
    )
    deps = dependencies()
    versions = {d["name"].lower(): d["version"] for d in deps}
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "studio_version": __version__,
        "versions": {p: versions.get(p) for p in KEY_PACKAGES if versions.get(p)},
        "models_dir": str(settings.models_dir),
        "data_dir": str(settings.data_dir),
        "manifest_sha256": manifest_sha,
        "models": models,
        "offline": {
            "environment": {k: os.environ.get(k) for k in OFFLINE_ENV},
            "environment_ok": all(os.environ.get(k) == v for k, v in OFFLINE_ENV.items()),
            "server_bind": f"{DEFAULT_HOST} (other interfaces only with --listen and --auth)",
            "share_links": "off",
            "gradio_analytics": "off",
            "mcp_server": "off",
            "trust_remote_code": "never",
            "networked_command": "`vault provision` only",
        },
        "self_test": self_test,
        "dependencies": deps,
    }


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1000  # type: ignore[assignment]
    return str(n)


def to_markdown(r: dict[str, Any]) -> str:
    st = r.get("self_test")
    if st is None:
        verdict = "not run"
    elif st.get("ok"):
        verdict = (
            f"PASSED: rendered {st.get('frames')} frames with {st.get('model')} in {st.get('seconds')} s "
            "with every non-loopback connection blocked; 0 attempts"
        )
    else:
        verdict = (
            f"FAILED: {len(st.get('attempts') or [])} connection attempts: {st.get('attempts')} {st.get('error', '')}"
        )
    lines = [
        "# AIPROD Studio sovereignty report",
        "",
        f"- Date: {r['date']}",
        f"- Host: {r['host']} ({r['platform']})",
        f"- Studio {r['studio_version']}, Python {r['python']}, "
        + ", ".join(f"{k} {v}" for k, v in r["versions"].items()),
        f"- Vault: `{r['models_dir']}` (MANIFEST.json sha256 `{r['manifest_sha256'] or 'no manifest'}`)",
        f"- Data: `{r['data_dir']}`",
        "",
        "## Network self-test",
        "",
        verdict,
        "",
        "## Offline settings in force",
        "",
        "| setting | value |",
        "|---|---|",
    ]
    lines += [f"| `{k}` | `{v}` |" for k, v in r["offline"]["environment"].items()]
    lines += [f"| {k.replace('_', ' ')} | {v} |" for k, v in r["offline"].items() if k not in ("environment",)]
    lines += [
        "",
        "## Models",
        "",
        "| name | kind | source | license | size | digest | last check |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in r["models"]:
        derived = f"{m['quantization']} copy of {m['derived_from'][:30]}…" if m["derived_from"] else None
        source = m["source"] or derived or ("built by the studio" if m["test_model"] else "imported (no source)")
        check = m["last_check"] + (f" ({m['last_check_mode']}, {m['last_check_time']})" if m["last_check_time"] else "")
        lines.append(
            f"| {m['name']} | {m['kind']}/{m['family']} | {source} | {m['license']} | {_size(m['size'])} | "
            f"`{m['digest'][:16]}` | {check} |"
        )
    if not r["models"]:
        lines.append("| (the vault is empty) | | | | | | |")
    lines += [
        "",
        f"## Dependencies ({len(r['dependencies'])} installed packages)",
        "",
        "| package | version | license |",
        "|---|---|---|",
    ]
    lines += [f"| {d['name']} | {d['version']} | {d['license'].replace('|', '/')} |" for d in r["dependencies"]]
    return "\n".join(lines) + "\n"
