"""LTX-2 model generations: told apart by their configs, each with its recommended defaults.

One pipeline class (`LTX2Pipeline`) runs three generations. Names lie (a folder can be
called anything), configs do not, so a generation is read from the pipeline's own files:

- **2.5**: a `duration_head` component, or a Gemma 4 text encoder;
- **2.3**: the transformer's prompt modulation (`cross_attn_mod`) or the bandwidth-extension
  vocoder (`LTX2VocoderWithBWE`);
- **2.0**: neither.

A distilled model has the same layout as its base; it is known from the entry's `variant`
(set from the catalog when provisioned, or by `--variant` when imported). `DEFAULTS` holds each
generation's recommended settings; they apply only where the user and the model entry set
nothing, and the recipe records every value used.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Version = Literal["2.0", "2.3", "2.5"]
VERSIONS: tuple[Version, ...] = ("2.0", "2.3", "2.5")
DISTILLED = "distilled"
VARIANTS = (DISTILLED,)

# The distilled schedule (8 steps, no classifier-free guidance), as diffusers 0.42.1 ships it in
# `diffusers.pipelines.ltx2.utils.DISTILLED_SIGMA_VALUES` (from Lightricks' reference pipelines).
DISTILLED_SIGMAS = [1.0, 0.99375, 0.9875, 0.98125, 0.975, 0.909375, 0.725, 0.421875]

# The guidance extras of the LTX-2 family (CFG per modality, spatio-temporal guidance (STG),
# modality-isolation guidance, rescale). Values from diffusers 0.42.1's `LTX2Pipeline.__call__`
# docstring and defaults, which follow Lightricks' `ltx-pipelines` (video CFG 3, audio CFG 7,
# STG 1, modality 3, rescale 0.7).
_GUIDED = {
    "audio_guidance_scale": 7.0,
    "stg_scale": 1.0,
    "audio_stg_scale": 1.0,
    "modality_scale": 3.0,
    "audio_modality_scale": 3.0,
    "guidance_rescale": 0.7,
    "audio_guidance_rescale": 0.7,
}
# A distilled model runs without any guidance pass (one transformer call per step).
_UNGUIDED = {"stg_scale": 0.0, "audio_stg_scale": 0.0, "modality_scale": 1.0, "audio_modality_scale": 1.0}

# Every generation's default clip: 768×512, 121 frames at 24 fps (5 s), the size diffusers' examples render.
_CLIP = {"width": 768, "height": 512, "num_frames": 121, "fps": 24}

DEFAULTS: dict[tuple[Version, bool], dict[str, Any]] = {
    # LTX-2.0 (Jan 2026): diffusers' LTX-2 documentation example renders 768×512, 121 frames at 24 fps,
    # 40 steps, guidance 4; STG at block 29 (docstring: "[29] is recommended for LTX-2.0"); the legacy
    # timestep for the cross-modal modulation (`use_cross_timestep=False`: "the legacy LTX-2.0 behavior").
    ("2.0", False): {
        **_CLIP,
        "steps": 40,
        "guidance": 4.0,
        "advanced": {**_GUIDED, "spatio_temporal_guidance_blocks": [29], "use_cross_timestep": False},
    },
    # LTX-2.0 distilled (ltx-2-19b-distilled): the distilled schedule, as for 2.3 distilled below.
    ("2.0", True): {
        **_CLIP,
        "steps": 8,
        "guidance": 1.0,
        "advanced": {**_UNGUIDED, "sigmas": DISTILLED_SIGMAS, "use_cross_timestep": False},
    },
    # LTX-2.3 (Mar 2026): the pipeline's defaults, written for it (30 steps, video guidance 3, audio 7,
    # STG 1 at block 28: "[28] is recommended for LTX-2.3"; the cross-modal timestep on).
    ("2.3", False): {
        **_CLIP,
        "steps": 30,
        "guidance": 3.0,
        "advanced": {**_GUIDED, "spatio_temporal_guidance_blocks": [28], "use_cross_timestep": True},
    },
    # LTX-2.3 distilled: 8 steps on the distilled sigmas, guidance 1 (model card of
    # diffusers/LTX-2.3-Distilled-Diffusers; diffusers' HDR example runs it with these sigmas).
    ("2.3", True): {
        **_CLIP,
        "steps": 8,
        "guidance": 1.0,
        "advanced": {**_UNGUIDED, "sigmas": DISTILLED_SIGMAS, "use_cross_timestep": True},
    },
    # LTX-2.5 (Aug 2026): the same pipeline defaults as 2.3 (its docstring gives no other values);
    # the duration head may pick the frame count (`auto_duration`).
    ("2.5", False): {
        **_CLIP,
        "steps": 30,
        "guidance": 3.0,
        "advanced": {**_GUIDED, "spatio_temporal_guidance_blocks": [28], "use_cross_timestep": True},
    },
    ("2.5", True): {
        **_CLIP,
        "steps": 8,
        "guidance": 1.0,
        "advanced": {**_UNGUIDED, "sigmas": DISTILLED_SIGMAS, "use_cross_timestep": True},
    },
}

# What each generation offers beyond a plain text-to-video render.
FEATURES: dict[Version, tuple[str, ...]] = {
    "2.0": (),
    "2.3": (),
    "2.5": ("auto_duration", "quality_decode", "prompt_enhancer"),
}


@dataclass(frozen=True)
class Generation:
    """What a pipeline folder is: its LTX-2 generation, whether distilled, and why we think so."""

    version: Version
    distilled: bool = False
    evidence: tuple[str, ...] = ()
    components: tuple[str, ...] = field(default=())  # the optional parts present (duration_head, …)

    @property
    def label(self) -> str:
        return f"LTX-{self.version}{' distilled' if self.distilled else ''}"

    @property
    def tag(self) -> str:
        """How a recipe records it: `2.3`, `2.3-distilled`."""
        return f"{self.version}{'-distilled' if self.distilled else ''}"

    @property
    def defaults(self) -> dict[str, Any]:
        table = DEFAULTS[(self.version, self.distilled)]
        return {**table, "advanced": dict(table["advanced"])}

    def offers(self, feature: str) -> bool:
        """True when this model can do `feature` (auto_duration, quality_decode, prompt_enhancer)."""
        if feature == "auto_duration":
            return "duration_head" in self.components
        if feature == "quality_decode":
            return "diffusion_decoder" in self.components
        if feature == "prompt_enhancer":
            return "prompt_enhancer" in self.components
        return False

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "distilled": self.distilled,
            "label": self.label,
            "evidence": list(self.evidence),
            "components": list(self.components),
        }


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _class_of(index: dict[str, Any], component: str) -> str | None:
    """The class `model_index.json` gives a component (`["library", "Class"]`), if it is present."""
    value = index.get(component)
    if isinstance(value, list) and len(value) == 2 and value[1]:
        return str(value[1])
    return None


def detect(folder: Path, variant: str | None = None) -> Generation | None:
    """The LTX-2 generation of the diffusers pipeline in `folder`, from its configs; None when it
    is not an `LTX2Pipeline` (LTX-Video, or no pipeline at all)."""
    folder = Path(folder)
    index = _read(folder / "model_index.json")
    if index.get("_class_name") != "LTX2Pipeline":
        return None
    transformer = _read(folder / "transformer" / "config.json")
    text_encoder = _read(folder / "text_encoder" / "config.json")
    vocoder = _class_of(index, "vocoder") or str(_read(folder / "vocoder" / "config.json").get("_class_name", ""))
    encoder_class = _class_of(index, "text_encoder") or ""
    encoder_type = str(text_encoder.get("model_type", ""))
    components = [c for c in ("duration_head", "prompt_enhancer") if _class_of(index, c)]
    if (folder / "diffusion_decoder" / "config.json").is_file():
        components.append("diffusion_decoder")

    evidence: list[str] = []
    version: Version = "2.0"
    if "duration_head" in components:
        evidence.append("a duration_head component")
    if "gemma4" in encoder_class.lower() or encoder_type.startswith("gemma4"):
        evidence.append(f"a Gemma 4 text encoder ({encoder_class or encoder_type})")
    if evidence:
        version = "2.5"
    else:
        if transformer.get("cross_attn_mod") or transformer.get("audio_cross_attn_mod"):
            evidence.append("transformer cross_attn_mod (prompt modulation)")
        if vocoder == "LTX2VocoderWithBWE":
            evidence.append("the bandwidth-extension vocoder (LTX2VocoderWithBWE)")
        version = "2.3" if evidence else "2.0"
        if not evidence:
            evidence.append("no 2.3/2.5 component (Gemma 3 text encoder, plain vocoder)")
    return Generation(version, variant == DISTILLED, tuple(evidence), tuple(components))


def check_features(generation: Generation | None, model: str, auto_duration: bool, decoder: str) -> None:
    """Refuse, by field, a render asking for what this model does not have."""
    from aiprod_studio.errors import BadInput

    label = generation.label if generation else "not an LTX-2 model"
    if auto_duration and not (generation and generation.offers("auto_duration")):
        raise BadInput(
            f"auto_duration needs a model with a duration head (LTX-2.5); model {model!r} ({label}) has none: "
            "set the number of frames instead",
            field="auto_duration",
        )
    if decoder == "diffusion" and not (generation and generation.offers("quality_decode")):
        raise BadInput(
            f"decoder 'diffusion' (quality decode) needs a model with a diffusion decoder (LTX-2.5's "
            f"diffusion_decoder folder); model {model!r} ({label}) has none: use decoder 'vae'",
            field="decoder",
        )
