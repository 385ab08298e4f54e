"""Semantic QA: how well a clip's frames match its prompt, scored by a local open_clip CLIP.

A `qa` vault entry of family `open_clip` is a folder in the layout of open_clip's hub
checkpoints: `open_clip_config.json` (`{"model_cfg": {embed_dim, vision_cfg, text_cfg},
"preprocess_cfg": {...}}`) and `open_clip_model.safetensors`. It is loaded without open_clip's
hub code: the entry passes the vault's check first, the model is built from `model_cfg` with
open_clip's own classes, the state dict comes from the safetensors file through
`open_clip.load_checkpoint`, and the tokenizer is open_clip's `SimpleTokenizer` (its BPE
vocabulary ships inside the package) — or, where the config names a Hugging Face tokenizer,
that tokenizer's files from the entry's own folder, never from the hub. Preprocessing
(resize, centre crop or pad, normalise, as `preprocess_cfg` says) is done with torch on
uint8 frames.

Scores are cosines of L2-normalised embeddings, in [-1, 1]: `prompt_mean` / `prompt_min`
between the prompt and evenly sampled frames (first and last included), `temporal` between
consecutive sampled frames. Scoring runs in eval mode under `torch.no_grad` in float32, so
the same frames and prompt give the same numbers.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aiprod_studio.errors import BadInput, IntegrityError
from aiprod_studio.vault.manifest import Entry
from aiprod_studio.vault.store import Vault

log = logging.getLogger(__name__)

FAMILY = "open_clip"
CONFIG_FILE = "open_clip_config.json"
WEIGHTS_FILE = "open_clip_model.safetensors"
HF_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
BATCH = 16  # frames embedded at once
DIGITS = 6  # scores are rounded to this many decimals


class ClipScorer:
    """A loaded CLIP (eval mode, float32) with its tokenizer and preprocessing, for one vault entry."""

    def __init__(self, entry: Entry, model: Any, tokenizer: Any, preprocess_cfg: dict[str, Any]) -> None:
        self.entry = entry
        self.model = model
        self.tokenizer = tokenizer
        self.preprocess_cfg = preprocess_cfg
        self.device = next(model.parameters()).device

    # -- embeddings ------------------------------------------------------------------------
    def preprocess(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 frames (F, H, W, 3) → the model's normalised input (F, 3, size, size), float32."""
        cfg = self.preprocess_cfg
        size = cfg["size"]
        th, tw = (size, size) if isinstance(size, int) else (int(size[-2]), int(size[-1]))
        x = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device).permute(0, 3, 1, 2).float() / 255.0
        h, w = x.shape[-2:]
        mode = "bilinear" if cfg["interpolation"] == "bilinear" else "bicubic"
        # 1. Resize: the short side to the target (then crop), the long side (then pad), or both (squash).
        if cfg["resize_mode"] == "squash":
            new = (th, tw)
        elif cfg["resize_mode"] == "shortest":
            scale = max(th / h, tw / w)
            new = (max(th, int(h * scale)), max(tw, int(w * scale)))
        else:  # longest
            scale = min(th / h, tw / w)
            new = (min(th, max(1, round(h * scale))), min(tw, max(1, round(w * scale))))
        if new != (h, w):
            x = torch.nn.functional.interpolate(x, size=new, mode=mode, antialias=True, align_corners=False)
            x = x.clamp(0.0, 1.0)  # bicubic overshoots; an 8-bit image would be clipped the same way
        # 2. Centre crop (shortest) or centre pad with the fill colour (longest).
        if cfg["resize_mode"] == "shortest":
            top, left = int(round((new[0] - th) / 2.0)), int(round((new[1] - tw) / 2.0))
            x = x[..., top : top + th, left : left + tw]
        elif cfg["resize_mode"] == "longest":
            padded = torch.full((x.shape[0], 3, th, tw), cfg["fill_color"] / 255.0, device=self.device)
            top, left = (th - new[0]) // 2, (tw - new[1]) // 2
            padded[..., top : top + new[0], left : left + new[1]] = x
            x = padded
        # 3. Normalise.
        mean = torch.tensor(_triple(cfg["mean"]), device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(_triple(cfg["std"]), device=self.device).view(1, 3, 1, 1)
        return (x - mean) / std

    def embed_frames(self, frames: np.ndarray) -> torch.Tensor:
        """L2-normalised image embeddings (F, D) of uint8 frames."""
        with torch.no_grad():  # (frame by frame into the model's size: a batch of full frames can be large)
            pixels = torch.cat([self.preprocess(frames[i : i + 1]) for i in range(len(frames))])
            chunks = [
                self.model.encode_image(pixels[i : i + BATCH], normalize=True) for i in range(0, len(pixels), BATCH)
            ]
        return torch.cat(chunks).float()

    def embed_text(self, prompt: str) -> torch.Tensor:
        """The L2-normalised text embedding (D,) of a prompt."""
        with torch.no_grad():
            tokens = self.tokenizer([prompt]).to(self.device)
            text: torch.Tensor = self.model.encode_text(tokens, normalize=True)[0]
        return text.float()

    # -- scores ----------------------------------------------------------------------------
    def score(self, frames: np.ndarray | SampledFrames, prompt: str, samples: int = 8) -> dict[str, Any]:
        """Prompt-frame and frame-frame cosines over `samples` evenly spaced frames (first and last included)."""
        frames = frames if isinstance(frames, SampledFrames) else check_frames(frames)
        prompt = check_prompt(prompt)
        picked = sample_indices(len(frames), check_samples(samples))
        return self._score(frames[picked], prompt)

    def score_shots(
        self, frames: np.ndarray | SampledFrames, fps: float, shots: Sequence[Mapping[str, Any]], samples: int = 8
    ) -> list[dict[str, Any]]:
        """Each shot of a film scored against its own prompt over its frames [start_frame, end_frame).

        Every dict has `score`'s keys plus `shot` (1-based), `start_frame`, `end_frame`,
        `start_s` and `end_s`.
        """
        frames = frames if isinstance(frames, SampledFrames) else check_frames(frames)
        samples = check_samples(samples)
        if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not fps > 0:
            raise BadInput(f"fps must be a number more than 0, got {fps!r}", field="fps")
        if not isinstance(shots, (list, tuple)) or not shots:
            raise BadInput(f"shots must be a non-empty list, got {shots!r}", field="shots")
        out = []
        for n, shot in enumerate(shots, start=1):
            if not isinstance(shot, Mapping):
                raise BadInput(
                    f"shot {n} must be a dict with prompt, start_frame, end_frame; got {shot!r}", field="shots"
                )
            start, end = shot.get("start_frame"), shot.get("end_frame")
            if (
                not isinstance(start, int)
                or not isinstance(end, int)
                or isinstance(start, bool)
                or isinstance(end, bool)
            ):
                raise BadInput(
                    f"shot {n}: start_frame and end_frame must be whole numbers, got {start!r}, {end!r}", field="shots"
                )
            if not 0 <= start < end <= len(frames):
                raise BadInput(
                    f"shot {n}: frames [{start}, {end}) are not within the film's {len(frames)} frames", field="shots"
                )
            prompt = check_prompt(shot.get("prompt"), field=f"shot {n}: prompt")
            picked = start + sample_indices(end - start, samples)
            place = {"shot": n, "prompt": prompt, "start_frame": start, "end_frame": end}
            place |= {"start_s": start / fps, "end_s": end / fps}
            out.append(self._score(frames[picked], prompt) | place)
        return out

    def _score(self, picked: np.ndarray, prompt: str) -> dict[str, Any]:
        images = self.embed_frames(picked)
        text = self.embed_text(prompt)
        with torch.no_grad():
            sims = (images @ text).clamp(-1.0, 1.0)
            temporal = (images[1:] * images[:-1]).sum(-1).clamp(-1.0, 1.0).mean() if len(images) > 1 else None
        values = [sims.mean(), sims.min()] + ([temporal] if temporal is not None else [])
        if not all(torch.isfinite(v) for v in values):  # a broken model, not a bad clip
            raise IntegrityError(f"QA model {self.entry.name!r} gave non-finite scores; check its weights")
        return {
            "model": self.entry.name,
            "model_digest": self.entry.digest,
            "frames_scored": len(picked),
            "prompt_mean": round(float(sims.mean()), DIGITS),
            "prompt_min": round(float(sims.min()), DIGITS),
            "temporal": None if temporal is None else round(float(temporal), DIGITS),
        }


class SampledFrames:
    """A file's frames where they will be sampled, decoded once: indexes like the whole clip's
    (F, H, W, 3) array but holds only those frames, so a long film is scored in little memory."""

    def __init__(self, count: int, frames: Mapping[int, np.ndarray]):
        self.count, self.frames = count, frames

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, indices: np.ndarray) -> np.ndarray:
        return np.stack([self.frames[int(i)] for i in indices])


