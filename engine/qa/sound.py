"""Sound checks, streamed block by block: missing track, rate, length, silence, clipping, NaN."""

from __future__ import annotations

import logging
import math
from typing import Any

import av
import numpy as np

from engine.qa.findings import finding
from engine.render.media import _declared_samples

log = logging.getLogger(__name__)

# Sound and picture may differ in length by one video frame plus this much before it is an error.
# LTX-2 makes sound in 40 ms latent steps (25 per second, rounded) and its causal decoder drops three
# 10 ms mel frames, so a clean render's sound ends up to ~50 ms before its picture (measured: 44 ms
# for 33 frames at 24 fps, 36 ms for 17 frames at 30 fps).
AUDIO_LENGTH_SLACK_S = 0.05
# A whole track whose RMS level is below this (dB relative to full scale) is heard as silence.
SILENT_MAX_DBFS = -60.0
# A sample whose magnitude reaches this touches full scale.
CLIP_LEVEL = 0.999
# More than this share of samples at full scale is audible distortion (0.1 %; a clean tone at
# -12 dBFS and the random-weight test model's sound have none).
CLIPPED_MIN_SHARE = 0.001


def measure_sound(path: str) -> dict[str, Any] | None:
    """Decode the first audio track once, trimmed to its declared length (AAC priming and padding
    excluded): codec, rate, channels, length, RMS level, full-scale and non-finite sample counts.
    None when the file has no audio track."""
    with av.open(path) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        rate = int(stream.codec_context.sample_rate or 0)
        channels = int(stream.codec_context.channels or 0)
        declared = _declared_samples(stream, rate)
        done = counted = clipped = bad = 0
        squares = 0.0
        error = None
        try:
            for frame in container.decode(stream):
                if declared is not None and done >= declared:
                    break
                block = frame.to_ndarray()
                if block.dtype.kind in "iu":  # s16, s32, u8: scale to [-1, 1)
                    half = 2.0 ** (8 * block.dtype.itemsize - 1)
                    block = (block.astype(np.float64) - (half if block.dtype.kind == "u" else 0.0)) / half
                keep = frame.samples if declared is None else min(frame.samples, declared - done)
                # planar blocks are (channels, samples), packed ones (1, samples × channels)
                block = block[:, : keep * (block.shape[1] // max(frame.samples, 1))].astype(np.float64)
                finite = np.isfinite(block)
                bad += int(block.size - finite.sum())
                values = np.abs(block[finite])
                squares += float(np.sum(values**2))
                clipped += int(np.sum(values >= CLIP_LEVEL))
                counted += int(values.size)
                done += keep
        except av.error.FFmpegError as exc:
            error = str(exc)
            log.warning("sound decoding stopped after %d samples: %s", done, exc)
        samples = done if declared is None else min(done, declared)
    rms = math.sqrt(squares / counted) if counted else 0.0
    return {
        "codec": stream.codec_context.name,
        "sample_rate": rate or None,
        "channels": channels or None,
        "samples": samples,
        "seconds": samples / rate if rate else None,
        "rms_dbfs": 20 * math.log10(rms) if rms > 0 else -math.inf,
        "clipped": clipped,
        "nonfinite": bad,
        "values": counted + bad,
        "error": error,
    }


def sound_findings(
    sound: dict[str, Any] | None,
    expect: dict[str, Any],
    picture_s: float | None,
    fps: float | None,
) -> list[dict[str, Any]]:
    """Findings for the measured track against what was expected and the picture's length."""
    if sound is None:
        if expect.get("audio") is True:
            return [finding("audio_missing", "error", "The file has no sound track, but this clip should have sound.")]
        return []
    findings: list[dict[str, Any]] = []
    rate, seconds = sound["sample_rate"], sound["seconds"]

    # 1. The track itself: readable, at the expected rate.
    if sound["error"]:
        findings.append(
            finding(
                "audio_length",
                "error",
                f"The sound track could not be read to its end (decoding stopped after {seconds or 0:.2f} s: "
                f"{sound['error']}).",
            )
        )
    wanted_rate = expect.get("sample_rate")
    if wanted_rate is not None and rate != wanted_rate:
        findings.append(
            finding("audio_rate", "warning", f"The sound is sampled at {rate} Hz, but {wanted_rate} Hz was expected.")
        )

    # 2. Its length against the picture's: more than a frame (and the sound model's rounding) apart.
    if picture_s is not None and seconds is not None and fps:
        gap = seconds - picture_s
        if abs(gap) > 1 / fps + AUDIO_LENGTH_SLACK_S:
            where = "ends" if gap < 0 else "runs on"
            findings.append(
                finding(
                    "audio_length",
                    "error",
                    f"The sound lasts {seconds:.2f} s but the picture lasts {picture_s:.2f} s: the sound {where} "
                    f"{abs(gap):.2f} s {'early' if gap < 0 else 'past the last frame'}.",
                    seconds=(min(seconds, picture_s), max(seconds, picture_s)),
                    fps=fps,
                )
            )

    # 3. Its content: non-finite values, silence, clipping.
    values, finite = sound["values"], sound["values"] - sound["nonfinite"]
    if sound["nonfinite"]:
        findings.append(
            finding(
                "audio_nan",
                "error",
                f"{sound['nonfinite']} of the sound's {values} samples are not numbers (NaN or infinity): "
                "the sound is broken.",
            )
        )
    if finite and sound["rms_dbfs"] < SILENT_MAX_DBFS:
        level = (
            "every sample is zero" if sound["rms_dbfs"] == -math.inf else f"its level is {sound['rms_dbfs']:.0f} dBFS"
        )
        findings.append(
            finding(
                "audio_silent",
                "warning",
                f"The sound track is silent: {level}, below {SILENT_MAX_DBFS:.0f} dBFS over its whole length.",
                seconds=(0.0, seconds) if seconds else None,
                fps=fps,
            )
        )
    if finite and sound["clipped"] > CLIPPED_MIN_SHARE * finite:
        share = 100 * sound["clipped"] / finite
        findings.append(
            finding(
                "audio_clipped",
                "warning",
                f"{share:.1f} % of the sound's samples ({sound['clipped']} of {finite}) hit full scale: "
                "it is clipped and will sound distorted.",
            )
        )
    return findings
