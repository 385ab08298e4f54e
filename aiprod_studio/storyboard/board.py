"""Storyboards: a script becomes shots, deterministically (the rule-based scenarist).

`split_script` honours explicit markers when the script has any — `Shot 1:` / `SHOT:` /
`Plan 2 :`, `---`, transitions (`CUT TO:`, `FADE TO:`, `COUPE FRANCHE :`, `FONDU
ENCHAÎNÉ`), scene headings (`INT.` / `EXT.`), numbered lists — otherwise blank-line
paragraphs, otherwise sentences (short ones merged). A first `Style: …` line (`Style :`,
`Look:`, `Ton :`) is carried into every shot's prompt; `Title: …` / `Titre :` names the
storyboard. Durations come from hints like `(3s)`, `[2,5 s]`, `(4 sec)`, else an even
split of the target total; they are whole frames at the storyboard's fps, and the split
gives the target exactly. Seeds are `base_seed + index`. Same script, same shots.

A shot's film length is `frames = round(duration_s × fps)`; it is rendered with the
smallest valid clip length `8k+1 ≥ frames` and trimmed when the film is assembled.

A storyboard JSON (a file, the API's argument) is bounded before it is parsed: size and
nesting depth. The output of `storyboard split --json` (and any `--json` envelope holding a
`storyboard`) is accepted as it is, so what the CLI prints can be rendered again.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from itertools import accumulate
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from aiprod_studio.errors import BadInput
from aiprod_studio.recipe import MAX_PROMPT_CHARS, MAX_SEED, LoraRef, check_text, describe_error, echo, text_fields

MAX_SCRIPT_CHARS = 50_000
MAX_SHOTS = 100
MAX_CLIP_FRAMES = 1025
MIN_SHOT_FRAMES = 1
MAX_SHOT_S = 60.0  # a plain bound; the clip frame limit at the storyboard's fps may be lower
MAX_FILM_S = 3600.0
MAX_STORYBOARD_CHARS = 5_000_000  # a storyboard JSON, script included, is well under 1 MB
MAX_JSON_DEPTH = 32  # a storyboard nests 5 deep (board, shots, shot, loras, lora), an envelope one more
MAX_ID = 2**63 - 1  # SQLite's largest row id
ENVELOPE_KEYS = {"ok"}  # what the CLI's `--json` adds around a command's result
DEFAULT_SHOT_S = 3.0
MERGE_BELOW_WORDS = 6

_CONTROL_RE = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")
_NBSP = {"\u00a0": " ", "\u202f": " ", "\u2009": " ", "\u2007": " "}
_STYLE_RE = re.compile(r"^\s*(?:style|look|ton|style visuel|visual style)\s*:\s*(?P<v>.+?)\s*$", re.I)
_TITLE_RE = re.compile(r"^\s*(?:title|titre)\s*:\s*(?P<v>.+?)\s*$", re.I)
_SHOT_RE = re.compile(r"^\s*(?:shot|plan|sc[eè]ne|scene|s[eé]quence|sequence)\s*(?:n[°o]\s*)?(?P<n>\d+)?\s*"
                      r"(?:[:.)\-–—]\s*|$)(?P<rest>.*)$", re.I)
_RULE_RE = re.compile(r"^\s*(?:-{3,}|\*{3,}|_{3,}|={3,})\s*$")
_TRANSITION_RE = re.compile(r"^\s*(?P<t>(?:smash\s+)?cut\s+to|fade\s+(?:in|out|to(?:\s+black)?)|dissolve\s+to|"
                            r"match\s+cut(?:\s+to)?|coupe\s+franche|coupe|fondu\s+encha[iî]n[eé]|encha[iî]n[eé]|"
                            r"fondu(?:\s+au\s+noir)?)\s*[:.]?\s*(?P<rest>.*)$", re.I)
_HEADING_RE = re.compile(r"^\s*(?P<h>(?:INT|EXT|INT\.?\s*/\s*EXT|I/E)\.?\s+\S.*)$")
_NUMBERED_RE = re.compile(r"^\s*(?P<n>\d{1,3})\s*[.)]\s+(?P<rest>\S.*)$")
_HINT_RE = re.compile(r"[(\[]\s*(?P<v>\d+(?:[.,]\d+)?)\s*(?:s|sec|secs|seconds?|secondes?)\s*[)\]]", re.I)
_SENTENCE_RE = re.compile(r"(?<=[.!?…。])[\"'»”’)\]]*\s+(?=[\"'«“‘(\[]?\s*[A-ZÀ-ÖØ-Þ0-9])")


class Shot(BaseModel):
    """One shot: its own prompt, duration, seed and LoRAs."""

    model_config = ConfigDict(extra="forbid")

    prompt: str
    duration_s: float
    seed: int = Field(ge=0, le=MAX_SEED)
    text: str = ""  # the script's words for this shot, before the style line was added
    title: str = ""  # a scene heading or marker label
    negative_prompt: str = ""
    loras: list[LoraRef] = Field(default_factory=list)

    _text_fields = text_fields("prompt", "text", "title", "negative_prompt")

    @field_validator("duration_s")
    @classmethod
    def _duration(cls, v: float) -> float:
        if not (math.isfinite(v) and v > 0):  # the upper bound depends on the fps: `check_storyboard`
            raise ValueError(f"must be a number of seconds more than 0, got {v}")
        return v

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, v: str) -> str:
        v = v.strip()
        if not v:
            raise ValueError("must not be empty")
        if len(v) > MAX_PROMPT_CHARS:
            raise ValueError(f"must be at most {MAX_PROMPT_CHARS} characters, got {len(v)}")
        return v


class Storyboard(BaseModel):
    """A titled, ordered list of shots with the settings they share."""

    model_config = ConfigDict(extra="forbid")

    id: int | None = None
    title: str = "Untitled"
    script: str = ""
    style: str = ""
    model: str | None = None  # None: the studio's default model
    preset: str | None = None
    fps: int = Field(default=24, ge=1, le=60)
    width: int | None = None  # None: the model's default
    height: int | None = None
    steps: int | None = None
    guidance: float | None = None
    quantization: str = "none"
    base_seed: int = Field(default=0, ge=0, le=MAX_SEED)
    crossfade_s: float = Field(default=0.0, ge=0, le=2.0)
    shots: list[Shot] = Field(default_factory=list)

    _text_fields = text_fields("title", "script", "style", "model", "preset", "quantization")

    @field_validator("id", mode="before")
    @classmethod
    def _id(cls, v: Any) -> Any:
        if v is not None and (type(v) is not int or not 1 <= v <= MAX_ID):
            raise ValueError(f"must be a whole number from 1 to {MAX_ID} (a storyboard saved in this studio; "
                             f"leave it out for a new one), got {echo(v)}")
        return v

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), ensure_ascii=False, indent=1)


def shot_frames(duration_s: float, fps: int) -> int:
    """The shot's length in the film, in frames."""
    return max(MIN_SHOT_FRAMES, round(duration_s * fps))