def _triple(value: Any) -> tuple[float, float, float]:
    return tuple(float(v) for v in value) if isinstance(value, (list, tuple)) else (float(value),) * 3  # type: ignore[return-value]


def check_frames(frames: Any) -> np.ndarray:
    """Frames must be a uint8 array (F, H, W, 3) with at least one frame."""
    if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        got = f"{frames.dtype} {frames.shape}" if isinstance(frames, np.ndarray) else type(frames).__name__
        raise BadInput(f"frames must be a uint8 array (F, H, W, 3), got {got}", field="frames")
    if min(frames.shape[:3]) < 1:
        raise BadInput(f"frames must hold at least one non-empty frame, got shape {frames.shape}", field="frames")
    return frames


def check_prompt(prompt: Any, field: str = "prompt") -> str:
    if not isinstance(prompt, str) or not prompt.strip():
        raise BadInput(f"{field} must be a non-empty text, got {prompt!r}", field="prompt")
    return prompt.strip()


def check_samples(samples: Any) -> int:
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise BadInput(f"samples must be a whole number of at least 1, got {samples!r}", field="samples")
    return samples


def sample_indices(count: int, samples: int) -> np.ndarray:
    """Up to `samples` evenly spaced indices into `count` frames, the first and the last included (samples ≥ 2)."""
    n = min(samples, count)
    return np.unique(np.floor(np.linspace(0, count - 1, n) + 0.5).astype(np.int64))


