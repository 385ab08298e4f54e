"""Appending new frames to a finished clip without touching its own.

The parent's H.264 packets are copied as they are (so its frames decode bit for bit as
before) and the new frames, encoded by the studio's own encoder settings into a separate
stream first, are appended after them: the two join cleanly because the parent's stream
ends on a closed group of pictures and the new one starts on a keyframe with the very same
sequence headers (checked; a parent from another encoder is refused). The sound is one new
AAC track: the parent's, then the new part's, crossfaded over `CROSSFADE_S` at the join so
there is no click.
"""

from __future__ import annotations

import contextlib
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from aiprod_studio.errors import BadInput
from aiprod_studio.files.atomic import replace_durably
from aiprod_studio.files.partials import holding, temp_path_for
from engine.render import media

CROSSFADE_S = 0.02


def joined_audio(parent: np.ndarray, new: np.ndarray, rate: int, join: int, new_join: int) -> np.ndarray:
    """The parent's sound up to sample `join`, then `new`'s from sample `new_join` (the same moment in
    the new render), crossfaded (equal power) over the `CROSSFADE_S` before the join."""
    fade = min(int(rate * CROSSFADE_S), join, new_join)
    channels = max(parent.shape[0], new.shape[0])
    parent = np.broadcast_to(parent, (channels, parent.shape[1])) if parent.shape[0] != channels else parent
    new = np.broadcast_to(new, (channels, new.shape[1])) if new.shape[0] != channels else new
    head = parent[:, : join - fade]
    t = (np.arange(fade, dtype=np.float32) + 0.5) / max(fade, 1)
    mixed = parent[:, join - fade : join] * np.cos(t * np.pi / 2) + new[:, new_join - fade : new_join] * np.sin(
        t * np.pi / 2
    )
    return np.concatenate([head, mixed, new[:, new_join:]], axis=1).astype(np.float32)


def splice_mp4(
    path: Path,
    parent: Path,
    new_frames: np.ndarray,
    fps: int,
    audio: np.ndarray | None,
    sample_rate: int | None,
    metadata: dict[str, str],
    parent_frames: int,
    keep_sound_until: int = 0,
) -> Path:
    """Write `parent`'s video packets (its `parent_frames` frames) then `new_frames`, with `audio` as
    the whole sound, to `path` (atomically: the file appears only once complete). The parent's own AAC
    packets are kept for the sound before sample `keep_sound_until` (less a frame's margin), so extending
    a clip again and again never re-encodes its beginning; the rest is `audio` newly encoded."""
    path = Path(path)
    tmp = temp_path_for(path)
    segment = path.with_name(f".{path.name}.segment.partial")  # (a kill's leftover is swept like any partial)
    try:
        with holding(tmp):
            # (the same encoder and settings as every clip; the whole sound, so its packets line up with the parent's)
            media.encode_mp4(segment, new_frames, fps, audio, sample_rate)
            with holding(segment), av.open(str(parent)) as p_in, av.open(str(segment)) as n_in:
                p_video, n_video = p_in.streams.video[0], n_in.streams.video[0]
                if p_video.codec_context.extradata != n_video.codec_context.extradata:
                    raise BadInput(
                        f"job_id: the parent clip {parent.name} was encoded with other H.264 settings than this "
                        "studio's; its frames cannot be kept bit for bit",
                        field="job_id",
                    )
                ticks = Fraction(1, 1) / (p_video.time_base * fps)  # time-base ticks per frame
                if ticks.denominator != 1 or n_video.time_base != p_video.time_base:
                    raise BadInput(f"job_id: the parent clip {parent.name} has an unusual time base", field="job_id")
                n_sound = n_in.streams.audio[0] if n_in.streams.audio else None
                p_sound = p_in.streams.audio[0] if p_in.streams.audio else None
                same_codec = (
                    p_sound is not None
                    and n_sound is not None
                    and p_sound.codec_context.extradata == n_sound.codec_context.extradata
                    and p_sound.time_base == n_sound.time_base
                )
                frame = media.AAC_FRAME
                cut = max(0, (keep_sound_until - int(CROSSFADE_S * (sample_rate or 0)) - 2 * frame) // frame * frame)
                with av.open(str(tmp), mode="w", format="mp4") as out:
                    for key, value in metadata.items():
                        out.metadata[key] = value
                    video = out.add_stream_from_template(p_video)
                    sound = out.add_stream_from_template(n_sound) if n_sound is not None else None
                    parent_sound, new_sound = [], []  # (one pass over each file: a demuxed file is at its end)
                    for packet in p_in.demux():
                        if packet.dts is None:
                            continue
                        if packet.stream.index == p_video.index:
                            packet.stream = video
                            out.mux(packet)
                        elif p_sound is not None and packet.stream.index == p_sound.index:
                            parent_sound.append(packet)
                    offset = parent_frames * int(ticks)
                    for packet in n_in.demux():
                        if packet.dts is None:
                            continue
                        if packet.stream.index == n_video.index:
                            packet.pts += offset
                            packet.dts += offset
                            packet.stream = video
                            out.mux(packet)
                        elif n_sound is not None and packet.stream.index == n_sound.index:
                            new_sound.append(packet)
                    if sound is not None:
                        keep_parent = same_codec and cut > 0  # the parent's own packets up to the cut, bit for bit
                        for packet in parent_sound if keep_parent else []:
                            if packet.pts is not None and packet.pts < cut:
                                packet.stream = sound
                                out.mux(packet)
                        for packet in new_sound:
                            if not keep_parent or (packet.pts is not None and packet.pts >= cut):
                                packet.stream = sound
                                out.mux(packet)
            replace_durably(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    finally:
        with contextlib.suppress(FileNotFoundError):
            segment.unlink()
    return path
