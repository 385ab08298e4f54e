"""The rule-based scenarist: markers, paragraphs, sentences, style, durations, seeds, bad scripts."""

from __future__ import annotations

import json

import pytest

from aiprod_studio.errors import BadInput
from aiprod_studio.storyboard.board import (
    Shot,
    Storyboard,
    read_storyboard_file,
    render_frames,
    shot_frames,
    storyboard_from_json,
)
from aiprod_studio.storyboard.scenarist import split_script

MARKED = """Title: Night Drive
Style: cinematic, film grain, teal and orange

Shot 1: A red car drives through a rainy city at night (3s)
Shot 2: Close up on the driver,
neon lights sliding over her face.
Shot 3: The car stops on a bridge over a dark river [2.5 s]
"""


def test_three_marked_shots_keep_their_text_and_carry_the_style():
    board = split_script(MARKED, fps=24, base_seed=100)
    assert board.title == "Night Drive" and board.style == "cinematic, film grain, teal and orange"
    assert [s.text for s in board.shots] == [
        "A red car drives through a rainy city at night",
        "Close up on the driver, neon lights sliding over her face.",
        "The car stops on a bridge over a dark river",
    ]
    assert all(s.prompt.endswith("Cinematic, film grain, teal and orange.") for s in board.shots)
    assert [s.title for s in board.shots] == ["Shot 1", "Shot 2", "Shot 3"]
    assert [s.seed for s in board.shots] == [100, 101, 102]
    assert [s.duration_s for s in board.shots] == [3.0, 3.0, 2.5]  # hints, else the default length


@pytest.mark.parametrize(
    "script, texts",
    [
        ("A dog runs.\n---\nA cat sleeps.\n***\nA bird sings.", ["A dog runs.", "A cat sleeps.", "A bird sings."]),
        (
            "1. A dog runs on the beach\n2) A cat sleeps\n3. A bird sings",
            ["A dog runs on the beach", "A cat sleeps", "A bird sings"],
        ),
        (
            "INT. KITCHEN - NIGHT\nA man waits by the window.\nCUT TO:\nEXT. STREET - DAY\nRain falls.",
            ["A man waits by the window.", "Rain falls."],
        ),
        ("SHOT: waves at dawn\nSHOT: gulls over the harbour", ["waves at dawn", "gulls over the harbour"]),
        (
            "First paragraph about a forest.\n\nSecond paragraph, a river.\n\n\nThird: mountains.",
            ["First paragraph about a forest.", "Second paragraph, a river.", "Third: mountains."],
        ),
    ],
)
def test_markers_and_paragraphs(script, texts):
    assert [s.text for s in split_script(script).shots] == texts


def test_scene_headings_give_the_place_to_the_prompt():
    board = split_script("INT. KITCHEN - NIGHT\nA man waits.\nEXT. STREET - DAY")
    assert [s.prompt for s in board.shots] == ["Kitchen - night. A man waits.", "Street - day"]
    assert board.shots[0].title == "INT. KITCHEN - NIGHT"


def test_french_script():
    script = (
        "Titre : La cuisine\nStyle : aquarelle, couleurs douces\n"
        "Plan 1 : Une femme prépare du thé (2,5 s)\nCOUPE FRANCHE :\n"
        "EXT. JARDIN - JOUR\nUn chat saute sur le mur.\nFONDU ENCHAÎNÉ\n"
        "Plan 3 : « Le ciel s’assombrit », dit-elle\u202f!"
    )
    board = split_script(script, target_s=10, fps=24)
    assert board.title == "La cuisine"
    assert [s.text for s in board.shots] == [
        "Une femme prépare du thé",
        "Un chat saute sur le mur.",
        "« Le ciel s’assombrit », dit-elle !",
    ]
    assert board.shots[1].prompt == "Jardin - jour. Un chat saute sur le mur. Aquarelle, couleurs douces."
    assert board.shots[0].duration_s == 2.5
    assert sum(shot_frames(s.duration_s, 24) for s in board.shots) == 240


def test_plain_paragraph_splits_by_sentences_stably():
    text = (
        "The sun rises slowly over the calm grey sea. A small boat leaves the harbour with three fishermen. "
        "Gulls. The wind picks up and the waves grow taller by the minute. A storm is coming from the west!"
    )
    a, b = split_script(text), split_script(text)
    assert a == b
    assert [s.text for s in a.shots] == [
        "The sun rises slowly over the calm grey sea.",
        "A small boat leaves the harbour with three fishermen.",
        "Gulls. The wind picks up and the waves grow taller by the minute.",
        "A storm is coming from the west!",
    ]