def render_frames(frames: int) -> int:
    """The shortest valid clip (8k+1 frames, at least 9) that covers `frames`."""
    return max(9, 8 * math.ceil((frames - 1) / 8) + 1)


def check_storyboard(board: Storyboard) -> None:
    """Refuse what cannot be rendered, naming the shot and the value."""
    if not board.shots:
        raise BadInput("shots: the storyboard has no shots", field="shots")
    if len(board.shots) > MAX_SHOTS:
        raise BadInput(f"shots: at most {MAX_SHOTS} per storyboard, got {len(board.shots)}", field="shots")
    for i, shot in enumerate(board.shots, start=1):
        if not (isinstance(shot.duration_s, (int, float)) and math.isfinite(shot.duration_s)
                and 0 < shot.duration_s <= MAX_SHOT_S):  # (checked again: a shot can be changed in place)
            raise BadInput(f"shot {i}: duration_s must be at most {MAX_SHOT_S:g} seconds (and more than 0), "
                           f"got {shot.duration_s!r}", field="duration_s")
        n = render_frames(shot_frames(shot.duration_s, board.fps))
        if n > MAX_CLIP_FRAMES:
            longest = (MAX_CLIP_FRAMES - 1) / board.fps
            raise BadInput(f"shot {i}: duration_s must be at most {longest:.1f}s at {board.fps} fps, "
                           f"got {shot.duration_s}", field="duration_s")
    total = sum(shot_frames(s.duration_s, board.fps) for s in board.shots) / board.fps
    if total > MAX_FILM_S:
        raise BadInput(f"the film would last {total:.1f}s; at most {MAX_FILM_S:g}s per storyboard: shorten the shots' "
                       "duration_s or split it", field="duration_s")


