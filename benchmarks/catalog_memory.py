"""The catalogue's memory needs (`min_memory_gb` in models/catalog.json), from the studio's memory model.

For every catalogue entry with a `generation`, each hardware profile (presets/*.toml) is put
through the same estimate the studio checks before a render (`engine.budget.estimate`):

- the model: the generation's published facts (`engine.budget.facts.PUBLISHED`: layer counts,
  widths and weights of the published configs; which of them are counted and which estimated is
  written there);
- the render: the generation's default render (`aiprod_studio.generations.DEFAULTS`: 768×512,
  121 frames at 24 fps, with its guidance; a distilled variant runs without guidance, so one
  transformer pass a step instead of two);
- the settings: the profile's quantization, offload and VAE tiling, in bfloat16 on a GPU and
  float32 on the CPU (the studio's dtypes).

A profile's need is the least GPU memory (with the CUDA context) and RAM that render asks for
with that profile's settings, in GiB (2^30 bytes, as the studio's messages count), rounded up
to a tenth. A CPU profile needs RAM only. `tests/test_vault_catalog.py` checks that the
catalogue holds exactly these numbers, so a change to the memory model or to the facts shows
up there until the catalogue is rewritten with `--write`.

Run: .venv/bin/python benchmarks/catalog_memory.py [--json] [--write]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiprod_studio.generations import DEFAULTS, DISTILLED  # noqa: E402
from aiprod_studio.presets import hardware_profiles  # noqa: E402
from engine.budget.estimate import GiB, Job, estimate  # noqa: E402
from engine.budget.facts import PUBLISHED  # noqa: E402

CATALOG = ROOT / "models" / "catalog.json"
PROFILE_KEYS = ("quantization", "offload", "vae_tiling")
DTYPE_BYTES = {"cuda": 2, "cpu": 4}  # bfloat16 on a GPU, float32 on the CPU (engine/device/plan.py)


def gib_up(nbytes: float) -> float:
    """Bytes as GiB, rounded up to a tenth (a minimum must not be rounded down)."""
    return math.ceil(round(nbytes / GiB * 10, 6)) / 10


def default_job(generation: str, variant: str | None) -> Job:
    """The generation's default render, as the studio fills it in when the user sets nothing."""
    d = DEFAULTS[(generation, variant == DISTILLED)]  # type: ignore[index]
    return Job(width=d["width"], height=d["height"], num_frames=d["num_frames"], fps=d["fps"], guidance=d["guidance"])


def needs(generation: str, variant: str | None = None) -> dict[str, dict[str, float]]:
    """{profile id: {"gpu": GiB, "ram": GiB}} for the generation's default render (CPU profiles: ram only)."""
    facts = PUBLISHED[generation]()
    base = default_job(generation, variant)
    out: dict[str, dict[str, float]] = {}
    for device in ("cuda", "cpu"):
        for profile in hardware_profiles(device):
            settings = {k: v for k, v in profile.settings.items() if k in PROFILE_KEYS}
            job = dataclasses.replace(base, **settings)
            est = estimate(facts, job, device == "cuda", DTYPE_BYTES[device])
            out[profile.id] = (
                {"gpu": gib_up(est.device_bytes), "ram": gib_up(est.host_bytes)}
                if device == "cuda"
                else {"ram": gib_up(est.host_bytes)}
            )
    return out


def catalog_needs(catalog: dict[str, Any]) -> dict[str, dict[str, dict[str, float]]]:
    """The needs of every catalogue entry that names a generation, by entry name."""
    return {
        m["name"]: needs(m["generation"], m.get("variant"))
        for m in catalog.get("models", [])
        if m.get("generation") in PUBLISHED
    }


def dump(obj: Any, indent: int = 0) -> str:
    """JSON with short lists and objects kept on one line (the catalogue's layout)."""
    flat = json.dumps(obj, ensure_ascii=False)
    if not isinstance(obj, (dict, list)) or len(flat) + indent <= 110:
        return flat
    pad, inner = " " * indent, " " * (indent + 2)
    if isinstance(obj, list):
        return "[\n" + ",\n".join(inner + dump(v, indent + 2) for v in obj) + "\n" + pad + "]"
    items = (f"{inner}{json.dumps(k)}: {dump(v, indent + 2)}" for k, v in obj.items())
    return "{\n" + ",\n".join(items) + "\n" + pad + "}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--json", action="store_true", help="print the needs as one JSON object")
    parser.add_argument("--write", action="store_true", help="write them into models/catalog.json")
    args = parser.parse_args(argv)
    catalog = json.loads(CATALOG.read_text(encoding="utf-8"))
    found = catalog_needs(catalog)
    if args.write:
        for m in catalog["models"]:
            if m["name"] in found:
                m["min_memory_gb"] = found[m["name"]]
        CATALOG.write_text(dump(catalog) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(found))
        return 0
    profiles = list(next(iter(found.values()), {}))
    print(f"{'model':<20}" + "".join(f"{p:>18}" for p in profiles))
    for name, need in found.items():
        cells = (
            f"{need[p]['gpu']:>6.1f} GPU {need[p]['ram']:>5.1f} RAM"
            if "gpu" in need[p]
            else f"{need[p]['ram']:>10.1f} RAM"
            for p in profiles
        )
        print(f"{name:<20}" + "".join(f"{c:>18}" for c in cells))
    print("GiB; the default render of each generation (768×512×121), the profile's settings, the published facts")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