@pytest.mark.parametrize("target, fps, n", [(10, 24, 4), (7.3, 25, 3), (60, 30, 7), (1.0, 24, 2)])
def test_durations_add_up_to_the_target(target, fps, n):
    script = "\n---\n".join(f"Shot text number {i}" for i in range(n))
    board = split_script(script, fps=fps, target_s=target)
    frames = [shot_frames(s.duration_s, fps) for s in board.shots]
    assert abs(sum(frames) - round(target * fps)) <= len(frames)
    assert max(frames) - min(frames) <= 1  # an even split
    for f in frames:
        r = render_frames(f)
        assert r >= f and (r - 1) % 8 == 0 and r - f < 8 or r == 9


def test_hints_take_their_share_first():
    board = split_script("Shot 1: a (4s)\nShot 2: b\nShot 3: c", fps=24, target_s=10)
    assert [shot_frames(s.duration_s, 24) for s in board.shots] == [96, 72, 72]
    with pytest.raises(BadInput) as info:
        split_script("Shot 1: a (9.8s)\nShot 2: b\nShot 3: c", fps=24, target_s=10)
    assert info.value.field == "target_s"


@pytest.mark.parametrize(
    "script, field, message",
    [
        ("", "script", "empty"),
        ("   \n\t ", "script", "empty"),
        ("Shot 1:\nShot 2:\n---\nCUT TO:\nStyle: noir", "script", "no shot text"),
        ("x" * 100_000, "script", "at most 50000 characters"),
        ("\n---\n".join(f"a view number {i}" for i in range(150)), "script", "at most 100"),
    ],
)
def test_malformed_scripts_give_clear_errors(script, field, message):
    with pytest.raises(BadInput) as info:
        split_script(script)
    assert info.value.field == field and message in str(info.value)


def test_odd_but_valid_scripts_give_sensible_results():
    assert [s.text for s in split_script("just three words").shots] == ["just three words"]
    noisy = split_script("\x00\x07Shot 1: a fox\u200b runs\r\nShot 2: snow falls\r\n")
    assert [s.text for s in noisy.shots] == ["a fox runs", "snow falls"]  # control and zero-width chars dropped
    long_para = " ".join(f"Sentence number {i} describes a long slow pan across the valley." for i in range(60))
    board = split_script(long_para)
    assert all(len(s.prompt) <= 2000 for s in board.shots) and len(board.shots) > 1


def test_storyboard_json_round_trip_and_validation():
    board = split_script(MARKED)
    again = storyboard_from_json(board.to_json())
    assert again == board
    with pytest.raises(BadInput) as info:
        storyboard_from_json('{"shots": [{"prompt": "", "duration_s": 1, "seed": 0}]}')
    assert info.value.field == "storyboard" and "prompt" in str(info.value)
    with pytest.raises(BadInput, match="duration_s must be at most"):
        storyboard_from_json(Storyboard(shots=[Shot(prompt="x", duration_s=100, seed=0)]).model_dump())
    with pytest.raises(BadInput, match="not valid JSON"):
        storyboard_from_json("{nope")


SHOT = '{"prompt": "a lamp", "duration_s": 1, "seed": 0}'


def refused(text) -> BadInput:
    with pytest.raises(BadInput) as info:
        storyboard_from_json(text)
    return info.value


def test_text_that_cannot_be_stored_is_refused_naming_shot_and_position():
    err = refused(f'{{"shots": [{SHOT}, {{"prompt": "a \\ud800 lamp", "duration_s": 1, "seed": 1}}]}}')
    assert err.field == "storyboard"
    assert "shot 2: prompt contains an invalid character (lone surrogate U+D800 at position 2)" in str(err)
    err = refused(f'{{"script": "Shot 1: x\\u0000", "shots": [{SHOT}]}}')
    assert err.field == "script" and "script contains an invalid character (NUL U+0000 at position 9)" in str(err)
    err = refused(f'{{"title": "\\u001b[2J", "shots": [{SHOT}]}}')
    assert err.field == "title" and "control character U+001B at position 0" in str(err)
    with pytest.raises(BadInput) as info:
        split_script("Shot 1: a fox\nShot 2: a \udcff owl")
    assert info.value.field == "script" and "lone surrogate U+DCFF at position 24" in str(info.value)
    with pytest.raises(BadInput) as info:
        split_script("Shot 1: a fox", model="ltx\x00")
    assert info.value.field == "model" and "NUL" in str(info.value)
    # stray control characters of a script are dropped, from the shots and from the stored script alike
    noisy = split_script("\x00\x07Shot 1: a fox\u200b runs\r\nShot 2: snow falls\x1b\r\n")
    assert noisy.script == "Shot 1: a fox\u200b runs\r\nShot 2: snow falls\r\n"
    assert storyboard_from_json(noisy.to_json()) == noisy


