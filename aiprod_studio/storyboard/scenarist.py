"""The rule-based scenarist: a script becomes a storyboard's shots, deterministically.

`split_script` honours explicit markers when the script has any — `Shot 1:` / `SHOT:` /
`Plan 2 :`, `---`, transitions (`CUT TO:`, `FADE TO:`, `COUPE FRANCHE :`, `FONDU
ENCHAÎNÉ`), scene headings (`INT.` / `EXT.`), numbered lists — otherwise blank-line
paragraphs, otherwise sentences (short ones merged). A first `Style: …` line (`Style :`,
`Look:`, `Ton :`) is carried into every shot's prompt; `Title: …` / `Titre :` names the
storyboard. Durations come from hints like `(3s)`, `[2,5 s]`, `(4 sec)`, else an even
split of the target total; they are whole frames at the storyboard's fps, and the split
gives the target exactly. Seeds are `base_seed + index`. Same script, same shots.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from pydantic import ValidationError

from aiprod_studio.errors import BadInput
from aiprod_studio.recipe import MAX_PROMPT_CHARS, MAX_SEED, RECIPE_DEFAULTS
from aiprod_studio.storyboard.board import (
    MAX_FILM_S,
    MAX_SHOT_S,
    MAX_SHOTS,
    MIN_SHOT_FRAMES,
    Storyboard,
    check_storyboard,
    validation_error,
)
from aiprod_studio.text import check_text

MAX_SCRIPT_CHARS = 50_000
DEFAULT_SHOT_S = 3.0
MERGE_BELOW_WORDS = 6

_CONTROL_RE = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")
_NBSP = {"\u00a0": " ", "\u202f": " ", "\u2009": " ", "\u2007": " "}
_STYLE_RE = re.compile(r"^\s*(?:style|look|ton|style visuel|visual style)\s*:\s*(?P<v>.+?)\s*$", re.I)
_TITLE_RE = re.compile(r"^\s*(?:title|titre)\s*:\s*(?P<v>.+?)\s*$", re.I)
_SHOT_RE = re.compile(
    r"^\s*(?:shot|plan|sc[eè]ne|scene|s[eé]quence|sequence)\s*(?:n[°o]\s*)?(?P<n>\d+)?\s*"
    r"(?:[:.)\-–—]\s*|$)(?P<rest>.*)$",
    re.I,
)
_RULE_RE = re.compile(r"^\s*(?:-{3,}|\*{3,}|_{3,}|={3,})\s*$")
_TRANSITION_RE = re.compile(
    r"^\s*(?P<t>(?:smash\s+)?cut\s+to|fade\s+(?:in|out|to(?:\s+black)?)|dissolve\s+to|"
    r"match\s+cut(?:\s+to)?|coupe\s+franche|coupe|fondu\s+encha[iî]n[eé]|encha[iî]n[eé]|"
    r"fondu(?:\s+au\s+noir)?)\s*[:.]?\s*(?P<rest>.*)$",
    re.I,
)
_HEADING_RE = re.compile(r"^\s*(?P<h>(?:INT|EXT|INT\.?\s*/\s*EXT|I/E)\.?\s+\S.*)$")
_NUMBERED_RE = re.compile(r"^\s*(?P<n>\d{1,3})\s*[.)]\s+(?P<rest>\S.*)$")
_HINT_RE = re.compile(r"[(\[]\s*(?P<v>\d+(?:[.,]\d+)?)\s*(?:s|sec|secs|seconds?|secondes?)\s*[)\]]", re.I)
_SENTENCE_RE = re.compile(r"(?<=[.!?…。])[\"'»”’)\]]*\s+(?=[\"'«“‘(\[]?\s*[A-ZÀ-ÖØ-Þ0-9])")


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
    has_markers = any(
        _SHOT_RE.match(ln)
        or _RULE_RE.match(ln)
        or _TRANSITION_RE.match(ln)
        or _HEADING_RE.match(ln)
        or _NUMBERED_RE.match(ln)
        for ln in lines
    )
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


def shot_prompt(text: str, style: str, title: str = "") -> str:
    """A shot's prompt: its text, after the place its scene heading names, before the style line."""
    text = text.strip()
    place = _place(title)
    if place and place.lower() != text.lower().rstrip("."):
        text = f"{place}. {text}"
    if not style:
        return text
    end = "" if text[-1:] in ".!?…" else "."
    style = style.rstrip(".")
    return f"{text}{end} {style[:1].upper()}{style[1:]}."


