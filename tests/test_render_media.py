"""PyAV encode/decode: H.264 + AAC + metadata, atomic writes, PSNR compare."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from engine.render import media


def clip(seed=0, n=17, size=64):
    """Smooth moving colour gradients (what a codec is made for), different per seed."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    frames = []
    for i in range(n):
        phase = seed * 1.7 + i * 0.15
        frames.append(
            np.stack(
                [
                    0.5 + 0.4 * np.sin(2 * np.pi * (x + phase)),
                    0.5 + 0.4 * np.cos(2 * np.pi * (y - phase)),
                    0.5 + 0.4 * np.sin(2 * np.pi * (x + y + seed)),
                ],
                axis=-1,
            )
        )
    return np.stack(frames).astype(np.float32)


def tone(seconds, rate=16000):
    t = np.arange(int(seconds * rate)) / rate
    return np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 550 * t)]).astype(np.float32)


def test_encode_probe_round_trip(tmp_path):
    out = media.encode_mp4(tmp_path / "a.mp4", clip(), 24, tone(17 / 24), 16000, {"comment": json.dumps({"k": 1})})
    info = media.probe(out)
    v, a = info["video"], info["audio"]
    assert (v["codec"], v["width"], v["height"], v["pix_fmt"], v["frames"], v["fps"]) == (
        "h264",
        64,
        64,
        "yuv420p",
        17,
        24.0,
    )
    assert (a["codec"], a["sample_rate"], a["channels"]) == ("aac", 16000, 2)
    assert abs(a["duration_s"] - 17 / 24) < 1 / 24
    assert media.read_metadata_json(out) == {"k": 1}
    frames = media.read_frames(out)
    assert frames.shape == (17, 64, 64, 3) and frames.dtype == np.uint8
    assert media.psnr(frames, media.to_uint8_frames(clip())) > 30  # lossy, but close to the source


def test_audio_survives_encoding(tmp_path):
    src = tone(1.0)
    out = media.encode_mp4(tmp_path / "a.mp4", clip(), 24, src, 16000)
    audio, rate = media.read_audio(out)
    assert rate == 16000 and audio.shape[0] == 2
    spectrum = np.abs(np.fft.rfft(audio[0, 2000:14000]))
    peak_hz = np.argmax(spectrum) * 16000 / 12000
    assert abs(peak_hz - 440) < 5


def test_video_without_audio(tmp_path):
    out = media.encode_mp4(tmp_path / "v.mp4", clip(), 12)
    info = media.probe(out)
    assert "audio" not in info and info["video"]["frames"] == 17


def test_failed_encode_leaves_nothing(tmp_path):
    target = tmp_path / "bad.mp4"
    with pytest.raises(ValueError):
        media.encode_mp4(target, np.zeros((3, 64, 64)), 24)
    with pytest.raises(ValueError):  # PyAV's ArgumentError is a ValueError
        media.encode_mp4(target, clip(), 24, tone(0.5), sample_rate=-5)
    assert list(tmp_path.iterdir()) == []


def test_compare_identical_and_different(tmp_path):
    a = media.encode_mp4(tmp_path / "a.mp4", clip(0), 24)
    b = media.encode_mp4(tmp_path / "b.mp4", clip(0), 24)
    c = media.encode_mp4(tmp_path / "c.mp4", clip(1), 24)
    same = media.compare(a, b)
    assert same["identical"] and math.isinf(same["psnr"]) and len(same["psnr_per_frame"]) == 17
    diff = media.compare(a, c)
    assert not diff["identical"] and diff["psnr"] < 20
    d = media.encode_mp4(tmp_path / "d.mp4", clip(0, n=9), 24)
    with pytest.raises(ValueError, match="differ in shape"):
        media.compare(a, d)
