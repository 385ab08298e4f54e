"""Media in and out with PyAV: encode MP4 (H.264 + AAC + recipe), probe, decode, compare.

Every file is written to a hidden temp name beside its target, fsynced, then
`os.replace`d, so a crash never leaves a half-written MP4 under the real name.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from aiprod_studio.errors import BadInput
from aiprod_studio.files.atomic import replace_durably
from aiprod_studio.files.partials import holding, temp_path_for

log = logging.getLogger(__name__)

RECIPE_TAG = "comment"  # a clip's recipe JSON
STORYBOARD_TAG = "description"  # a film's storyboard JSON (and the jobs behind its shots)
AAC_FRAME = 1024


def to_uint8_frames(frames: np.ndarray) -> np.ndarray:
    """Float frames in [0, 1] (F, H, W, 3) → uint8, rounding to nearest."""
    if frames.dtype == np.uint8:
        return frames
    return (np.clip(frames, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def encode_mp4(
    path: Path,
    frames: np.ndarray,
    fps: int,
    audio: np.ndarray | None = None,
    sample_rate: int | None = None,
    metadata: dict[str, str] | None = None,
    crf: int = 17,
    chapters: list[tuple[str, int, int]] | None = None,
    keyint: int = 0,
) -> Path:
    """Write an MP4: H.264 yuv420p video, optional AAC audio, container metadata.

    `chapters` are (title, first frame, end frame) markers.

    `frames` is (F, H, W, 3) uint8 or float in [0, 1]; `audio` is (channels, samples)
    float in [-1, 1]. The file appears under `path` only once it is complete.
    """
    # (one function on purpose: the video and audio streams share one container, one temp file and one fsync)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = to_uint8_frames(np.asarray(frames))
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (F, H, W, 3), got {frames.shape}")
    n, h, w, _ = frames.shape
    tmp = temp_path_for(path)
    try:
        with holding(tmp):  # held through the rename: a sweep never takes a live render's file
            with av.open(str(tmp), mode="w", format="mp4") as container:
                for key, value in (metadata or {}).items():
                    container.metadata[key] = value
                if chapters:
                    container.set_chapters(
                        [
                            {
                                "id": i,
                                "start": a,
                                "end": b,
                                "time_base": Fraction(1, int(fps)),
                                "metadata": {"title": title},
                            }
                            for i, (title, a, b) in enumerate(chapters)
                        ]
                    )
                video = container.add_stream("libx264", rate=Fraction(int(fps), 1))
                video.width, video.height = w, h
                video.pix_fmt = "yuv420p"
                # x264's macroblock-tree pass gives different bytes from run to run on some
                # AVX-512 CPUs; without it the same frames always encode to the same file.
                # `keyint`: an IDR frame exactly every `keyint` frames (closed groups, no scene-cut extras),
                # where a retake's range may begin and end; 0 leaves it to x264 (every 250 frames)
                params = "mbtree=0" + (f":keyint={int(keyint)}:scenecut=0" if keyint else "")
                video.options = {"crf": str(crf), "preset": "medium", "x264-params": params}
                audio_stream = None
                if audio is not None:
                    audio = np.ascontiguousarray(np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0))
                    if audio.ndim == 1:
                        audio = audio[None, :]
                    channels = audio.shape[0]
                    audio_stream = container.add_stream("aac", rate=int(sample_rate))
                    audio_stream.layout = "stereo" if channels == 2 else "mono"
                    audio_stream.bit_rate = 128_000 if channels == 2 else 96_000

                for i in range(n):
                    frame = av.VideoFrame.from_ndarray(frames[i], format="rgb24")
                    frame.pts = i
                    container.mux(video.encode(frame))
                container.mux(video.encode(None))

                if audio_stream is not None:
                    mux_audio(container, audio_stream, audio, int(sample_rate or 0))
            replace_durably(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    return path


def mux_audio(container: Any, stream: Any, audio: np.ndarray, sample_rate: int) -> None:
    """Encode (channels, samples) float audio into `stream` of `container`, one AAC frame at a time."""
    audio = np.ascontiguousarray(np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0))
    for start in range(0, audio.shape[1], AAC_FRAME):
        chunk = np.ascontiguousarray(audio[:, start : start + AAC_FRAME])
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=stream.layout.name)
        frame.sample_rate = sample_rate
        frame.pts = start
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def probe(path: Path) -> dict[str, Any]:
    """Stream facts read back from the file (frames and audio samples are counted by decoding)."""
    info: dict[str, Any] = {"path": str(path), "size": Path(path).stat().st_size}
    with av.open(str(path)) as container:
        info["metadata"] = dict(container.metadata)
        info["duration_s"] = container.duration / av.time_base if container.duration else None
        if container.streams.video:
            vs = container.streams.video[0]
            info["video"] = {
                "codec": vs.codec_context.name,
                "width": vs.codec_context.width,
                "height": vs.codec_context.height,
                "pix_fmt": vs.codec_context.pix_fmt,
                "fps": float(vs.average_rate) if vs.average_rate else None,
                "frames": sum(1 for _ in container.decode(video=0)),
            }
    with av.open(str(path)) as container:
        if container.streams.audio:
            stream = container.streams.audio[0]
            decoded = sum(f.samples for f in container.decode(audio=0))
            rate = stream.codec_context.sample_rate
            declared = _declared_samples(stream, rate)
            info["audio"] = {
                "codec": stream.codec_context.name,
                "sample_rate": rate,
                "channels": stream.codec_context.channels,
                "samples": declared if declared is not None else decoded,
                "samples_decoded": decoded,
                "duration_s": (declared if declared is not None else decoded) / rate if rate else None,
            }
    return info


def _declared_samples(stream: Any, rate: int) -> int | None:
    """The track's length as the container declares it (encoder padding excluded)."""
    if not stream.duration or not rate:
        return None
    return int(round(float(stream.duration * stream.time_base) * rate))


