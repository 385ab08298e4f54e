"""The `aiprod-studio` CLI end to end, in subprocesses, against the tiny model."""

from __future__ import annotations

import json

import pytest

from engine.render import media


def test_render_history_inspect(cli, data_dir, tmp_path):
    out = tmp_path / "clip.mp4"
    r = cli(
        "render", "--prompt", "a red car drives at night", "--seed", "5", "--fps", "12", "--out", str(out), "--json"
    )
    assert r.returncode == 0, r.stderr
    res = r.json
    assert res["ok"] and res["output"] == str(out) and res["seed"] == 5 and res["model"] == "aiprod-tiny-ltx2"
    assert len(res["model_digest"]) == 64 and res["wall_s"] > 0

    info = media.probe(out)
    assert info["video"]["codec"] == "h264" and info["video"]["pix_fmt"] == "yuv420p"
    assert (info["video"]["frames"], info["video"]["width"], info["video"]["height"]) == (17, 64, 64)
    assert info["video"]["fps"] == 12.0
    assert info["audio"]["codec"] == "aac" and info["audio"]["sample_rate"] == 16000

    h = cli("history", "--json")
    assert h.returncode == 0
    [row] = h.json["jobs"]
    assert (row["id"], row["status"], row["output_path"]) == (res["id"], "done", str(out))

    i = cli("inspect", str(out), "--json")
    assert i.returncode == 0
    assert i.json["recipe"] == res["recipe"] == row["recipe"]
    assert i.json["recipe"]["prompt"] == "a red car drives at night"
    assert json.loads(cli("inspect", str(out)).stdout)["fps"] == 12


def test_same_recipe_identical_other_seed_differs(cli, tmp_path):
    a, b, c = (tmp_path / f"{n}.mp4" for n in "abc")
    for path, seed in ((a, "11"), (b, "11"), (c, "12")):
        assert cli("render", "--prompt", "waves", "--seed", seed, "--out", str(path)).returncode == 0
    same = cli("compare", str(a), str(b), "--json")
    assert same.returncode == 0 and same.json["psnr"] == "inf" and same.json["identical"]
    assert "video: PSNR inf dB" in cli("compare", str(a), str(b)).stdout
    diff = cli("compare", str(a), str(c), "--json").json
    assert isinstance(diff["psnr"], float) and not diff["identical"]


def test_rerender_from_an_inspected_recipe(cli, tmp_path):
    first = tmp_path / "first.mp4"
    assert cli("render", "--prompt", "fog over hills", "--seed", "9", "--out", str(first)).returncode == 0
    recipe_file = tmp_path / "recipe.json"
    recipe_file.write_text(cli("inspect", str(first)).stdout)
    again = tmp_path / "again.mp4"
    assert cli("render", "--recipe", str(recipe_file), "--out", str(again)).returncode == 0
    assert cli("compare", str(first), str(again), "--json").json["identical"]


@pytest.mark.parametrize(
    ("args", "field", "fragment"),
    [
        (["--prompt", "x", "--width", "50"], "width", "width must be a multiple of 32"),
        (["--prompt", "x", "--frames", "20"], "num_frames", "num_frames must be 8k+1"),
        (["--prompt", ""], "prompt", "prompt must not be empty"),
        (["--prompt", "x", "--model", "nope"], "model", "model 'nope'"),
        (["--prompt", "x", "--bogus"], "arguments", "unrecognized arguments: --bogus"),
        (["--prompt", "x", "--steps", "0"], "steps", "steps must be between 1 and 200, got 0"),
        (["--prompt", "x", "--out", "clip.avi"], "out", "out must end in .mp4"),
        # bytes that are not UTF-8 arrive as lone surrogates: refused, not a crash in the database
        (
            ["--prompt", "a \udcff b"],
            "prompt",
            "prompt contains an invalid character (lone surrogate U+DCFF at position 2)",
        ),
        (["--prompt", "a\x1b[2Jb"], "prompt", "prompt contains an invalid character (control character U+001B"),
    ],
)
def test_bad_input_exits_2_and_leaves_nothing(cli, data_dir, args, field, fragment):
    r = cli("render", *args, "--json")
    assert r.returncode == 2, r.stderr
    assert fragment in r.stderr and r.json["field"] == field and not r.json["ok"]
    assert cli("history", "--json").json["jobs"] == []
    outputs = data_dir / "outputs"
    assert not outputs.exists() or list(outputs.iterdir()) == []


