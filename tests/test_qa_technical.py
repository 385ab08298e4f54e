"""Technical QA of a clip's file: real renders pass, crafted defects are found where they are."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from engine.qa.sound import AUDIO_LENGTH_SLACK_S
from engine.qa.technical import check_file
from engine.render import media

FPS, RATE = 24, 16000
W, H, N = 96, 64, 48  # two seconds of picture


def gradient(n: int = N) -> np.ndarray:
    """A smooth colour gradient drifting one period over the clip: (n, H, W, 3) float in [0, 1]."""
    x = np.linspace(0, 1, W)[None, None, :]
    y = np.linspace(0, 1, H)[None, :, None]
    t = (np.arange(n) / n)[:, None, None]
    r = 0.5 + 0.35 * np.sin(2 * np.pi * (x + t)) + 0 * y
    g = 0.5 + 0.35 * np.sin(2 * np.pi * (y - t)) + 0 * x
    b = 0.5 + 0.25 * np.cos(2 * np.pi * (x + y + t))
    return np.stack([r, g, b], axis=-1)


def tone(seconds: float, dbfs: float = -12.0, rate: int = RATE) -> np.ndarray:
    """A 440 Hz sine, peak at `dbfs`, stereo: (2, samples) float32 (not clipped here)."""
    t = np.arange(round(seconds * rate)) / rate
    wave = 10 ** (dbfs / 20) * np.sin(2 * np.pi * 440 * t)
    return np.stack([wave, wave]).astype(np.float32)


def write(path: Path, frames: np.ndarray | None = None, audio: Any = "tone", **kwargs: Any) -> Path:
    frames = gradient() if frames is None else frames
    if isinstance(audio, str):
        audio = tone(len(frames) / FPS)
    return media.encode_mp4(path, frames, FPS, audio, RATE if audio is not None else None, **kwargs)


def check(path: Path, **expect: Any) -> dict[str, Any]:
    """check_file, with the report's own promises asserted: JSON-safe, counts that add up."""
    report = check_file(path, expect or None)
    json.dumps(report, allow_nan=False)
    severities = [f["severity"] for f in report["findings"]]
    assert report["errors"] == severities.count("error")
    assert report["warnings"] == severities.count("warning")
    assert report["ok"] == (report["errors"] == 0)
    assert report["version"] == 1
    return report


def codes(report: dict[str, Any]) -> list[str]:
    return [f["code"] for f in report["findings"]]


def only(report: dict[str, Any], code: str) -> dict[str, Any]:
    assert codes(report) == [code], report["findings"]
    return report["findings"][0]


EXPECT = {"width": W, "height": H, "fps": FPS, "num_frames": N, "audio": True, "sample_rate": RATE}


# -- clean clips pass ---------------------------------------------------------------------------
def test_a_clean_render_of_the_tiny_model_passes_against_its_own_recipe(studio, tmp_path):
    # 33 frames: the model's sound then falls furthest short of the picture (its 40 ms steps)
    recipe = studio.build_recipe({"prompt": "a red car at night", "seed": 11, "num_frames": 33})
    path = studio.render(recipe, out_path=tmp_path / "clip.mp4")["output_path"]
    report = check(path)
    assert report["ok"] and report["findings"] == []
    p = report["probe"]
    assert (p["width"], p["height"], p["frames"], p["fps"]) == (recipe.width, recipe.height, 33, 24.0)
    assert (p["video_codec"], p["pix_fmt"], p["audio_codec"], p["sample_rate"]) == ("h264", "yuv420p", "aac", 16000)
    assert "mp4" in p["container"] and p["channels"] == 2
    assert abs(p["duration_s"] - 33 / 24) < 1e-3
    assert 1 / 24 < 33 / 24 - p["audio_s"] < 1 / 24 + AUDIO_LENGTH_SLACK_S

    # the same file against explicit expectations, sound included, still passes ...
    assert check(path, width=64, height=64, fps=24, num_frames=33, audio=True, sample_rate=16000)["findings"] == []
    # ... and a wrong one is named by the check that compares it
    wrong = check(path, width=64, height=64, fps=25, num_frames=33, sample_rate=48000)
    assert codes(wrong) == ["fps", "audio_rate"] and not wrong["ok"]
    assert "25" in wrong["findings"][0]["message"] and "48000 Hz" in wrong["findings"][1]["message"]


def test_a_clean_crafted_clip_has_no_findings(tmp_path):
    path = write(tmp_path / "clean.mp4")
    report = check(path, **EXPECT)
    assert report["findings"] == [] and report["ok"]
    assert report["probe"]["frames"] == N and abs(report["probe"]["audio_s"] - 2.0) < 1e-3
    assert check(path)["findings"] == []  # no recipe, nothing expected: the content alone is clean


