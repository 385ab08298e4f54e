"""Technical QA of a clip's file: container, streams, size, rate, length, picture and sound defects.

`check_file` opens any studio MP4 (or any file PyAV reads), compares it with what was expected
(given, or the recipe embedded in the file) and returns JSON-safe findings, each a plain sentence
that names the frames and seconds it is about.
"""

from __future__ import annotations

import logging
import numbers
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import av

from engine.qa.findings import finding, number
from engine.qa.picture import measure_frames, picture_findings
from engine.qa.sound import measure_sound, sound_findings
from engine.render import media

log = logging.getLogger(__name__)

REPORT_VERSION = 1
# What a caller may expect, with the type each value must have.
EXPECT_KEYS: dict[str, type] = {
    "width": int,
    "height": int,
    "fps": float,
    "num_frames": int,
    "audio": bool,
    "sample_rate": int,
}
# The recipe keys read when nothing is expected explicitly. A recipe does not say whether its model
# makes sound (LTX-Video models do not), so a recipe alone never makes a silent file an error.
RECIPE_KEYS = ("width", "height", "fps", "num_frames")
# Demuxer names of the MP4 / QuickTime family (PyAV reports "mov,mp4,m4a,3gp,3g2,mj2").
MP4_FAMILY = {"mov", "mp4"}
EXPECTED_CODEC = "h264"  # what every studio clip is encoded with, and what every player reads
EXPECTED_PIX_FMT = "yuv420p"  # 4:2:0, 8 bit: the only H.264 flavour browsers and phones all play
FPS_TOLERANCE = 0.01  # frames per second; 23.976 is not 24


def _expectations(path: Path, expect: Mapping[str, Any] | None) -> dict[str, Any]:
    """The caller's expectations, checked; or, without any, the embedded recipe's size, rate, length."""
    if expect is None:
        recipe = media.read_metadata_json(path) or {}
        expect = {
            k: v for k in RECIPE_KEYS if isinstance(v := recipe.get(k), int) and not isinstance(v, bool) and v > 0
        }
    checked: dict[str, Any] = {}
    for key, value in expect.items():
        if key not in EXPECT_KEYS:
            raise ValueError(f"unknown expectation {key!r}; known: {', '.join(EXPECT_KEYS)}")
        if value is None:
            continue
        kind = EXPECT_KEYS[key]
        ok = (
            isinstance(value, bool) if kind is bool else isinstance(value, numbers.Real) and not isinstance(value, bool)
        )
        if not ok or (kind is int and value != int(value)) or (kind is not bool and value <= 0):
            raise ValueError(f"expectation {key} must be a positive {kind.__name__}, got {value!r}")
        checked[key] = kind(value)
    return checked