def test_deep_or_huge_json_is_refused_before_parsing():
    err = refused('{"shots": ' + "[" * 10_000 + "]" * 10_000 + "}")
    assert err.field == "storyboard" and "nests 10001 levels deep" in str(err)
    err = refused('{"title": "' + "x" * 5_000_001 + '"}')
    assert err.field == "storyboard" and "at most 5,000,000" in str(err)
    brackets = "[{" * 100
    board = storyboard_from_json(f'{{"title": "{brackets}\\"", "shots": [{SHOT}]}}')  # inside a string
    assert board.title == brackets + '"'


@pytest.mark.parametrize("value", ["1e308", "1e400", "Infinity", "NaN", "-1", "0", "60.5", "-Infinity"])
def test_shot_durations_are_bounded_naming_the_shot(value):
    err = refused(f'{{"shots": [{SHOT}, {{"prompt": "x", "duration_s": {value}, "seed": 1}}]}}')
    assert err.field == "duration_s" and "shot 2: duration_s" in str(err), str(err)


def test_film_length_and_split_targets_are_bounded():
    long_film = '{{"fps": 1, "shots": [{}]}}'.format(", ".join(['{"prompt": "x", "duration_s": 60, "seed": 0}'] * 61))
    err = refused(long_film)
    assert err.field == "duration_s" and "the film would last 3660.0s; at most 3600s" in str(err)
    for target in (1e308, float("inf"), float("nan"), -1, 0, 3601):
        with pytest.raises(BadInput) as info:
            split_script("Shot 1: a\nShot 2: b", target_s=target)
        assert info.value.field == "target_s"
    for hint in ("(61s)", "(" + "9" * 400 + "s)"):
        with pytest.raises(BadInput) as info:
            split_script(f"Shot 1: a\nShot 2: b {hint}")
        assert info.value.field == "duration_s" and "shot 2: duration_s must be at most 60 seconds" in str(info.value)
    with pytest.raises(BadInput) as info:
        split_script("Shot 1: a", crossfade_s=5)  # a bad setting is BadInput, not a raw validation error
    assert info.value.field == "crossfade_s"


@pytest.mark.parametrize("value", [str(2**70), "-1", "0", "3.0", "3.5", "true", '"3"'])
def test_an_id_must_be_a_row_id(value):
    err = refused(f'{{"id": {value}, "shots": [{SHOT}]}}')
    assert err.field == "id" and "id must be a whole number from 1 to 9223372036854775807" in str(err)
    assert storyboard_from_json(f'{{"id": 12, "shots": [{SHOT}]}}').id == 12


def test_the_cli_json_output_is_a_storyboard_file():
    board = split_script(MARKED)
    printed = json.dumps({"ok": True, **board.model_dump(mode="json")})  # `storyboard split --json`
    assert storyboard_from_json(printed) == board
    enhanced = json.dumps({"ok": True, "storyboard": board.model_dump(mode="json"), "report": [], "out": "b.json"})
    assert storyboard_from_json(enhanced) == board  # `storyboard enhance --json`, `inspect FILM --json`
    err = refused(json.dumps({"ok": True, **board.model_dump(mode="json"), "colour": "red"}))
    assert err.field == "storyboard" and "unknown field 'colour'" in str(err)  # the storyboard stays strict
    err = refused('{"ok": false, "error": "script is empty", "field": "script", "exit_code": 2}')
    assert err.field == "storyboard" and "output of a command that failed ('script is empty')" in str(err)


def test_storyboard_files_are_read_within_bounds(tmp_path):
    good = tmp_path / "board.json"
    good.write_text(json.dumps({"ok": True, **split_script(MARKED).model_dump(mode="json")}), encoding="utf-8")
    assert read_storyboard_file(good) == split_script(MARKED)
    latin1 = tmp_path / "latin1.json"
    latin1.write_bytes(b'{"title": "caf\xe9", "shots": []}')
    huge = tmp_path / "huge.json"
    huge.write_text(" " * 5_000_001)
    for path, fragment in [
        (latin1, "cannot be read"),
        (tmp_path / "none.json", "cannot be read"),
        (huge, "over 5,000,000 characters"),
    ]:
        with pytest.raises(BadInput) as info:
            read_storyboard_file(path)
        assert info.value.field == "file" and fragment in str(info.value)