def _validation_error(exc: ValidationError) -> BadInput:
    """A storyboard's validation errors, each naming its shot (`shot 2: duration_s …`)."""
    parts, fields = [], []
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        if len(loc) >= 3 and loc[0] == "shots" and isinstance(loc[1], int):
            parts.append(f"shot {loc[1] + 1}: {describe_error(err | {'loc': loc[2:]})}")
            fields.append("duration_s" if loc[2] == "duration_s" else "storyboard")
        else:
            parts.append(describe_error(err))
            fields.append(str(loc[0]) if loc and loc[0] in Storyboard.model_fields else "storyboard")
    return BadInput(f"storyboard {'; '.join(parts)}", field=fields[0] if fields else "storyboard")


def _json_depth(text: str) -> int:
    """How deep the JSON arrays and objects of `text` nest (brackets inside strings do not count)."""
    brackets = re.sub(r"[^\[\]{}]+", "", re.sub(r'"(?:[^"\\]++|\\.)*+"', "", text))
    return max(accumulate(1 if c in "[{" else -1 for c in brackets), default=0)


def _unwrap(data: Any) -> Any:
    """The storyboard inside what the CLI's `--json` printed; anything else as it is."""
    if not isinstance(data, dict) or not ENVELOPE_KEYS & data.keys():
        return data
    if data.get("ok") is not True:
        raise BadInput(f"storyboard: this is the output of a command that failed ({echo(data.get('error'))}), "
                       "not a storyboard", field="storyboard")
    if isinstance(data.get("storyboard"), dict):  # `storyboard enhance --json`, `inspect FILM --json`
        return data["storyboard"]
    return {k: v for k, v in data.items() if k not in ENVELOPE_KEYS}  # `storyboard split --json`


def storyboard_from_json(text: str | dict[str, Any]) -> Storyboard:
    """A storyboard from its JSON (or the CLI's `--json` output around it), checked; else `BadInput`."""
    # 1. Bound the text before parsing it.
    if isinstance(text, str):
        if len(text) > MAX_STORYBOARD_CHARS:
            raise BadInput(f"storyboard is {len(text):,} characters; at most {MAX_STORYBOARD_CHARS:,}",
                           field="storyboard")
        if (depth := _json_depth(text)) > MAX_JSON_DEPTH:
            raise BadInput(f"storyboard nests {depth} levels deep; a storyboard needs at most {MAX_JSON_DEPTH}",
                           field="storyboard")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BadInput(f"storyboard is not valid JSON: {exc}", field="storyboard") from None
    else:
        data = text
    # 2. The storyboard itself (taken out of a CLI envelope), strictly.
    data = _unwrap(data)
    if not isinstance(data, dict):
        raise BadInput(f"storyboard must be a JSON object, got {type(data).__name__}", field="storyboard")
    try:
        board = Storyboard.model_validate(data)
    except ValidationError as exc:
        raise _validation_error(exc) from None
    check_storyboard(board)
    return board