def best_entry(vault: Vault) -> Entry | None:
    """The vault's open_clip `qa` entry to score with: a real model before a test one (manifest order among equals)."""
    found = [e for e in vault.entries("qa") if e.family == FAMILY]
    return sorted(found, key=lambda e: e.test_model)[0] if found else None


def load_scorer(vault: Vault, name: str | None = None, device: str | torch.device = "cpu") -> ClipScorer | None:
    """The CLIP scorer of the vault's `qa` entry `name` (or the best one: a real model before a test one).

    Returns None when no name is given and the vault has no open_clip `qa` entry. The entry
    passes the vault's integrity check before any of its files is read; nothing is looked up
    on the hub.
    """
    import open_clip
    from open_clip.tokenizer import HFTokenizer, SimpleTokenizer
    from open_clip.transform import PreprocessCfg, merge_preprocess_dict

    # 1. The entry: the named one (which must be an open_clip qa model), or the best one there is.
    if name is None:
        best = best_entry(vault)
        if best is None:
            return None
        entry = best
    else:
        entry = vault.get(name, kind="qa", field="qa_model")
        if entry.family != FAMILY:
            raise BadInput(
                f"qa_model {name!r} has family {entry.family!r}; semantic QA loads {FAMILY!r} models "
                f"({CONFIG_FILE} + {WEIGHTS_FILE})",
                field="qa_model",
            )

    # 2. Its files must match the manifest before any is read, and be the two open_clip files.
    vault.require_ok(entry)
    folder = vault.entry_dir(entry)
    missing = [f for f in (CONFIG_FILE, WEIGHTS_FILE) if f not in entry.files]
    if missing:
        raise IntegrityError(f"vault entry {entry.name!r} has no {' or '.join(missing)} in {folder}")
    try:
        config = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    except ValueError as exc:
        raise IntegrityError(f"{folder / CONFIG_FILE}: unreadable open_clip config: {exc}") from None
    model_cfg = copy.deepcopy(config.get("model_cfg")) if isinstance(config, dict) else None
    if not isinstance(model_cfg, dict) or not {"embed_dim", "vision_cfg", "text_cfg"} <= model_cfg.keys():
        raise IntegrityError(f"{folder / CONFIG_FILE}: needs a model_cfg with embed_dim, vision_cfg and text_cfg")
    text_cfg, vision_cfg = model_cfg["text_cfg"], model_cfg["vision_cfg"]

    # 3. Refuse what open_clip would fetch from the hub: a Hugging Face text tower, or an HF
    #    tokenizer whose files are not in the folder. A timm image tower is built without weights.
    if text_cfg.get("hf_model_name"):
        raise BadInput(
            f"qa_model {entry.name!r}: its text tower is the Hugging Face model {text_cfg['hf_model_name']!r}, "
            "which open_clip builds from the hub; semantic QA loads models with open_clip's own text tower",
            field="qa_model",
        )
    if vision_cfg.get("timm_model_name"):
        vision_cfg["timm_model_pretrained"] = False
    context_length = int(text_cfg.get("context_length", 77))
    tokenizer_kwargs = dict(text_cfg.get("tokenizer_kwargs") or {})
    hf_tokenizer = text_cfg.get("hf_tokenizer_name")
    if hf_tokenizer:
        if not any(f in entry.files for f in HF_TOKENIZER_FILES):
            raise BadInput(
                f"qa_model {entry.name!r} names the Hugging Face tokenizer {hf_tokenizer!r}, but its files "
                f"({' / '.join(HF_TOKENIZER_FILES)}) are not in {folder}; provision them with the model "
                "(the studio never downloads at run time)",
                field="qa_model",
            )
        tokenizer = HFTokenizer(
            str(folder),
            context_length=context_length,
            tokenizer_mode=text_cfg.get("tokenizer_mode"),
            local_files_only=True,
            **tokenizer_kwargs,
        )
    else:
        tokenizer = SimpleTokenizer(context_length=context_length, **tokenizer_kwargs)
        vocab = int(text_cfg.get("vocab_size", 49408))
        if vocab < tokenizer.vocab_size:
            raise IntegrityError(
                f"{folder / CONFIG_FILE}: text vocab_size {vocab} is smaller than open_clip's BPE tokenizer "
                f"({tokenizer.vocab_size} tokens) and no hf_tokenizer_name is given"
            )

    # 4. The model from its config with open_clip's classes (as open_clip's factory picks them),
    #    its weights from the safetensors file, in float32 and eval mode.
    custom_text = model_cfg.pop("custom_text", False)
    if custom_text:
        model_class = open_clip.CoCa if "multimodal_cfg" in model_cfg else open_clip.CustomTextCLIP
    else:
        model_class = open_clip.CLIP
    try:
        model = model_class(**model_cfg)
    except (TypeError, ValueError, KeyError) as exc:
        raise IntegrityError(f"{folder / CONFIG_FILE}: open_clip cannot build this model_cfg: {exc}") from None
    try:
        open_clip.load_checkpoint(model, str(folder / WEIGHTS_FILE), strict=True, weights_only=True)
    except RuntimeError as exc:
        raise IntegrityError(f"{folder / WEIGHTS_FILE}: the weights do not fit {CONFIG_FILE}: {exc}") from None
    model = model.to(device=torch.device(device), dtype=torch.float32).eval()

    # 5. Preprocessing: open_clip's defaults under the entry's preprocess_cfg, at the model's image size.
    preprocess_cfg = merge_preprocess_dict(PreprocessCfg(), config.get("preprocess_cfg") or {})
    preprocess_cfg["size"] = getattr(model.visual, "image_size", preprocess_cfg["size"])
    if isinstance(preprocess_cfg["size"], (list, tuple)) and len(preprocess_cfg["size"]) == 1:
        preprocess_cfg["size"] = int(preprocess_cfg["size"][0])
    if preprocess_cfg["resize_mode"] not in ("shortest", "longest", "squash"):
        raise IntegrityError(f"{folder / CONFIG_FILE}: unknown resize_mode {preprocess_cfg['resize_mode']!r}")
    if preprocess_cfg["interpolation"] not in ("bicubic", "bilinear", "random"):
        raise IntegrityError(f"{folder / CONFIG_FILE}: unknown interpolation {preprocess_cfg['interpolation']!r}")
    log.info("semantic QA: loaded %s (%s) on %s", entry.name, entry.digest[:12], device)
    return ClipScorer(entry, model, tokenizer, preprocess_cfg)


