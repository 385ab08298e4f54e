"""The Storyboard tab's handlers, driven the way Gradio drives them (no browser)."""

from __future__ import annotations

import time

import pandas as pd
import pytest

from aiprod_studio.jobs.history import FINAL_STATUSES
from aiprod_studio.storyboard.db import StoryboardStore
from engine.render import media
from ui.components.shot_table import COLUMNS

SCRIPT = "Title: Harbour\nStyle: soft light\nShot 1: boats in a harbour (0.5s)\nShot 2: a gull on a post (0.5s)"


UNCHANGED = {"__type__": "update"}  # what `gr.update()` with no argument is: the widget keeps its value


def split(handlers, state=None):
    board, table, title, saved, status = handlers["on_sb_split"](state, SCRIPT, "aiprod-tiny-ltx2", "", 24, 0, 5, 0)
    return board, pd.DataFrame(table, columns=COLUMNS), title


def form(board, table, title):
    return [board, table, title, "aiprod-tiny-ltx2", "", 24, 0]


def test_split_shows_shots_and_save_keeps_one_storyboard(handlers, studio):
    board, table, title = split(handlers)
    assert title == "Harbour" and board["id"] is None
    assert table.values.tolist() == [
        [1, "boats in a harbour. Soft light.", 0.5, 5, "", "", "to render"],
        [2, "a gull on a post. Soft light.", 0.5, 6, "", "", "to render"],
    ]
    split(handlers, board)
    assert StoryboardStore(studio.history).list() == []  # Split alone saves nothing
    saved, *_ = handlers["on_sb_save"](*form(board, table, title))
    again, table, title = split(handlers, saved)  # Split again: the same storyboard, replaced on Save
    assert again["id"] == saved["id"]
    handlers["on_sb_save"](*form(again, table, title))
    assert [b["id"] for b in StoryboardStore(studio.history).list()] == [saved["id"]]
    out = handlers["on_sb_split"](again, "  ", "aiprod-tiny-ltx2", "", 24, 0, 0, 0)
    assert out[:4] == (UNCHANGED,) * 4 and "empty" in out[4]


def test_table_edits_and_row_operations(handlers):
    board, table, title = split(handlers)
    table.iloc[1, 1] = "a gull flies away"
    board2, rows, *_ = handlers["on_sb_duplicate"](2, *form(board, table, title))
    assert [r[1] for r in rows] == ["boats in a harbour. Soft light.", "a gull flies away", "a gull flies away"]
    board3, rows, *_ = handlers["on_sb_move_up"](3, *form(board2, pd.DataFrame(rows), title))
    board4, rows, *_ = handlers["on_sb_delete"](1, *form(board3, pd.DataFrame(rows), title))
    assert [r[1] for r in rows] == ["a gull flies away", "a gull flies away"]
    _, rows, *_ = handlers["on_sb_add_after"](2, *form(board4, pd.DataFrame(rows), title))
    assert rows[-1][1] == "a new shot" and len(rows) == 3
    out = handlers["on_sb_delete"](7, *form(board4, pd.DataFrame([r for r in rows[:2]]), title))
    assert out[:4] == (UNCHANGED,) * 4 and "shot: choose 1–2, got 7" in out[4]


