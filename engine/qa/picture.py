"""Picture checks, streamed frame by frame: black, flat grey, frozen and flickering frames.

Each decoded frame is shrunk, measured (mean and spread of its luma, mean difference from the
previous frame) and dropped, so memory stays flat however long the film; the runs are found
afterwards in those three numbers per frame.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import av
import numpy as np

from engine.qa.findings import Severity, finding, frames_label

log = logging.getLogger(__name__)

# Luma is measured on a 0–255 scale (BT.601 weights of the decoded RGB).
# Frames are area-averaged down to this long side before measuring: cheap on long 4K films, and the
# averaging only removes compression noise, never a black, flat or frozen picture.
ANALYSIS_SIDE = 256
# A black frame: mean luma at or below this (8 % of full scale) ...
BLACK_MAX_LUMA = 20.0
# ... and a luma standard deviation at or below this (a dark night scene keeps more detail).
BLACK_MAX_SPREAD = 8.0
# A black run this long or longer is an error; one or two stray black frames are a warning.
BLACK_ERROR_FRAMES = 3
# A frame whose luma standard deviation is at or below this is one flat shade with no picture
# (what NaN-born decoding produces). Renders of the random-weight test model measure about 27.
FLAT_MAX_SPREAD = 2.0
# Two consecutive frames whose mean absolute RGB difference is below this (of 255) are the same
# picture. Not lower: x264 keeps refining a still picture, which moves a repeated frame by up to
# ~0.6 at the studio's crf 17. Moving pictures change by several levels (a slow drifting gradient
# about 7, the random-weight test model about 30).
FROZEN_MAX_DIFF = 1.0
# A frozen run is reported once it lasts max(fps / 2, this) frames: half a second of stillness.
FROZEN_MIN_FRAMES = 3
# A frozen run covering this share of the clip or more is an error (the clip is mostly a still).
FROZEN_ERROR_SHARE = 0.5
# A flicker is a jump of the mean luma of at least this many levels ...
FLICKER_MIN_JUMP = 12.0
# ... and at least this many times the clip's median change between frames (test model: about 2) ...
FLICKER_TYPICAL_FACTOR = 5.0
# ... that comes back to the level before within this many frames (a jump that stays is a cut).
FLICKER_MAX_FRAMES = 3


def measure_frames(container: Any, stream: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, str | None]:
    """Decode `stream` once: per frame the mean luma, its spread, and the mean |RGB difference| from
    the previous frame (NaN for the first). Also returns why decoding stopped early, if it did."""
    means: list[float] = []
    spreads: list[float] = []
    diffs: list[float] = []
    weights = np.array([0.299, 0.587, 0.114], np.float32)
    previous: np.ndarray | None = None
    error = None
    try:
        for frame in container.decode(stream):
            scale = min(1.0, ANALYSIS_SIDE / max(frame.width, frame.height, 1))
            rgb = frame.to_ndarray(
                width=max(1, round(frame.width * scale)),
                height=max(1, round(frame.height * scale)),
                format="rgb24",
                interpolation="AREA",
            ).astype(np.float32)
            luma = rgb @ weights
            means.append(float(luma.mean()))
            spreads.append(float(luma.std()))
            if previous is not None and previous.shape == rgb.shape:
                diffs.append(float(np.abs(rgb - previous).mean()))
            else:
                diffs.append(math.nan)
            previous = rgb
    except av.error.FFmpegError as exc:
        error = str(exc)
        log.warning("decoding stopped after %d frames: %s", len(means), exc)
    return np.array(means), np.array(spreads), np.array(diffs), error


def runs(mask: np.ndarray, bridge: int = 0) -> list[tuple[int, int]]:
    """Inclusive (first, last) index ranges where `mask` holds; gaps of at most `bridge` are joined."""
    found: list[tuple[int, int]] = []
    for i in np.flatnonzero(mask):
        if found and i - found[-1][1] <= bridge + 1:
            found[-1] = (found[-1][0], int(i))
        else:
            found.append((int(i), int(i)))
    return found


def picture_findings(
    means: np.ndarray, spreads: np.ndarray, diffs: np.ndarray, fps: float | None
) -> list[dict[str, Any]]:
    """Black, flat grey, frozen and flickering runs, in that order, each run one finding."""
    count = len(means)
    findings: list[dict[str, Any]] = []
    if count == 0:
        return findings

    def label(first: int, last: int) -> str:
        text = frames_label(first, last, fps)
        return text[0].upper() + text[1:]

    def verb(first: int, last: int) -> str:
        return "is" if first == last else "are"

    # 1. Black: dark and without detail. Whole-clip black says so.
    black = (means <= BLACK_MAX_LUMA) & (spreads <= BLACK_MAX_SPREAD)
    for a, b in runs(black):
        n = b - a + 1
        severity: Severity = "error" if n >= BLACK_ERROR_FRAMES else "warning"
        whole = " The whole clip is black." if n == count else ""
        findings.append(
            finding("black_frames", severity, f"{label(a, b)} {verb(a, b)} black.{whole}", frames=(a, b), fps=fps)
        )

    # 2. Flat: one shade, no detail, but not black (a render that went NaN decodes to this).
    flat = (spreads <= FLAT_MAX_SPREAD) & ~black
    for a, b in runs(flat):
        level = float(np.mean(means[a : b + 1]))
        findings.append(
            finding(
                "grey_frames",
                "error",
                f"{label(a, b)} {verb(a, b)} one flat shade (brightness {level:.0f} of 255) with no picture in "
                "it, which is what a render that failed (NaN values) decodes to.",
                frames=(a, b),
                fps=fps,
            )
        )

    # 3. Frozen: consecutive near-identical frames; black or flat frames are already reported.
    empty = black | flat
    same = np.zeros(count, bool)  # same[i]: frame i repeats frame i - 1
    same[1:] = (diffs[1:] < FROZEN_MAX_DIFF) & ~empty[1:] & ~empty[:-1]
    shortest = max(math.ceil(fps / 2) if fps else 0, FROZEN_MIN_FRAMES)
    for a, b in runs(same):
        first, n = a - 1, b - a + 2
        if n < shortest:
            continue
        severity = "error" if n >= FROZEN_ERROR_SHARE * count else "warning"
        length = f" ({n / fps:.2f} s)" if fps else ""
        findings.append(
            finding(
                "frozen",
                severity,
                f"{label(first, b)} show the same picture: the clip freezes for {n} frames{length}.",
                frames=(first, b),
                fps=fps,
            )
        )

    # 4. Flicker: a jump of the mean brightness, well above the clip's usual change, that comes back.
    steps = np.diff(means)  # steps[i - 1]: the change into frame i
    usable = ~empty[1:] & ~empty[:-1]
    typical = float(np.median(np.abs(steps[usable]))) if usable.any() else 0.0
    threshold = max(FLICKER_MIN_JUMP, FLICKER_TYPICAL_FACTOR * typical)
    flicker = np.zeros(count, bool)
    jumps = np.zeros(count)
    for i in range(1, count):
        jump = means[i] - means[i - 1]
        if abs(jump) < threshold or not usable[i - 1]:
            continue
        for j in range(i + 1, min(i + FLICKER_MAX_FRAMES, count - 1) + 1):
            if empty[j]:
                break
            if abs(means[j] - means[i - 1]) <= abs(jump) / 2:  # back near the level before the jump
                flicker[i:j] = True
                jumps[i:j] = np.maximum(jumps[i:j], abs(jump))
                break
    for a, b in runs(flicker, bridge=FLICKER_MAX_FRAMES - 1):
        biggest = float(jumps[a : b + 1].max())
        findings.append(
            finding(
                "flicker",
                "warning",
                f"{label(a, b)} {'flickers' if a == b else 'flicker'}: the brightness jumps by {biggest:.0f} of 255 "
                f"and straight back, while elsewhere it changes by about {typical:.1f} between frames.",
                frames=(a, b),
                fps=fps,
            )
        )
    return findings