def score_file(
    scorer: ClipScorer, path: Path | str, prompt: str | None = None, samples: int = 8, count: int | None = None
) -> dict[str, Any]:
    """Score an MP4 against `prompt`, or against the prompt of the recipe it carries.

    A film (no recipe, a storyboard and one chapter per shot) is scored shot by shot:
    `{"file", "model", "model_digest", "shots": [...]}` as `ClipScorer.score_shots` gives them.
    A clip gives `ClipScorer.score`'s dict with `file` added.
    """
    from engine.render import media

    path = Path(path)
    if not path.is_file():
        raise BadInput(f"file {str(path)!r} does not exist", field="file")
    samples = check_samples(samples)
    count = count if count is not None else media.count_frames(path)  # (a caller that decoded it knows)
    if count == 0:
        raise BadInput(f"file {str(path)!r} has no video frames", field="file")
    if prompt is None:
        recipe = media.read_metadata_json(path)
        prompt = recipe.get("prompt") if recipe else None
    if prompt is not None:
        frames = SampledFrames(count, media.read_frames_at(path, sample_indices(count, samples)))
        return scorer.score(frames, prompt, samples) | {"file": str(path)}
    record = media.read_metadata_json(path, media.STORYBOARD_TAG)
    chapters = media.read_chapters(path)
    if record and isinstance(record.get("shots"), list) and record.get("fps") and len(chapters) == len(record["shots"]):
        fps = record["fps"]
        shots = [
            {
                "prompt": shot.get("prompt") if isinstance(shot, Mapping) else None,
                "start_frame": min(round(c["start_s"] * fps), count - 1),
                "end_frame": min(round(c["end_s"] * fps), count),
            }
            for shot, c in zip(record["shots"], chapters, strict=True)
        ]
        wanted = [
            s["start_frame"] + sample_indices(s["end_frame"] - s["start_frame"], samples)
            for s in shots
            if s["end_frame"] > s["start_frame"]
        ]
        frames = SampledFrames(count, media.read_frames_at(path, np.concatenate(wanted) if wanted else []))
        scored = scorer.score_shots(frames, fps, shots, samples)
        return {"file": str(path), "model": scorer.entry.name, "model_digest": scorer.entry.digest, "shots": scored}
    raise BadInput(
        f"file {str(path)!r} carries no AIPROD recipe or storyboard to take a prompt from; give the prompt",
        field="prompt",
    )
