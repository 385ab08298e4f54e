"""An export destination the user types: refused in words naming the field, never `[Errno …]`."""

from __future__ import annotations

import pytest

from aiprod_studio.errors import BadInput
from aiprod_studio.files.folders import writable_folder


def test_a_missing_folder_is_created_with_its_parents(tmp_path):
    made = writable_folder(f"  {tmp_path}/a/b  ", "to")
    assert made == tmp_path / "a" / "b" and made.is_dir()


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("", "to: give a folder to write into"),
        ("{file}", "to must be a folder, got the file"),
        ("{file}/inside", "to: cannot create the folder"),
        ("a\x00b", "to: cannot create the folder"),
        ("~nobody-here-at-all/x", "to: cannot create the folder"),
        ("x" * 5000, "to: cannot create the folder"),
    ],
)
def test_a_folder_that_cannot_hold_files_is_refused_naming_the_field(tmp_path, value, says):
    file = tmp_path / "clip.mp4"
    file.write_bytes(b"x")
    with pytest.raises(BadInput) as caught:
        writable_folder(value.format(file=file), "to")
    assert says in str(caught.value) and "Errno" not in str(caught.value) and caught.value.field == "to"


def test_the_film_export_refuses_a_folder_below_a_file(studio, tmp_path):
    from aiprod_studio.storyboard.board import Storyboard
    from engine.film import edl

    film = tmp_path / "film.mp4"
    film.write_bytes(b"x")
    board = Storyboard.model_validate({"title": "t", "shots": [{"prompt": "a red car", "duration_s": 1, "seed": 1}]})
    with pytest.raises(BadInput, match="folder: cannot create the folder") as caught:
        edl.export(board, [], film, film / "exports")
    assert "Errno" not in str(caught.value)
