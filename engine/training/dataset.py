"""LoRA training data: find, check, bucket and load the creator's clips and captions.

A dataset is a folder of videos/images with same-name `.txt` captions, or a folder with a
`dataset.jsonl` / `dataset.csv` (`media`, `caption`). `validate` reports every problem at
once (missing or empty caption, unreadable media, a clip shorter than the bucket, mixed
sizes) and never touches the user's files; a clip that is too short is dropped together
with its caption, so captions can never shift onto the wrong clip. The trigger word is
added at encode time only. The canonical `dataset.jsonl` (path, caption, size, frames,
fps, sha256) is written into the run folder.
"""

from __future__ import annotations

import csv
import hashlib
import json
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch

from aiprod_studio.errors import BadInput
from aiprod_studio.vault.manifest import sha256_file

VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}


@dataclass
class Item:
    path: str
    caption: str
    width: int = 0
    height: int = 0
    frames: int = 0
    fps: float = 0.0
    sha256: str = ""


@dataclass
class Finding:
    media: str
    problem: str  # missing caption | empty caption | unreadable media | too short | missing media | mixed sizes
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.media}: {self.problem}" + (f" ({self.detail})" if self.detail else "")


@dataclass
class DatasetReport:
    folder: str
    items: list[Item]  # usable, in a stable order
    findings: list[Finding] = field(default_factory=list)
    bucket: tuple[int, int, int] | None = None  # width, height, frames

    def to_json(self) -> dict[str, Any]:
        return {
            "folder": self.folder,
            "usable": len(self.items),
            "bucket": self.bucket,
            "findings": [asdict(f) for f in self.findings],
            "items": [asdict(i) for i in self.items],
        }


def _probe(path: Path) -> tuple[int, int, int, float]:
    """(width, height, frames, fps) by decoding; raises on an unreadable file."""
    if path.suffix.lower() in IMAGE_SUFFIXES:
        with av.open(str(path)) as c:
            frame = next(c.decode(video=0))
            return frame.width, frame.height, 1, 0.0
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        n = sum(1 for _ in c.decode(video=0))
        fps = float(stream.average_rate or 0)
        return stream.codec_context.width, stream.codec_context.height, n, fps