def test_render_all_then_edit_one_shot_renders_one_job_and_a_new_film(handlers, studio):
    board, table, title = split(handlers)
    first, *_, (state, rows, text, gallery, film, _) = list(handlers["on_sb_render"](1, *form(board, table, title)))
    shot_jobs = sorted(j["id"] for j in studio.history.jobs())
    assert first[2] == "Rendering shots [1, 2]…" and sorted(first[5]) == shot_jobs  # the page's own jobs, kept
    assert handlers["on_sb_cancel"](first[5]) == "Nothing is rendering from this page."  # …all done by now
    assert text.startswith("Film: 24 frames") and media.probe(film)["video"]["frames"] == 24
    assert [r[-1] for r in rows] == ["rendered", "rendered"] and len(gallery) == 2
    jobs = studio.history.count()
    table = pd.DataFrame(rows)
    table.iloc[0, 1] = "boats leave the harbour at dawn"
    *_, (state, rows, text, gallery, film2, _) = list(handlers["on_sb_render"](1, *form(state, table, title)))
    assert studio.history.count() == jobs + 1 and film2 == film and "Film: 24 frames" in text
    assert studio.history.jobs(limit=1)[0]["prompt"] == "boats leave the harbour at dawn"
    choice = f"{state['id']}: Harbour"
    opened = handlers["on_sb_open"](choice)
    assert opened[0]["shots"][0]["prompt"] == "boats leave the harbour at dawn" and len(opened[-1]) == 2


def test_page_load_lists_saved_storyboards(handlers):
    handlers["on_sb_save"](*form(*split(handlers)))
    saved, models = handlers["on_sb_page_load"]()
    assert saved["choices"] == ["1: Harbour"] and models["choices"] == ["aiprod-tiny-ltx2"]


def test_cancel_and_export_messages(handlers, tmp_path):
    assert handlers["on_sb_cancel"]([]) == "Nothing is rendering from this page."
    board, table, title = split(handlers)
    assert "not been assembled" in handlers["on_sb_export"](str(tmp_path), *form(board, table, title))


def test_a_shot_lora_from_the_table(handlers, studio):
    board, table, title = split(handlers)
    table.iloc[1, 4] = "nope:0.5"
    (out,) = list(handlers["on_sb_render"](1, *form(board, table, title)))
    assert "shot 2: loras 'nope' is not a lora entry" in out[2] and out[1][1][1] == "a gull on a post. Soft light."
    table.iloc[1, 4] = "x:9"
    out = handlers["on_sb_save"](*form(board, table, title))
    assert "shot 2: loras: strength must be between -2 and 2" in out[4] and out[1] == UNCHANGED


@pytest.mark.parametrize(
    ("column", "value", "said"),
    [
        (2, "abc", "shot 2: duration must be a number of seconds > 0, got 'abc'"),
        (2, "-3", "shot 2: duration must be a number of seconds > 0, got '-3'"),
        (3, "1.5", "shot 2: seed must be a whole number from 0 to"),
        (1, " ", "shot 2: prompt must not be empty"),
    ],
)
def test_a_bad_cell_is_named_and_the_page_keeps_its_work(handlers, studio, column, value, said):
    board, table, title = split(handlers)
    table = table.astype(object)
    table.iloc[1, column] = value
    for name in ("on_sb_save", "on_sb_enhance", "on_sb_move_up"):
        args = form(board, table, title) if name != "on_sb_move_up" else [2, *form(board, table, title)]
        out = handlers[name](*args)
        assert out[:4] == (UNCHANGED,) * 4 and said in out[4], name  # table, menu and title kept
    (out,) = list(handlers["on_sb_render"](1, *form(board, table, title)))
    assert out[:2] == (UNCHANGED,) * 2 and out[3:] == (UNCHANGED,) * 3 and said in out[2]
    assert said in handlers["on_sb_export"]("/tmp", *form(board, table, title))
    assert "https://" not in out[2] and studio.history.count() == 0