def check_file(path: Path, expect: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Inspect the MP4 at `path` and return {version, ok, errors, warnings, probe, findings}.

    `expect` may hold width, height, fps, num_frames, audio (a sound track is expected) and
    sample_rate; without it the recipe embedded in the file supplies width, height, fps and
    num_frames. `ok` is False when any finding is an error. Frame ranges are inclusive.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no file to check at {path}")
    findings: list[dict[str, Any]] = []
    probe: dict[str, Any] = {
        "container": None,
        "video_codec": None,
        "pix_fmt": None,
        "width": None,
        "height": None,
        "fps": None,
        "frames": None,
        "duration_s": None,
        "audio_codec": None,
        "sample_rate": None,
        "channels": None,
        "audio_s": None,
    }
    try:
        wanted = _expectations(path, expect)
        # 1. The container and the picture stream, decoded once, frame by frame.
        with av.open(str(path)) as container:
            probe["container"] = container.format.name
            if not MP4_FAMILY & set(container.format.name.split(",")):
                findings.append(
                    finding(
                        "container",
                        "error",
                        f"The file is a {container.format.long_name or container.format.name} file, not an MP4: "
                        "the studio and most players expect MP4.",
                    )
                )
            if not container.streams.video:
                findings.append(finding("container", "error", "The file has no picture (no video track)."))
                return _report(probe, findings)
            stream = container.streams.video[0]
            # the nominal rate (r_frame_rate), not frames ÷ duration: holes in the timestamps then show
            rate = stream.guessed_rate or stream.average_rate
            declared_s: float | None
            if stream.duration is not None and stream.time_base is not None:
                declared_s = float(stream.duration * stream.time_base)
            else:
                declared_s = container.duration / av.time_base if container.duration else None
            probe.update(
                video_codec=stream.codec_context.name,
                pix_fmt=stream.codec_context.pix_fmt,
                width=stream.codec_context.width,
                height=stream.codec_context.height,
                fps=number(float(rate)) if rate else None,
                duration_s=number(declared_s),
            )
            means, spreads, diffs, decode_error = measure_frames(container, stream)
        probe["frames"] = len(means)
    except av.error.FFmpegError as exc:
        findings.append(finding("container", "error", f"The file could not be read as a video: {exc}."))
        return _report(probe, findings)

    # 2. The file's facts against the expectations.
    fps = probe["fps"] or wanted.get("fps")
    frames = probe["frames"]
    if probe["video_codec"] != EXPECTED_CODEC:
        findings.append(
            finding(
                "codec",
                "warning",
                f"The picture is encoded as {probe['video_codec']}, not H.264: some players will not play it.",
            )
        )
    if probe["pix_fmt"] != EXPECTED_PIX_FMT:
        findings.append(
            finding(
                "pix_fmt",
                "warning",
                f"The picture's pixel format is {probe['pix_fmt']}, not yuv420p: browsers and phones may not play it.",
            )
        )
    if "width" in wanted or "height" in wanted:
        want = (wanted.get("width", probe["width"]), wanted.get("height", probe["height"]))
        if want != (probe["width"], probe["height"]):
            findings.append(
                finding(
                    "size",
                    "error",
                    f"The picture is {probe['width']}×{probe['height']} pixels, but {want[0]}×{want[1]} was expected.",
                )
            )
    if "fps" in wanted and (probe["fps"] is None or abs(probe["fps"] - wanted["fps"]) > FPS_TOLERANCE):
        findings.append(
            finding(
                "fps",
                "error",
                f"The clip plays at {probe['fps'] or 'an unknown number of'} frames per second, but {wanted['fps']:g} "
                "was expected.",
            )
        )
    if decode_error:
        findings.append(
            finding(
                "frame_count",
                "error",
                f"The picture could not be decoded past frame {frames}: {decode_error}.",
                frames=(frames, frames),
                fps=fps,
            )
        )
    if "num_frames" in wanted and frames != wanted["num_frames"]:
        short = wanted["num_frames"] - frames
        gap = f" ({abs(short) / fps:.2f} s {'missing' if short > 0 else 'too many'})" if fps else ""
        findings.append(
            finding(
                "frame_count",
                "error",
                f"The clip has {frames} frames, but {wanted['num_frames']} were expected{gap}.",
                frames=(min(frames, wanted["num_frames"]), max(frames, wanted["num_frames"]) - 1),
                fps=fps,
            )
        )
    picture_s = frames / fps if fps else None
    if fps and probe["duration_s"] is not None and abs(probe["duration_s"] - frames / fps) > 1 / fps:
        findings.append(
            finding(
                "duration",
                "warning",
                f"The file says its picture lasts {probe['duration_s']:.2f} s, but its {frames} frames at {fps:g} "
                f"frames per second last {picture_s:.2f} s: players may show a wrong length or hold some frames.",
            )
        )

    # 3. The picture's content, then the sound.
    findings += picture_findings(means, spreads, diffs, fps)
    sound = measure_sound(str(path))
    if sound is not None:
        probe.update(
            audio_codec=sound["codec"],
            sample_rate=sound["sample_rate"],
            channels=sound["channels"],
            audio_s=number(sound["seconds"]),
        )
    findings += sound_findings(sound, wanted, picture_s, fps)
    return _report(probe, findings)


def _report(probe: dict[str, Any], findings: list[dict[str, Any]]) -> dict[str, Any]:
    errors = sum(f["severity"] == "error" for f in findings)
    warnings = sum(f["severity"] == "warning" for f in findings)
    for f in findings:
        log.info("%s %s: %s", f["severity"], f["code"], f["message"])
    return {
        "version": REPORT_VERSION,
        "ok": errors == 0,
        "errors": errors,
        "warnings": warnings,
        "probe": probe,
        "findings": findings,
    }