def _listed(folder: Path) -> list[tuple[Path, str | None]] | None:
    """(media, caption) rows of a dataset.jsonl / dataset.csv, or None when there is none."""
    jsonl, table = folder / "dataset.jsonl", folder / "dataset.csv"
    rows: list[dict[str, Any]] = []
    if jsonl.is_file():
        for n, line in enumerate(jsonl.read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise BadInput(f"dataset: {jsonl.name} line {n} is not JSON: {exc}", field="dataset") from None
    elif table.is_file():
        with open(table, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    else:
        return None
    out = []
    for n, row in enumerate(rows, start=1):
        if not isinstance(row, dict) or "media" not in row:
            raise BadInput(f"dataset: row {n} has no `media` column", field="dataset")
        out.append((folder / str(row["media"]), row.get("caption")))
    return out


def validate(folder: Path | str, bucket_frames: int | None = None) -> DatasetReport:
    """Every problem of a dataset at once, and the usable items (nothing is written)."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise BadInput(f"dataset {str(folder)!r} is not a folder", field="dataset")
    rows = _listed(root)
    if rows is None:
        media = sorted(p for p in root.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES | IMAGE_SUFFIXES)
        rows = []
        for p in media:
            txt = p.with_suffix(".txt")
            rows.append((p, txt.read_text(encoding="utf-8", errors="replace") if txt.is_file() else None))
    report = DatasetReport(str(root), [])
    for path, caption in rows:
        name = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
        if not path.is_file():
            report.findings.append(Finding(name, "missing media"))
            continue
        if caption is None:
            report.findings.append(Finding(name, "missing caption", f"add {path.with_suffix('.txt').name}"))
            continue
        if not caption.strip():
            report.findings.append(Finding(name, "empty caption"))
            continue
        try:
            w, h, n, fps = _probe(path)
        except Exception as exc:  # noqa: BLE001 - any decoder failure means unreadable
            report.findings.append(Finding(name, "unreadable media", f"{type(exc).__name__}: {exc}"[:200]))
            continue
        report.items.append(Item(name, " ".join(caption.split()), w, h, n, fps, sha256_file(path)))
    sizes = sorted({(i.width, i.height) for i in report.items})
    if len(sizes) > 1:
        report.findings.append(
            Finding(
                "(dataset)",
                "mixed sizes",
                ", ".join(f"{w}×{h}" for w, h in sizes) + ": each clip is resized and centre-cropped to the bucket",
            )
        )
    if bucket_frames:
        apply_bucket(report, bucket_frames)
    return report


def apply_bucket(report: DatasetReport, frames: int) -> DatasetReport:
    """Drop the clips shorter than the bucket (with their captions), each as a finding."""
    short = [i for i in report.items if 1 < i.frames < frames]
    for i in short:
        report.findings.append(
            Finding(i.path, "too short", f"{i.frames} frames, the bucket needs {frames}; dropped with its caption")
        )
    report.items = [i for i in report.items if i not in short]
    return report


def propose_bucket(items: list[Item], device_memory_gb: float | None) -> tuple[int, int, int]:
    """(width, height, frames): the data's median aspect, an area the device can train, 8k+1 frames."""
    if not items:
        raise BadInput("dataset: no usable items (see the findings)", field="dataset")
    aspect = statistics.median(i.width / i.height for i in items)
    area = (
        64 * 64
        if device_memory_gb is None
        else 320 * 192
        if device_memory_gb < 16
        else 512 * 320
        if device_memory_gb < 40
        else 768 * 512
    )
    h = max(32, round((area / aspect) ** 0.5 / 32) * 32)
    w = max(32, round(h * aspect / 32) * 32)
    w, h = (
        min(w, max(32, max(i.width for i in items) // 32 * 32)),
        min(h, max(32, max(i.height for i in items) // 32 * 32)),
    )
    clips = [i.frames for i in items if i.frames > 1]
    cap = 17 if device_memory_gb is None else 49 if device_memory_gb < 40 else 97
    frames = 1 if not clips else max(1, min(cap, (min(clips) - 1) // 8 * 8 + 1))
    return w, h, frames


def check(
    folder: Path | str, memory_gb: float | None, size: tuple[int | None, int | None, int | None] = (None, None, None)
) -> DatasetReport:
    """The one dataset check: validate the folder, propose a bucket for a device with `memory_gb`
    of memory (None: a CPU-sized bucket), keep the `size` the user chose over the proposal, and
    drop the clips shorter than the bucket. The report's `bucket` is None when nothing is usable."""
    report = validate(folder)
    if not report.items:
        return report
    proposed = propose_bucket(report.items, memory_gb)
    report.bucket = (size[0] or proposed[0], size[1] or proposed[1], size[2] or proposed[2])
    apply_bucket(report, report.bucket[2])
    return report


def require_items(report: DatasetReport) -> DatasetReport:
    """The report, or a BadInput naming every finding when no item is usable."""
    if not report.items or report.bucket is None:
        raise BadInput("dataset: no usable items: " + "; ".join(str(f) for f in report.findings), field="dataset")
    return report


def fingerprint(items: list[Item], bucket: tuple[int, int, int], trigger: str, model_digest: str) -> str:
    """What a cached latent / text embedding depends on: model, bucket, trigger, the items."""
    data = {
        "model": model_digest,
        "bucket": list(bucket),
        "trigger": trigger,
        "items": [[i.sha256, i.caption] for i in items],
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def latent_key(item: Item, bucket: tuple[int, int, int], model_digest: str) -> str:
    """What a cached latent depends on: the clip's bytes, the bucket, the model."""
    return hashlib.sha256(json.dumps(["latents", item.sha256, list(bucket), model_digest]).encode()).hexdigest()


def text_key(item: Item, trigger: str, model_digest: str) -> str:
    """What a cached text embedding depends on: the caption, the trigger, the model."""
    return hashlib.sha256(json.dumps(["text", item.caption, trigger, model_digest]).encode()).hexdigest()


def write_canonical(report: DatasetReport, run_dir: Path) -> Path:
    from aiprod_studio.files import atomic

    out = run_dir / "dataset.jsonl"
    atomic.write_text(out, "".join(json.dumps(asdict(i), sort_keys=True) + "\n" for i in report.items))
    return out


def caption_with_trigger(caption: str, trigger: str) -> str:
    return f"{trigger}, {caption}" if trigger and trigger.lower() not in caption.lower() else caption


def load_clip(root: Path, item: Item, bucket: tuple[int, int, int]) -> torch.Tensor:
    """[3, F, H, W] in [-1, 1]: the first F frames, resized keeping aspect, centre-cropped."""
    w, h, n = bucket
    with av.open(str(root / item.path)) as c:
        frames = []
        for frame in c.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == n:
                break
    if len(frames) < n:
        frames += [frames[-1]] * (n - len(frames)) if n == 1 or len(frames) == 1 else []
    if len(frames) < n:
        raise BadInput(f"dataset: {item.path} has {len(frames)} frames, the bucket needs {n}", field="dataset")
    x = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 127.5 - 1.0  # F,3,H,W
    scale = max(w / x.shape[3], h / x.shape[2])
    size = (max(h, round(x.shape[2] * scale)), max(w, round(x.shape[3] * scale)))
    x = torch.nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    top, left = (x.shape[2] - h) // 2, (x.shape[3] - w) // 2
    return x[:, :, top : top + h, left : left + w].permute(1, 0, 2, 3).contiguous().clamp(-1, 1)