def split_script(
    script: str,
    fps: int = RECIPE_DEFAULTS["fps"],
    target_s: float | None = None,
    base_seed: int = 0,
    default_shot_s: float = DEFAULT_SHOT_S,
    **settings: Any,
) -> Storyboard:
    """Turn a script into a storyboard (same script and arguments, same shots)."""
    # 1. Check the input.
    if not isinstance(script, str) or not script.strip():
        raise BadInput("script is empty: write a few sentences, or shots like `Shot 1: …`", field="script")
    if len(script) > MAX_SCRIPT_CHARS:
        raise BadInput(
            f"script must be at most {MAX_SCRIPT_CHARS} characters, got {len(script)}: split it into "
            "several storyboards",
            field="script",
        )
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
    segments: list[tuple[str, str, float | None]] = []  # (title, text, duration hint)
    for seg_title, text in _segments(lines):
        hints = [float(h.replace(",", ".")) for h in _HINT_RE.findall(text)]
        text = _clean(_HINT_RE.sub(" ", text))
        if not text:
            continue
        prompt = shot_prompt(text, style, seg_title)
        if len(prompt) > MAX_PROMPT_CHARS:  # too long for one clip: one shot per sentence group
            segments += [(seg_title, s, None) for s in _sentences(text)]
        else:
            segments.append((seg_title, text, hints[0] if hints else None))
    if not segments:
        raise BadInput("script has no shot text (only markers, headings or a style line)", field="script")
    if len(segments) > MAX_SHOTS:
        raise BadInput(
            f"script makes {len(segments)} shots; at most {MAX_SHOTS} per storyboard: split it", field="script"
        )

    # 3. Durations in whole frames: hints as given, the rest share what is left of the target.
    for i, (_, _, h) in enumerate(segments):
        if h and h > MAX_SHOT_S:
            raise BadInput(
                f"shot {i + 1}: duration_s must be at most {MAX_SHOT_S:g} seconds, got {h:g} (its duration hint)",
                field="duration_s",
            )
    fixed = {i: max(MIN_SHOT_FRAMES, round(h * fps)) for i, (_, _, h) in enumerate(segments) if h}
    free = [i for i in range(len(segments)) if i not in fixed]
    frames = dict(fixed)
    if free:
        if target_s is None:
            each = [max(MIN_SHOT_FRAMES, round(default_shot_s * fps))] * len(free)
        else:
            left = round(target_s * fps) - sum(fixed.values())
            if left < len(free) * max(MIN_SHOT_FRAMES, round(0.5 * fps)):
                raise BadInput(
                    f"target_s {target_s:g} leaves {max(left, 0) / fps:.2f}s for {len(free)} shots after "
                    f"the duration hints ({sum(fixed.values()) / fps:.2f}s): raise it or remove hints",
                    field="target_s",
                )
            base, extra = divmod(left, len(free))
            each = [base + (1 if k < extra else 0) for k in range(len(free))]
        frames.update(zip(free, each, strict=True))

    # 4. The shots (validated with the storyboard, so an error names its shot).
    shots = [
        {
            "prompt": shot_prompt(text, style, seg_title),
            "text": text,
            "title": seg_title,
            "duration_s": round(frames[i] / fps, 6),
            "seed": min(base_seed + i, MAX_SEED),
        }
        for i, (seg_title, text, _) in enumerate(segments)
    ]
    try:
        board = Storyboard.model_validate(
            dict(
                title=title or _clean(segments[0][1])[:60] or "Untitled",
                script=script,
                style=style,
                fps=fps,
                base_seed=base_seed,
                shots=shots,
                **settings,
            )
        )
    except ValidationError as exc:
        raise validation_error(exc) from None
    check_storyboard(board)
    return board