# -- picture defects ----------------------------------------------------------------------------
def test_five_black_frames_are_one_error_with_their_range(tmp_path):
    frames = gradient()
    frames[10:15] = 0.0
    found = only(check(write(tmp_path / "black.mp4", frames), **EXPECT), "black_frames")
    assert found["severity"] == "error"
    assert (found["start_frame"], found["end_frame"]) == (10, 14)
    assert (found["start_s"], found["end_s"]) == (round(10 / FPS, 3), round(15 / FPS, 3))
    assert f"frames 10–14 ({10 / FPS:.2f}–{15 / FPS:.2f} s) are black" in found["message"].lower()


def test_a_single_black_frame_is_a_warning(tmp_path):
    frames = gradient()
    frames[0] = 0.0
    report = check(write(tmp_path / "one-black.mp4", frames), **EXPECT)
    found = only(report, "black_frames")
    assert found["severity"] == "warning" and report["ok"]
    assert (found["start_frame"], found["end_frame"]) == (0, 0) and found["message"].startswith("Frame 0 ")


def test_a_frozen_second_half_is_found(tmp_path):
    frames = gradient()
    frames[24:] = frames[24]
    found = only(check(write(tmp_path / "frozen.mp4", frames), **EXPECT), "frozen")
    assert (found["start_frame"], found["end_frame"]) == (24, 47)
    assert (found["start_s"], found["end_s"]) == (1.0, 2.0)
    assert found["severity"] == "error" and "24 frames (1.00 s)" in found["message"]


def test_a_short_pause_is_a_warning_and_a_shorter_one_is_motion(tmp_path):
    frames = gradient()
    frames[30:42] = frames[30]  # half a second: reported
    frames[5:8] = frames[5]  # three frames at 24 fps: too short to matter
    found = only(check(write(tmp_path / "pause.mp4", frames), **EXPECT), "frozen")
    assert (found["start_frame"], found["end_frame"], found["severity"]) == (30, 41, "warning")


def test_a_uniform_grey_run_is_an_error(tmp_path):
    frames = gradient()
    frames[20:26] = 0.5
    found = only(check(write(tmp_path / "grey.mp4", frames), **EXPECT), "grey_frames")
    assert (found["start_frame"], found["end_frame"], found["severity"]) == (20, 25, "error")
    assert "brightness 128 of 255" in found["message"]


def test_a_flash_that_reverts_is_flicker_but_a_cut_is_not(tmp_path):
    frames = gradient()
    frames[30] = np.clip(frames[30] + 0.3, 0, 1)
    found = only(check(write(tmp_path / "flash.mp4", frames), **EXPECT), "flicker")
    assert (found["start_frame"], found["end_frame"], found["severity"]) == (30, 30, "warning")
    assert found["message"].startswith("Frame 30 (1.25–1.29 s) flickers: the brightness jumps by")

    cut = gradient()
    cut[24:] = np.clip(cut[24:] + 0.3, 0, 1)  # a brighter second shot: the jump stays
    assert check(write(tmp_path / "cut.mp4", cut), **EXPECT)["findings"] == []


# -- the file against what was expected ---------------------------------------------------------
def test_a_wrong_frame_count_is_found_against_the_embedded_recipe(tmp_path):
    recipe = {"prompt": "x", "model": "m", "width": W, "height": H, "fps": FPS, "num_frames": N}
    path = write(tmp_path / "short.mp4", gradient(N - 1), metadata={media.RECIPE_TAG: json.dumps(recipe)})
    found = only(check(path), "frame_count")
    assert found["severity"] == "error" and (found["start_frame"], found["end_frame"]) == (47, 47)
    assert "47 frames, but 48 were expected" in found["message"]

    report = check(path, num_frames=N + 1, width=W + 2)
    assert codes(report) == ["size", "frame_count"] and report["errors"] == 2
    assert "96×64 pixels, but 98×64" in report["findings"][0]["message"]


def test_missing_sound_is_an_error_only_when_sound_is_expected(tmp_path):
    path = write(tmp_path / "mute.mp4", audio=None)
    found = only(check(path, **EXPECT), "audio_missing")
    assert found["severity"] == "error"
    assert check(path, audio=False)["findings"] == [] and check(path)["findings"] == []
    assert check(path)["probe"]["audio_codec"] is None


def test_sound_one_second_short_is_out_of_step(tmp_path):
    path = write(tmp_path / "short-sound.mp4", audio=tone(1.0))
    report = check(path, **EXPECT)
    found = only(report, "audio_length")
    assert found["severity"] == "error" and not report["ok"]
    assert (found["start_s"], found["end_s"]) == (1.0, 2.0)
    assert (found["start_frame"], found["end_frame"]) == (24, 47)
    assert "1.00 s early" in found["message"]

    # the tolerance is one frame plus the sound model's rounding, and no more
    tolerance = 1 / FPS + AUDIO_LENGTH_SLACK_S
    assert check(write(tmp_path / "within.mp4", audio=tone(2.0 - tolerance + 0.02)), **EXPECT)["findings"] == []
    late = check(write(tmp_path / "long.mp4", audio=tone(2.0 + tolerance + 0.02)), **EXPECT)
    assert codes(late) == ["audio_length"] and "past the last frame" in late["findings"][0]["message"]