def read_storyboard_file(path: str | Path) -> Storyboard:
    """A storyboard JSON file (or what `storyboard split --json` printed), read within the size bound."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read(MAX_STORYBOARD_CHARS + 1)
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise BadInput(f"storyboard file {str(path)!r} cannot be read: {reason}", field="file") from None
    if len(text) > MAX_STORYBOARD_CHARS:
        raise BadInput(f"storyboard file {str(path)!r} is over {MAX_STORYBOARD_CHARS:,} characters: "
                       "not a storyboard", field="file")
    return storyboard_from_json(text)


# -- the rule-based scenarist ---------------------------------------------------------------------
def _normalise(script: str) -> str:
    script = unicodedata.normalize("NFC", script.replace("\r\n", "\n").replace("\r", "\n"))
    for k, v in _NBSP.items():
        script = script.replace(k, v)
    return "".join(ch for ch in script if ch in "\n\t" or unicodedata.category(ch)[0] != "C")


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip(" \t\n-–—:;,")


def _sentences(text: str) -> list[str]:
    parts = [p.strip() for p in _SENTENCE_RE.split(text) if p.strip()]
    merged: list[str] = []
    for p in parts:
        if merged and len(merged[-1].split()) < MERGE_BELOW_WORDS:
            merged[-1] = f"{merged[-1]} {p}"
        else:
            merged.append(p)
    if len(merged) > 1 and len(merged[-1].split()) < MERGE_BELOW_WORDS:
        last = merged.pop()
        merged[-1] = f"{merged[-1]} {last}"
    return merged


def _segments(lines: list[str]) -> list[tuple[str, str]]:
    """(title, text) per shot: by markers if the script has any, else paragraphs, else sentences."""
    has_markers = any(_SHOT_RE.match(ln) or _RULE_RE.match(ln) or _TRANSITION_RE.match(ln) or _HEADING_RE.match(ln)
                      or _NUMBERED_RE.match(ln) for ln in lines)
    if has_markers:
        segs: list[tuple[str, list[str]]] = [("", [])]
        for ln in lines:
            if m := _SHOT_RE.match(ln):
                segs.append((f"Shot {m['n']}" if m["n"] else "Shot", [m["rest"]]))
            elif _RULE_RE.match(ln):
                segs.append(("", []))
            elif m := _TRANSITION_RE.match(ln):
                segs.append((m["t"].upper(), [m["rest"]]))
            elif m := _HEADING_RE.match(ln):
                segs.append((m["h"].strip(), []))
            elif m := _NUMBERED_RE.match(ln):
                segs.append((f"{m['n']}.", [m["rest"]]))
            else:
                segs[-1][1].append(ln)
        out = []
        for title, body in segs:
            text = _clean(" ".join(body))
            if text:
                out.append((title, text))
            elif title and _HEADING_RE.match(title):  # a heading with no action: the place is the shot
                out.append((title, _place(title)))
        return out
    paragraphs = [_clean(" ".join(p.splitlines())) for p in re.split(r"\n\s*\n", "\n".join(lines))]
    paragraphs = [p for p in paragraphs if p]
    if len(paragraphs) > 1:
        return [("", p) for p in paragraphs]
    return [("", s) for s in _sentences(paragraphs[0])] if paragraphs else []


def _place(title: str) -> str:
    """`INT. KITCHEN - NIGHT` → `Kitchen - night` (the place a scene heading names), else ''."""
    m = re.match(r"^\s*(?:INT|EXT|INT\.?\s*/\s*EXT|I/E)\.?\s+(?P<p>.+)$", title)
    return m["p"].strip().capitalize() if m else ""


def _prompt(text: str, style: str, title: str = "") -> str:
    text = text.strip()
    place = _place(title)
    if place and place.lower() != text.lower().rstrip("."):
        text = f"{place}. {text}"
    if not style:
        return text
    end = "" if text[-1:] in ".!?…" else "."
    style = style.rstrip(".")
    return f"{text}{end} {style[:1].upper()}{style[1:]}."


def split_script(script: str, fps: int = 24, target_s: float | None = None, base_seed: int = 0,
                 default_shot_s: float = DEFAULT_SHOT_S, **settings: Any) -> Storyboard:
    """Turn a script into a storyboard (same script and arguments, same shots)."""
    # 1. Check the input.
    if not isinstance(script, str) or not script.strip():
        raise BadInput("script is empty: write a few sentences, or shots like `Shot 1: …`", field="script")
    if len(script) > MAX_SCRIPT_CHARS:
        raise BadInput(f"script must be at most {MAX_SCRIPT_CHARS} characters, got {len(script)}: split it into "
                       "several storyboards", field="script")
    try:
        check_text(script, surrogates_only=True)
    except ValueError as exc:
        raise BadInput(f"script {exc}", field="script") from None
    script = _CONTROL_RE.sub("", script)  # stray control characters carry nothing: dropped
    if not 1 <= fps <= 60:
        raise BadInput(f"fps must be between 1 and 60, got {fps}", field="fps")
    if target_s is not None and not 0 < target_s <= MAX_FILM_S:
        raise BadInput(f"target_s must be between 0 and {MAX_FILM_S:g} seconds, got {target_s}", field="target_s")

    # 2. Title and style lines, then the shots' texts.
    title, style, lines = "", "", []
    for ln in _normalise(script).split("\n"):
        if not style and (m := _STYLE_RE.match(ln)):
            style = _clean(m["v"])
        elif not title and (m := _TITLE_RE.match(ln)):
            title = _clean(m["v"])
        else:
            lines.append(ln)
    segments = []
    for seg_title, text in _segments(lines):
        hints = [float(h.replace(",", ".")) for h in _HINT_RE.findall(text)]
        text = _clean(_HINT_RE.sub(" ", text))
        if not text:
            continue
        prompt = _prompt(text, style, seg_title)
        if len(prompt) > MAX_PROMPT_CHARS:  # too long for one clip: one shot per sentence group
            segments += [(seg_title, s, None) for s in _sentences(text)]
        else:
            segments.append((seg_title, text, hints[0] if hints else None))
    if not segments:
        raise BadInput("script has no shot text (only markers, headings or a style line)", field="script")
    if len(segments) > MAX_SHOTS:
        raise BadInput(f"script makes {len(segments)} shots; at most {MAX_SHOTS} per storyboard: split it",
                       field="script")

    # 3. Durations in whole frames: hints as given, the rest share what is left of the target.
    for i, (_, _, h) in enumerate(segments):
        if h and h > MAX_SHOT_S:
            raise BadInput(f"shot {i + 1}: duration_s must be at most {MAX_SHOT_S:g} seconds, got {h:g} "
                           "(its duration hint)", field="duration_s")
    fixed = {i: max(MIN_SHOT_FRAMES, round(h * fps)) for i, (_, _, h) in enumerate(segments) if h}
    free = [i for i in range(len(segments)) if i not in fixed]
    frames = dict(fixed)
    if free:
        if target_s is None:
            each = [max(MIN_SHOT_FRAMES, round(default_shot_s * fps))] * len(free)
        else:
            left = round(target_s * fps) - sum(fixed.values())
            if left < len(free) * max(MIN_SHOT_FRAMES, round(0.5 * fps)):
                raise BadInput(f"target_s {target_s} leaves {max(left, 0) / fps:.2f}s for {len(free)} shots after "
                               f"the duration hints ({sum(fixed.values()) / fps:.2f}s): raise it or remove hints",
                               field="target_s")
            base, extra = divmod(left, len(free))
            each = [base + (1 if k < extra else 0) for k in range(len(free))]
        frames.update(zip(free, each))

    # 4. The shots (validated with the storyboard, so an error names its shot).
    shots = [{"prompt": _prompt(text, style, seg_title), "text": text, "title": seg_title,
              "duration_s": round(frames[i] / fps, 6), "seed": min(base_seed + i, MAX_SEED)}
             for i, (seg_title, text, _) in enumerate(segments)]
    try:
        board = Storyboard(title=title or _clean(segments[0][1])[:60] or "Untitled", script=script, style=style,
                           fps=fps, base_seed=base_seed, shots=shots, **settings)
    except ValidationError as exc:
        raise _validation_error(exc) from None
    check_storyboard(board)
    return board
