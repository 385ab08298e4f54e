"""New frames into a finished clip without touching its own: appended (extend) or in place of a
range (retake).

The parent's H.264 packets are copied as they are (so its frames decode bit for bit as
before) and the new frames, encoded by the studio's own encoder settings into a separate
stream first, go between them: the pieces join cleanly because each of the parent's pieces
ends before a keyframe (its groups of pictures are closed) and the new one starts on a
keyframe with the very same sequence headers (checked; a parent from another encoder is
refused). The sound is one AAC track: the parent's own packets up to the first join, then the
whole sound newly encoded, crossfaded over `CROSSFADE_S` at each join so there is no click.
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
    span: tuple[int, int],
    keep_sound_until: int = 0,
    keyint: int = 0,
) -> Path:
    """Write `parent`'s video with its frames `span` = (start, end) replaced by `new_frames` (an
    extension: start = end = the parent's frame count), with `audio` as the whole sound, to `path`
    (atomically: the file appears only once complete). The parent's packets before `start` and from
    `end` on are copied; both are keyframes of its video (or its end). The parent's own AAC packets are
    kept for the sound before sample `keep_sound_until` (less a frame's margin), so editing a clip again
    and again never re-encodes its beginning; the rest is `audio` newly encoded."""
    path = Path(path)
    start, end = span
    tmp = temp_path_for(path)
    segment = path.with_name(f".{path.name}.segment.partial")  # (a kill's leftover is swept like any partial)
    try:
        with holding(tmp):
            # (the same encoder and settings as every clip; the whole sound, so its packets line up with the parent's)
            media.encode_mp4(segment, new_frames, fps, audio, sample_rate, keyint=keyint)
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
                parent_video, parent_sound, new_video, new_sound = [], [], [], []  # (one pass over each file)
                for packet in p_in.demux():
                    if packet.dts is None:
                        continue
                    if packet.stream.index == p_video.index:
                        parent_video.append(packet)
                    elif p_sound is not None and packet.stream.index == p_sound.index:
                        parent_sound.append(packet)
                for packet in n_in.demux():
                    if packet.dts is not None:
                        (new_video if packet.stream.index == n_video.index else new_sound).append(packet)
                head, tail = kept_packets(parent_video, int(ticks), start, end, parent.name)
                with av.open(str(tmp), mode="w", format="mp4") as out:
                    for key, value in metadata.items():
                        out.metadata[key] = value
                    video = out.add_stream_from_template(p_video)
                    sound = out.add_stream_from_template(n_sound) if n_sound is not None else None
                    shift = (start + len(new_frames) - end) * int(ticks)
                    for packets, offset in ((head, 0), (new_video, start * int(ticks)), (tail, shift)):
                        for packet in packets:
                            packet.pts += offset
                            packet.dts += offset
                            packet.stream = video
                            out.mux(packet)
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


def kept_packets(packets: list, ticks: int, start: int, end: int, name: str) -> tuple[list, list]:
    """The parent's video packets (in decode order) that hold its frames before `start` and from `end`
    on: cut at the keyframes there, checked to hold exactly those frames (a closed group of pictures
    never refers across a keyframe), else `BadInput` (field `edit`)."""
    total = len(packets)

    def keyframe_at(frame: int) -> int:
        if frame == total:
            return total
        for i, packet in enumerate(packets):
            if packet.is_keyframe and packet.pts == frame * ticks:
                return i
        raise BadInput(f"edit: frame {frame} of the parent clip {name} is not a keyframe", field="edit")

    head, tail = packets[: keyframe_at(start)], packets[keyframe_at(end) :]
    if sorted(p.pts for p in head) != [i * ticks for i in range(start)] or sorted(p.pts for p in tail) != [
        i * ticks for i in range(end, total)
    ]:
        raise BadInput(f"edit: the parent clip {name}'s frames cannot be cut at {start} and {end}", field="edit")
    return head, tail
