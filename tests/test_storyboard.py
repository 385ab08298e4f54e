"""The rule-based scenarist: markers, paragraphs, sentences, style, durations, seeds, bad scripts."""

from __future__ import annotations

import pytest

from aiprod_studio.errors import BadInput
from aiprod_studio.storyboard import (Shot, Storyboard, render_frames, shot_frames, split_script,
                                      storyboard_from_json)

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
        "The car stops on a bridge over a dark river"]
    assert all(s.prompt.endswith("Cinematic, film grain, teal and orange.") for s in board.shots)
    assert [s.title for s in board.shots] == ["Shot 1", "Shot 2", "Shot 3"]
    assert [s.seed for s in board.shots] == [100, 101, 102]
    assert [s.duration_s for s in board.shots] == [3.0, 3.0, 2.5]  # hints, else the default length


@pytest.mark.parametrize("script, texts", [
    ("A dog runs.\n---\nA cat sleeps.\n***\nA bird sings.", ["A dog runs.", "A cat sleeps.", "A bird sings."]),
    ("1. A dog runs on the beach\n2) A cat sleeps\n3. A bird sings", ["A dog runs on the beach", "A cat sleeps",
                                                                    "A bird sings"]),
    ("INT. KITCHEN - NIGHT\nA man waits by the window.\nCUT TO:\nEXT. STREET - DAY\nRain falls.",
     ["A man waits by the window.", "Rain falls."]),
    ("SHOT: waves at dawn\nSHOT: gulls over the harbour", ["waves at dawn", "gulls over the harbour"]),
    ("First paragraph about a forest.\n\nSecond paragraph, a river.\n\n\nThird: mountains.",
     ["First paragraph about a forest.", "Second paragraph, a river.", "Third: mountains."]),
])
def test_markers_and_paragraphs(script, texts):
    assert [s.text for s in split_script(script).shots] == texts


def test_scene_headings_give_the_place_to_the_prompt():
    board = split_script("INT. KITCHEN - NIGHT\nA man waits.\nEXT. STREET - DAY")
    assert [s.prompt for s in board.shots] == ["Kitchen - night. A man waits.", "Street - day"]
    assert board.shots[0].title == "INT. KITCHEN - NIGHT"


def test_french_script():
    script = ("Titre : La cuisine\nStyle : aquarelle, couleurs douces\n"
              "Plan 1 : Une femme prépare du thé (2,5 s)\nCOUPE FRANCHE :\n"
              "EXT. JARDIN - JOUR\nUn chat saute sur le mur.\nFONDU ENCHAÎNÉ\n"
              "Plan 3 : « Le ciel s’assombrit », dit-elle\u202f!")
    board = split_script(script, target_s=10, fps=24)
    assert board.title == "La cuisine"
    assert [s.text for s in board.shots] == ["Une femme prépare du thé", "Un chat saute sur le mur.",
                                             "« Le ciel s’assombrit », dit-elle !"]
    assert board.shots[1].prompt == "Jardin - jour. Un chat saute sur le mur. Aquarelle, couleurs douces."
    assert board.shots[0].duration_s == 2.5
    assert sum(shot_frames(s.duration_s, 24) for s in board.shots) == 240


def test_plain_paragraph_splits_by_sentences_stably():
    text = ("The sun rises slowly over the calm grey sea. A small boat leaves the harbour with three fishermen. "
            "Gulls. The wind picks up and the waves grow taller by the minute. A storm is coming from the west!")
    a, b = split_script(text), split_script(text)
    assert a == b
    assert [s.text for s in a.shots] == [
        "The sun rises slowly over the calm grey sea.",
        "A small boat leaves the harbour with three fishermen.",
        "Gulls. The wind picks up and the waves grow taller by the minute.",
        "A storm is coming from the west!"]


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


@pytest.mark.parametrize("script, field, message", [
    ("", "script", "empty"),
    ("   \n\t ", "script", "empty"),
    ("Shot 1:\nShot 2:\n---\nCUT TO:\nStyle: noir", "script", "no shot text"),
    ("x" * 100_000, "script", "at most 50000 characters"),
    ("\n---\n".join(f"a view number {i}" for i in range(150)), "script", "at most 100"),
])
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
