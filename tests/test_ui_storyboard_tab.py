"""The Storyboard tab's handlers, driven the way Gradio drives them (no browser)."""

from __future__ import annotations

import gradio as gr
import pandas as pd
import pytest

from engine.render import media

SCRIPT = "Title: Harbour\nStyle: soft light\nShot 1: boats in a harbour (0.5s)\nShot 2: a gull on a post (0.5s)"


def split(handlers):
    board, table, title, saved, status = handlers["on_sb_split"](SCRIPT, "aiprod-tiny-ltx2", "", 24, 0, 5, 0)
    return board, pd.DataFrame(table, columns=["#", "prompt", "duration (s)", "seed", "LoRAs", "status"]), title


def form(board, table, title):
    return [board, table, title, "aiprod-tiny-ltx2", "", 24, 0]


def test_split_shows_shots_and_saves_the_storyboard(handlers, studio):
    board, table, title = split(handlers)
    assert title == "Harbour" and board["id"] is not None
    assert table.values.tolist() == [
        [1, "boats in a harbour. Soft light.", 0.5, 5, "", "to render"],
        [2, "a gull on a post. Soft light.", 0.5, 6, "", "to render"],
    ]
    with pytest.raises(gr.Error, match="empty"):
        handlers["on_sb_split"]("  ", "aiprod-tiny-ltx2", "", 24, 0, 0, 0)


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
    with pytest.raises(gr.Error, match="shot: choose 1–2"):
        handlers["on_sb_delete"](7, *form(board4, pd.DataFrame([r for r in rows[:2]]), title))


def test_render_all_then_edit_one_shot_renders_one_job_and_a_new_film(handlers, studio):
    board, table, title = split(handlers)
    first, *_, (state, rows, text, gallery, film, _) = list(handlers["on_sb_render"](1, *form(board, table, title)))
    shot_jobs = sorted(j["id"] for j in studio.history.jobs())
    assert first[2] == "Rendering shots [1, 2]…" and sorted(first[5]) == shot_jobs  # the page's own jobs, kept
    assert handlers["on_sb_cancel"](first[5]) == "Nothing is rendering from this page."  # …all done by now
    assert text.startswith("Film: 24 frames") and media.probe(film)["video"]["frames"] == 24
    assert [r[5] for r in rows] == ["rendered", "rendered"] and len(gallery) == 2
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
    split(handlers)
    saved, models = handlers["on_sb_page_load"]()
    assert saved["choices"] == ["1: Harbour"] and models["choices"] == ["aiprod-tiny-ltx2"]


def test_cancel_and_export_messages(handlers, tmp_path):
    assert handlers["on_sb_cancel"]([]) == "Nothing is rendering from this page."
    board, table, title = split(handlers)
    with pytest.raises(gr.Error, match="not been assembled"):
        handlers["on_sb_export"](str(tmp_path), *form(board, table, title))


def test_a_shot_lora_from_the_table(handlers, studio):
    board, table, title = split(handlers)
    table.iloc[1, 4] = "nope:0.5"
    with pytest.raises(gr.Error, match="'nope' is not a lora entry"):
        list(handlers["on_sb_render"](1, *form(board, table, title)))
    table.iloc[1, 4] = "x:9"
    with pytest.raises(gr.Error, match="between -2 and 2"):
        handlers["on_sb_save"](*form(board, table, title))
