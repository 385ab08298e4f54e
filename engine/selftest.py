"""The network self-test of the sovereignty report: a real render under the socket guard.

It builds the studio's tiny model in a temporary vault (the user's vault is not touched
and no real model needs loading), renders a clip with sound to a temporary MP4, and
counts every connection to a non-loopback address the whole way (imports, loading,
denoising, encoding). Any attempt fails the test.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from aiprod_studio import offline
from aiprod_studio.settings import load_settings
from aiprod_studio.vault.store import Vault


def network_self_test() -> dict[str, Any]:
    attempts: list = []
    started = time.perf_counter()
    result: dict[str, Any] = {"ok": False, "attempts": attempts, "model": None, "frames": 0}
    with tempfile.TemporaryDirectory(prefix="aiprod-selftest-") as tmp, offline.no_network(attempts):
        try:
            from engine.models.tiny import make_tiny
            from engine.render import media
            from engine.studio import Studio

            entry = make_tiny(Vault(Path(tmp) / "models"))
            studio = Studio(load_settings(models_dir=Path(tmp) / "models", data_dir=Path(tmp) / "data", device="cpu"))
            try:
                recipe = studio.build_recipe({"prompt": "network self test", "model": entry.name, "steps": 2})
                row = studio.render(recipe, out_path=Path(tmp) / "selftest.mp4")
                info = media.probe(row["output_path"])
            finally:
                studio.close()
            result.update(model=entry.name, frames=info["video"]["frames"], audio=info.get("audio") is not None)
        except Exception as exc:  # noqa: BLE001 - the report records the failure, whatever it was
            result["error"] = f"{type(exc).__name__}: {exc}"
    result["attempts"] = [repr(a) for a in attempts]
    result["ok"] = not attempts and "error" not in result
    result["seconds"] = round(time.perf_counter() - started, 2)
    return result
