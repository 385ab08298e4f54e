"""The studio's own tiny CLIP, built offline: the semantic QA's load and score path without a download.

It is an open_clip ViT CLIP with random weights, saved in the layout open_clip's hub
checkpoints use (`open_clip_config.json` + `open_clip_model.safetensors`), so a real CLIP
provisioned into the vault loads through exactly the same code. The text tower keeps the
full 49,408-token vocabulary of open_clip's bundled BPE tokenizer (which is what makes it
about 7 MB); everything else is as small as the architecture allows. Its scores are
numbers with no meaning, but they are finite, deterministic and differ with the input.
Two builds give byte-identical files (seeded, nothing timed).
"""

from __future__ import annotations

import json
import logging
import shutil
from typing import Any

from aiprod_studio.vault.manifest import KIND_DIRS, Entry
from aiprod_studio.vault.store import Vault
from engine.qa.semantic import CONFIG_FILE, FAMILY, WEIGHTS_FILE

log = logging.getLogger(__name__)

TINY_CLIP_NAME = "aiprod-tiny-clip"

# The model and preprocessing config, in the layout of open_clip's hub `open_clip_config.json`.
TINY_CLIP_CONFIG: dict[str, Any] = {
    "model_cfg": {
        "embed_dim": 32,
        "quick_gelu": True,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": 16, "patch_size": 8},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
    },
    "preprocess_cfg": {
        "mean": [0.48145466, 0.4578275, 0.40821073],
        "std": [0.26862954, 0.26130258, 0.27577711],
        "interpolation": "bicubic",
        "resize_mode": "shortest",
    },
}


def make_tiny_clip(vault: Vault, name: str = TINY_CLIP_NAME, seed: int = 0) -> Entry:
    """Build the tiny CLIP into the vault (`qa/<name>`) and record it as a `qa` entry."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    # 1. The model, from its config alone (random weights, seeded).
    model_cfg = json.loads(json.dumps(TINY_CLIP_CONFIG["model_cfg"]))  # a copy open_clip may not change ours through
    torch.manual_seed(seed)
    model = open_clip.CLIP(**model_cfg).eval()
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}

    # 2. Both files into a hidden folder beside the target, then renamed into place.
    rel = f"{KIND_DIRS['qa']}/{name}"
    target = vault.root / rel
    tmp = target.with_name(f".{name}.building")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        (tmp / CONFIG_FILE).write_text(json.dumps(TINY_CLIP_CONFIG, indent=2) + "\n", encoding="utf-8")
        save_file(tensors, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("built tiny CLIP %s in %s", name, target)
    return vault.record(
        name,
        "qa",
        FAMILY,
        rel,
        license="Apache-2.0",
        test_model=True,
        description="AIPROD tiny random CLIP (open_clip layout, built offline): exercises the semantic QA "
        "path; its scores carry no meaning.",
    )