def test_silent_and_clipped_sound_are_warnings(tmp_path):
    silent = check(write(tmp_path / "silent.mp4", audio=np.zeros((2, 2 * RATE), np.float32)), **EXPECT)
    found = only(silent, "audio_silent")
    assert found["severity"] == "warning" and silent["ok"]

    quiet = check(write(tmp_path / "quiet.mp4", audio=tone(2.0, dbfs=-80)), **EXPECT)
    assert codes(quiet) == ["audio_silent"] and "-8" in quiet["findings"][0]["message"]

    loud = np.clip(tone(2.0, dbfs=+12), -1, 1)
    found = only(check(write(tmp_path / "clipped.mp4", audio=loud), **EXPECT), "audio_clipped")
    assert found["severity"] == "warning" and "hit full scale" in found["message"]


def raw_file(
    path: Path,
    fmt: str = "mp4",
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    audio: np.ndarray | None = None,
    hole_after: int | None = None,
) -> Path:
    """A file written straight with PyAV, for what `encode_mp4` never makes; from frame `hole_after`
    on, each frame's timestamp skips one frame (a file with holes in its timing)."""
    frames = media.to_uint8_frames(gradient())
    with av.open(str(path), "w", format=fmt) as out:
        video = out.add_stream(codec, rate=Fraction(FPS, 1))
        video.width, video.height, video.pix_fmt = W, H, pix_fmt
        sound = out.add_stream("pcm_f32le", rate=RATE, layout="mono") if audio is not None else None
        for i, frame in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            vf.pts = i if hole_after is None or i < hole_after else 2 * i - hole_after
            vf.time_base = Fraction(1, FPS)
            out.mux(video.encode(vf))
        out.mux(video.encode(None))
        if sound is not None:
            af = av.AudioFrame.from_ndarray(audio[None, :], format="flt", layout="mono")
            af.sample_rate, af.pts = RATE, 0
            out.mux(sound.encode(af))
            out.mux(sound.encode(None))
    return path


def test_other_containers_codecs_and_pixel_formats_are_named(tmp_path):
    mkv = only(check(raw_file(tmp_path / "a.mkv", "matroska", "libx264", "yuv420p"), num_frames=N), "container")
    assert mkv["severity"] == "error" and "not an MP4" in mkv["message"]

    mpeg4 = check(raw_file(tmp_path / "b.mp4", "mp4", "mpeg4", "yuv420p"), num_frames=N)
    assert only(mpeg4, "codec")["severity"] == "warning" and mpeg4["ok"]

    yuv444 = check(raw_file(tmp_path / "c.mp4", "mp4", "libx264", "yuv444p"), num_frames=N)
    assert only(yuv444, "pix_fmt")["severity"] == "warning" and yuv444["probe"]["pix_fmt"] == "yuv444p"


def test_holes_in_the_timing_make_the_declared_duration_disagree(tmp_path):
    report = check(raw_file(tmp_path / "holes.mp4", hole_after=24), **EXPECT | {"audio": False})
    found = only(report, "duration")
    assert found["severity"] == "warning" and report["probe"]["frames"] == N and report["probe"]["fps"] == FPS
    assert (
        report["probe"]["duration_s"] > 2.8 and "its 48 frames at 24 frames per second last 2.00 s" in found["message"]
    )


def test_non_finite_sound_is_an_error(tmp_path):
    audio = (0.25 * np.sin(np.arange(2 * RATE) / 10)).astype(np.float32)
    audio[100:150] = np.nan
    path = raw_file(tmp_path / "nan.mov", "mov", "libx264", "yuv420p", audio)
    report = check(path, num_frames=N, audio=True)
    found = only(report, "audio_nan")
    assert found["severity"] == "error" and found["message"].startswith("50 of the sound's 32000 samples")


def test_unreadable_files_and_bad_expectations(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 100)
    report = check(junk)
    assert codes(report) == ["container"] and not report["ok"] and report["probe"]["frames"] is None

    with pytest.raises(FileNotFoundError, match="nothing.mp4"):
        check_file(tmp_path / "nothing.mp4")
    clean = write(tmp_path / "clean.mp4")
    with pytest.raises(ValueError, match="unknown expectation 'frames'"):
        check_file(clean, {"frames": 48})
    with pytest.raises(ValueError, match="num_frames must be a positive int, got 4.5"):
        check_file(clean, {"num_frames": 4.5})