def require_video(value: Path | str, field: str = "file") -> tuple[Path, dict[str, Any]]:
    """`value` as an existing, readable video file and its probe; else a `BadInput` naming `field`."""
    path = Path(value)
    if not path.is_file():
        raise BadInput(f"{field} {str(value)!r} does not exist", field=field)
    try:
        return path, probe(path)
    except Exception as exc:  # noqa: BLE001 - any decoder failure means "not a readable video"
        raise BadInput(f"{field} {str(value)!r} is not a readable video: {exc}", field=field) from None


def read_frames(path: Path) -> np.ndarray:
    """All video frames as (F, H, W, 3) uint8 RGB."""
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def count_frames(path: Path) -> int:
    """The number of video frames, counted by decoding (nothing is kept)."""
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def read_frames_at(path: Path, indices: Any) -> dict[int, np.ndarray]:
    """Only the frames at `indices`, as {index: (H, W, 3) uint8 RGB}: a long film is streamed, never held whole."""
    wanted = {int(i) for i in indices}
    found: dict[int, np.ndarray] = {}
    if not wanted:
        return found
    last = max(wanted)
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in wanted:
                found[i] = frame.to_ndarray(format="rgb24")
            if i >= last:
                break
    return found


def read_audio(path: Path) -> tuple[np.ndarray, int]:
    """The audio track as (channels, samples) float32 and its sample rate, trimmed to its declared length."""
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return np.zeros((0, 0), np.float32), 0
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate
        declared = _declared_samples(stream, rate)
        chunks = [f.to_ndarray() for f in container.decode(audio=0)]
    audio = np.concatenate(chunks, axis=1).astype(np.float32)
    return (audio[:, :declared] if declared else audio), rate


def read_chapters(path: Path) -> list[dict[str, Any]]:
    """Chapter markers as {title, start_s, end_s}."""
    with av.open(str(path)) as container:
        return [
            {
                "title": c["metadata"].get("title", ""),
                "start_s": float(c["start"] * c["time_base"]),
                "end_s": float(c["end"] * c["time_base"]),
            }
            for c in container.chapters()
        ]


def read_metadata_json(path: Path, tag: str = RECIPE_TAG) -> dict[str, Any] | None:
    """The JSON object embedded under `tag` in the container metadata, if any."""
    with av.open(str(path)) as container:
        text = container.metadata.get(tag)
    if not text:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two uint8 images/videos in dB; `inf` when identical."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def snr(a: np.ndarray, b: np.ndarray) -> float:
    """Signal-to-noise ratio of sound `b` against reference `a` in dB; `inf` when identical."""
    noise = float(np.sum((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    signal = float(np.sum(a.astype(np.float64) ** 2))
    if noise == 0:
        return math.inf
    return 10.0 * math.log10(signal / noise) if signal > 0 else -math.inf


def _finite_mean(values: list[float]) -> float:
    """The mean of the finite values (identical frames are `inf`); `inf` when every one is."""
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.inf


def compare(a_path: Path, b_path: Path) -> dict[str, Any]:
    """Video: PSNR per frame, its minimum and mean, the overall PSNR and the largest pixel
    difference, between two videos of the same size and length. Audio: the SNR of B's sound
    against A's (None when neither has sound; `only_in` when one has; a different rate or
    channel count is a mismatch)."""
    a, b = read_frames(a_path), read_frames(b_path)
    if a.shape != b.shape:
        raise ValueError(f"videos differ in shape: {a.shape} vs {b.shape}")
    per_frame = [psnr(a[i], b[i]) for i in range(a.shape[0])]
    (sa, ra), (sb, rb) = read_audio(a_path), read_audio(b_path)
    audio: dict[str, Any] | None = None
    if bool(sa.size) != bool(sb.size):  # sound on one side only: not the same clip
        audio = {"snr": None, "samples": 0, "length_differs": True, "identical": False}
        audio["only_in"] = "a" if sa.size else "b"
    elif sa.size and sb.size:
        if ra != rb or sa.shape[0] != sb.shape[0]:
            raise ValueError(f"sound differs in format: {sa.shape[0]} ch at {ra} Hz vs {sb.shape[0]} ch at {rb} Hz")
        n = min(sa.shape[1], sb.shape[1])
        audio = {
            "snr": snr(sa[:, :n], sb[:, :n]),
            "samples": n,
            "length_differs": sa.shape[1] != sb.shape[1],
            "identical": sa.shape == sb.shape and bool(np.array_equal(sa, sb)),
        }
    return {
        "frames": a.shape[0],
        "psnr": psnr(a, b),
        "psnr_per_frame": per_frame,
        "psnr_min": min(per_frame) if per_frame else math.inf,
        "psnr_mean": _finite_mean(per_frame),
        "max_abs_diff": int(np.max(np.abs(a.astype(np.int16) - b.astype(np.int16)))) if a.size else 0,
        "identical": bool(np.array_equal(a, b)),
        "audio": audio,
    }