def test_a_recipe_file_with_a_lone_surrogate_is_refused(cli, data_dir, tmp_path):
    recipe = tmp_path / "recipe.json"
    recipe.write_text('{"prompt": "fog \\ud800 over hills", "model": "aiprod-tiny-ltx2"}', encoding="utf-8")
    r = cli("render", "--recipe", str(recipe), "--out", str(tmp_path / "a.mp4"), "--json")
    assert r.returncode == 2, r.stderr
    assert r.json["field"] == "prompt" and "lone surrogate U+D800 at position 4" in r.json["error"]
    assert cli("history", "--json").json["jobs"] == [] and not (tmp_path / "a.mp4").exists()


def test_inspect_a_film_prints_its_storyboard(cli, studio, tmp_path):
    from aiprod_studio.storyboard.scenarist import split_script
    from engine.film import assembly
    from engine.film import shots as sb

    board = split_script("Title: Two\nShot 1: a lamp (0.5s)\nShot 2: a door (0.5s)", fps=24, base_seed=3)
    plans = sb.plan(studio, board)
    sb.render_now(studio, plans)
    film = tmp_path / "film.mp4"
    assembly.assemble(board, plans, film)

    printed = cli("inspect", str(film))
    assert printed.returncode == 0, printed.stderr
    assert json.loads(printed.stdout) == board.model_dump(mode="json")  # as `storyboard render` takes it
    r = cli("inspect", str(film), "--json")
    assert r.returncode == 0, r.stderr
    assert r.json["storyboard"]["title"] == "Two" and [s["seed"] for s in r.json["storyboard"]["shots"]] == [3, 4]
    assert r.json["shot_jobs"] == [p.job["id"] for p in plans] and "recipe" not in r.json
    assert r.json["file"] == str(film) and r.json["streams"]["video"]["frames"] == 24


def test_commands_have_help(cli):
    for cmd in (["render"], ["history"], ["inspect"], ["compare"], ["vault", "list"], ["vault", "make-tiny"], ["ui"]):
        r = cli(*cmd, "--help")
        assert r.returncode == 0 and "usage: aiprod-studio" in r.stdout, cmd


def test_make_tiny_and_vault_list(cli, tmp_path):
    models = tmp_path / "models"
    r = cli("vault", "make-tiny", "--json", models_dir=models)
    assert r.returncode == 0, r.stderr
    listed = cli("vault", "list", "--json", models_dir=models).json
    entry = next(e for e in listed["entries"] if e["name"] == "aiprod-tiny-ltx2")
    assert entry["name"] == "aiprod-tiny-ltx2" and entry["test_model"] and entry["digest"] == r.json["digest"]
    assert (models / "pipelines/aiprod-tiny-ltx2/model_index.json").is_file()
    assert (models / "CHECKSUMS.sha256").read_text().count("pipelines/aiprod-tiny-ltx2/") == entry["files"].__len__()


def test_inspect_and_compare_errors(cli, tmp_path):
    missing = cli("inspect", str(tmp_path / "none.mp4"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    plain = media.encode_mp4(tmp_path / "plain.mp4", __import__("numpy").zeros((9, 64, 64, 3), "uint8"), 24)
    r = cli("inspect", str(plain))
    assert r.returncode == 2 and "carries no AIPROD recipe or storyboard" in r.stderr


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_interrupting_a_render_cancels_it_cleanly(tiny_vault, data_dir, tmp_path, sig):
    import os
    import signal
    import subprocess
    import sys
    import time

    from aiprod_studio.jobs.history import History

    out = tmp_path / "clips" / "long.mp4"
    env = {**os.environ, "AIPROD_MODELS_DIR": str(tiny_vault), "AIPROD_DATA_DIR": str(data_dir)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aiprod_studio",
            "render",
            "--prompt",
            "a very long render",
            "--steps",
            "200",
            "--frames",
            "33",
            "--out",
            str(out),
            "--json",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    db = data_dir / "history.sqlite"
    deadline = time.time() + 120
    while time.time() < deadline:  # wait until the render is really under way
        if db.exists():
            h = History(db)
            rows = h.jobs()
            h.close()
            if rows and rows[0]["status"] == "running" and rows[0]["step"] >= 1:
                break
        time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("the render never started")
    proc.send_signal(getattr(signal, sig))
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 4, stderr
    assert json.loads(stdout.strip().splitlines()[-1])["exit_code"] == 4
    h = History(db)
    [row] = h.jobs()
    h.close()
    assert row["status"] == "cancelled" and 1 <= row["step"] < 200
    assert not out.exists() and not (out.parent / ".long.mp4.partial").exists()


def test_a_reader_that_stops_early_is_not_an_error(tiny_vault, data_dir):
    """`aiprod-studio history | head -1`: the pipe closes before the output is written; exit 0, no traceback."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "AIPROD_MODELS_DIR": str(tiny_vault), "AIPROD_DATA_DIR": str(data_dir)}
    proc = subprocess.run(
        ["bash", "-c", f"'{sys.executable}' -m aiprod_studio history | true; exit ${{PIPESTATUS[0]}}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