def test_number_fields_are_checked_in_words(handlers):
    for args, said in [
        ((0, 0, 5, 0), "fps must be a whole number from 1 to 60, got 0"),
        ((24, -2, 5, 0), "total seconds must be a number from 0 to 3600, got -2"),
        ((24, 4000, 5, 0), "total seconds must be a number from 0 to 3600, got 4000"),
        ((24, 0, -1, 0), "base seed must be a whole number from 0 to"),
        ((24, 0, 5, 3), "crossfade (s) must be a number from 0 to 2, got 3"),
    ]:
        out = handlers["on_sb_split"](None, SCRIPT, "aiprod-tiny-ltx2", "", *args)
        assert out[:4] == (UNCHANGED,) * 4 and said in out[4]
    out = handlers["on_sb_split"](None, "Shot 1: boats (2s)\nShot 2: a gull", "aiprod-tiny-ltx2", "", 24, 1, 5, 0)
    assert "total seconds 1 leaves 0.00s for 1 shots" in out[4] and "target_s" not in out[4]
    board, table, title = split(handlers)
    out = handlers["on_sb_save"](board, table, title, "aiprod-tiny-ltx2", "", 61, 0)
    assert "fps must be a whole number from 1 to 60, got 61" in out[4]
    out = handlers["on_sb_delete"](0, *form(board, table, title))
    assert "shot # must be a whole number of 1 or more, got 0" in out[4]


def test_a_cancelled_render_says_cancelled_and_shows_each_shot(handlers, studio, monkeypatch):
    from aiprod_studio.errors import Cancelled
    from engine.film import produce

    board, table, title = split(handlers)
    real = produce.render_queued

    def stopped(studio_, worker, board_, only=None):  # the first shot is cancelled while it waits
        for event in real(studio_, worker, board_, only=only):
            for job in event.job_ids:
                worker.cancel(job)
            yield event
            while worker.status(event.job_ids[0])["status"] not in FINAL_STATUSES:
                time.sleep(0.05)
            raise Cancelled("shot 1 (job 1) cancelled")

    monkeypatch.setattr(produce, "render_queued", stopped)
    *_, last = list(handlers["on_sb_render"](1, *form(board, table, title)))
    assert "cancelled" in last[2] and "⚠" not in last[2]
    assert [r[-1] for r in last[1]] == ["to render (job 1 cancelled)", "to render (job 2 cancelled)"]  # not running


def test_open_with_nothing_chosen_or_a_deleted_board_keeps_the_page(handlers):
    for choice, said in [("", "choose one in the menu first"), ("7: Gone", "there is no storyboard '7: Gone'")]:
        with pytest.warns(UserWarning, match=said):  # the toast; the editor keeps what it shows
            assert handlers["on_sb_open"](choice) == UNCHANGED


def test_a_shot_starts_from_a_picture_dropped_for_it(handlers, studio, tmp_path):
    import numpy as np
    from PIL import Image

    from engine.film import shots as sb

    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 90, 3), dtype=np.uint8)).save(tmp_path / "p.jpg")
    board, table, title = split(handlers)
    board, rows, *_, status = handlers["on_sb_image"](str(tmp_path / "p.jpg"), 2, *form(board, table, title))
    assert "Shot 2 starts from the picture" in status
    sha = board["shots"][1]["image"]
    assert len(sha) == 64 and rows[1][5] == sha[:12] and rows[0][5] == ""
    assert studio.image_store().find(sha) is not None  # the original, kept by its sha256
    from aiprod_studio.storyboard.board import Storyboard

    recipe = sb.shot_recipe(studio, Storyboard.model_validate(board), 1)
    assert [(c.frame, c.strength) for c in recipe.conditions] == [(0, 1.0)]
    prepared = Image.open(studio.image_store().find(recipe.conditions[0].image))
    assert prepared.size == (recipe.width, recipe.height)  # cropped to the storyboard's size
    assert sb.shot_recipe(studio, Storyboard.model_validate(board), 0).conditions == []
    # emptying the cell drops the picture; a non-picture is refused and changes nothing
    table = pd.DataFrame(rows, columns=COLUMNS)
    table.iloc[1, 5] = ""
    saved, *_ = handlers["on_sb_save"](*form(board, table, title))
    assert saved["shots"][1]["image"] == ""
    (tmp_path / "x.png").write_text("no")
    out = handlers["on_sb_image"](str(tmp_path / "x.png"), 1, *form(board, pd.DataFrame(rows, columns=COLUMNS), title))
    assert out[:4] == (UNCHANGED,) * 4 and "is not a PNG, JPEG or WebP picture" in out[4]
