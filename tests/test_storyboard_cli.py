"""`storyboard split` and `storyboard render` in a subprocess."""

from __future__ import annotations

import json

from engine.render import media


def test_split_then_render_then_rerender_only_the_edited_shot(cli, tmp_path):
    script = tmp_path / "script.txt"
    script.write_text(
        "Title: Harbour\nStyle: soft light\nShot 1: boats in a harbour (0.5s)\nShot 2: a gull on a post (0.5s)\n",
        encoding="utf-8",
    )
    board_file = tmp_path / "board.json"
    split = cli("storyboard", "split", str(script), "--seed", "9", "--out", str(board_file), "--json")
    assert split.returncode == 0, split.stderr
    assert [s["prompt"] for s in split.json["shots"]] == [
        "boats in a harbour. Soft light.",
        "a gull on a post. Soft light.",
    ]
    film = tmp_path / "film.mp4"
    first = cli("storyboard", "render", str(board_file), "--out", str(film), "--json")
    assert first.returncode == 0, first.stderr
    assert first.json["rendered_shots"] == [1, 2] and first.json["frames"] == 24
    assert media.probe(film)["video"]["frames"] == 24
    qa = first.json["qa"]  # the film's own QA: its file, and each shot scored against its prompt
    assert qa["ok"] and qa["probe"]["frames"] == 24, qa["findings"]
    shots = qa["semantic"]["shots"]
    assert [s["prompt"] for s in shots] == ["boats in a harbour. Soft light.", "a gull on a post. Soft light."]
    assert [(s["start_frame"], s["end_frame"]) for s in shots] == [(0, 12), (12, 24)]

    board = json.loads(board_file.read_text())
    board["shots"][1]["prompt"] = "a gull takes off. Soft light."
    board_file.write_text(json.dumps(board))
    second = cli("storyboard", "render", str(board_file), "--out", str(film), "--export", str(tmp_path / "x"), "--json")
    assert second.returncode == 0, second.stderr
    assert second.json["rendered_shots"] == [2] and second.json["reused_shots"] == [1]
    assert (tmp_path / "x/harbour/film.edl").is_file()
    jobs = cli("history", "--json").json["jobs"]
    assert [j["prompt"] for j in jobs] == [
        "a gull takes off. Soft light.",
        "a gull on a post. Soft light.",
        "boats in a harbour. Soft light.",
    ]


def test_bad_input_names_the_field(cli, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("   \n")
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"shots": []}')
    cases = [
        (["storyboard", "split", str(empty)], "script"),
        (["storyboard", "split", str(tmp_path / "none.txt")], "script"),
        (["storyboard", "render", str(bad_json), "--out", str(tmp_path / "f.mp4")], "shots"),
        (["storyboard", "render", str(bad_json), "--out", str(tmp_path / "f.avi")], "shots"),
    ]
    for args, field in cases:
        r = cli(*args, "--json")
        assert r.returncode == 2 and r.json["field"] == field, (args, r.stdout, r.stderr)


def test_enhance_command_uses_the_vault_llm(cli, tiny_vault, tmp_path):
    import shutil

    from aiprod_studio.vault.store import Vault
    from engine.models.tiny import make_tiny_scenarist

    models = tmp_path / "models"
    shutil.copytree(tiny_vault, models)
    make_tiny_scenarist(Vault(models))
    script = tmp_path / "s.txt"
    script.write_text("Shot 1: a cat on a wall\nShot 2: a dog in the snow")
    board = tmp_path / "b.json"
    assert cli("storyboard", "split", str(script), "--out", str(board), models_dir=models).returncode == 0
    r = cli("storyboard", "enhance", str(board), "--out", str(tmp_path / "e.json"), "--json", models_dir=models)
    assert r.returncode == 0, r.stderr
    assert [x["used"] for x in r.json["report"]] == ["llm", "llm"]
    assert json.loads((tmp_path / "e.json").read_text())["shots"][0]["prompt"] != "a cat on a wall"
    none = cli("storyboard", "enhance", str(board), "--json")  # the tiny vault has no scenarist
    assert none.returncode == 2 and none.json["field"] == "scenarist"


def test_what_split_json_and_inspect_print_renders_as_it_is(cli, tmp_path):
    script = tmp_path / "script.txt"
    script.write_text("Shot 1: a lamp (0.5s)\nShot 2: a door (0.5s)\n", encoding="utf-8")
    split = cli("storyboard", "split", str(script), "--seed", "4", "--json")
    assert split.returncode == 0, split.stderr
    board_file = tmp_path / "board.json"
    board_file.write_text(split.stdout, encoding="utf-8")  # `storyboard split --json > board.json`
    film = tmp_path / "film.mp4"
    first = cli("storyboard", "render", str(board_file), "--out", str(film), "--json")
    assert first.returncode == 0, first.stderr
    assert first.json["rendered_shots"] == [1, 2] and first.json["frames"] == 24

    inspected = tmp_path / "from-film.json"
    inspected.write_text(cli("inspect", str(film)).stdout, encoding="utf-8")  # `inspect film.mp4 > from-film.json`
    again = cli("storyboard", "render", str(inspected), "--out", str(tmp_path / "again.mp4"), "--json")
    assert again.returncode == 0, again.stderr
    assert again.json["rendered_shots"] == [] and again.json["reused_shots"] == [1, 2]
    assert media.read_frames(tmp_path / "again.mp4").tobytes() == media.read_frames(film).tobytes()


def test_bad_storyboard_files_exit_2_and_leave_nothing(cli, data_dir, tmp_path):
    shot = '{"prompt": "a lamp", "duration_s": 0.5, "seed": 0}'
    files = {
        "ghost.json": (
            f'{{"id": 999999, "shots": [{shot}]}}',
            "id",
            "storyboard id 999999 does not exist; remove the id to save it as a new storyboard",
        ),
        "huge-id.json": (f'{{"id": {2**70}, "shots": [{shot}]}}', "id", "id must be a whole number"),
        "float-id.json": (f'{{"id": 2.0, "shots": [{shot}]}}', "id", "got 2.0"),
        "surrogate.json": (
            '{"shots": [{"prompt": "a \\ud800 lamp", "duration_s": 0.5, "seed": 0}]}',
            "storyboard",
            "shot 1: prompt contains an invalid character (lone surrogate U+D800 at position 2)",
        ),
        "deep.json": ('{"shots": ' + "[" * 10_000 + "]" * 10_000 + "}", "storyboard", "nests 10001 levels deep"),
        "endless.json": (
            '{"shots": [{"prompt": "x", "duration_s": 1e308, "seed": 0}]}',
            "duration_s",
            "shot 1: duration_s must be at most 60 seconds",
        ),
    }
    for name, (text, _field, _fragment) in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    (tmp_path / "latin1.json").write_bytes(b'{"title": "caf\xe9"}')
    files["latin1.json"] = ("", "file", "cannot be read")
    film = tmp_path / "film.mp4"
    for name, (_, field, fragment) in files.items():
        r = cli("storyboard", "render", str(tmp_path / name), "--out", str(film), "--json")
        assert r.returncode == 2 and r.json["field"] == field and fragment in r.json["error"], (name, r.stderr)
    assert cli("history", "--json").json["jobs"] == [] and not film.exists()
    outputs = data_dir / "outputs"
    assert not outputs.exists() or not any(p.is_file() for p in outputs.rglob("*"))
