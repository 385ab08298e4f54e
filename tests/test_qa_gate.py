"""The quality gates on every render: stored on the job row, shown by the CLI, the API and
History, filterable; `qa FILE` and `compare --min-psnr` exit 5 on a failure."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from engine.render import media


def tone(seconds: float, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return np.stack([0.25 * np.sin(2 * np.pi * 440 * t)] * 2).astype(np.float32)


def moving(frames: int = 17, size: int = 64) -> np.ndarray:
    x = np.linspace(0, 1, size)
    return np.stack([np.dstack([np.roll(np.tile(x, (size, 1)), 3 * i, axis=1)] * 3) for i in range(frames)])


def test_a_render_stores_its_qa_on_the_row_with_clip_scores(studio):
    row = studio.render(studio.build_recipe({"prompt": "a red square", "seed": 4}))
    qa = row["qa"]
    assert qa["ok"] and qa["findings"] == [] and qa["probe"]["frames"] == row["recipe"]["num_frames"]
    semantic = qa["semantic"]
    assert semantic["model"] == "aiprod-tiny-clip" and semantic["frames_scored"] >= 2
    for key in ("prompt_mean", "prompt_min", "temporal"):
        assert math.isfinite(semantic[key]) and -1 <= semantic[key] <= 1
    assert semantic["prompt_min"] <= semantic["prompt_mean"]
    assert studio.history.get(row["id"])["qa"] == qa  # stored, and read back the same
    assert studio.clip_qa(row["id"]) == qa


def test_without_a_qa_model_the_scores_are_absent_and_the_studio_says_how_to_add_one(tmp_path):
    from aiprod_studio.settings import load_settings
    from aiprod_studio.vault.store import Vault
    from engine.models.tiny import make_tiny
    from engine.studio import Studio

    make_tiny(Vault(tmp_path / "models"))  # the pipeline alone
    studio = Studio(load_settings(models_dir=tmp_path / "models", data_dir=tmp_path / "data", device="cpu"))
    try:
        row = studio.render(studio.build_recipe({"prompt": "a red square"}))
    finally:
        studio.close()
    assert row["qa"]["ok"] and row["qa"]["semantic"] is None
    assert "vault make-tiny" in row["qa"]["semantic_note"] and "clip-vit-b32" in row["qa"]["semantic_note"]


def test_an_old_clip_without_a_report_gets_one_when_asked(studio):
    row = studio.render(studio.build_recipe({"prompt": "a red square", "seed": 8}))
    with studio.history.locked() as db:
        db.execute("UPDATE jobs SET qa = NULL WHERE id = ?", [row["id"]])
    assert studio.history.get(row["id"])["qa"] is None
    made = studio.clip_qa(row["id"])
    assert made["ok"] and studio.history.get(row["id"])["qa"] == made


def test_clip_qa_refuses_what_has_no_clip(studio):
    from aiprod_studio.errors import BadInput

    queued = studio.history.create_job(studio.stamp(studio.build_recipe({"prompt": "x"})), status="cancelled")
    for job_id, says in [(queued, "only a finished clip"), (999, "does not exist"), ("1.5", "whole number")]:
        with pytest.raises(BadInput, match=says) as caught:
            studio.clip_qa(job_id)
        assert caught.value.field == "job_id"


def test_history_filters_by_findings_and_sorts_by_score(studio):
    a = studio.render(studio.build_recipe({"prompt": "a red square", "seed": 1}))
    b = studio.render(studio.build_recipe({"prompt": "a blue circle", "seed": 2}))
    bad = studio.history.create_job(studio.stamp(studio.build_recipe({"prompt": "bad"})), status="done")
    studio.history.set_qa(bad, {**a["qa"], "ok": False, "errors": 1, "findings": [{"code": "black_frames"}]})
    history = studio.history
    assert [r["id"] for r in history.jobs(findings=True)] == [bad]
    assert {r["id"] for r in history.jobs(findings=False)} == {a["id"], b["id"]}
    scores = [r["qa"]["semantic"]["prompt_mean"] for r in history.jobs(order="score", findings=False)]
    assert scores == sorted(scores, reverse=True)
    from aiprod_studio.errors import BadInput

    with pytest.raises(BadInput, match="order must be one of newest, score"):
        history.jobs(order="best")


def test_cli_render_history_and_qa_carry_the_report(cli, tmp_path):
    out = tmp_path / "clip.mp4"
    r = cli("render", "--prompt", "a red square", "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr
    assert r.json["qa"]["ok"] and r.json["qa"]["semantic"]["model"] == "aiprod-tiny-clip"
    listed = cli("history", "--json", "--clean", "--sort", "score").json["jobs"]
    assert listed and listed[0]["qa"]["ok"]
    checked = cli("qa", str(out), "--json")
    assert (
        checked.returncode == 0
        and checked.json["qa"]["semantic"]["prompt_mean"] == r.json["qa"]["semantic"]["prompt_mean"]
    )
    other = cli("qa", str(out), "--prompt", "a green forest", "--json")
    assert other.json["qa"]["semantic"]["prompt_mean"] != r.json["qa"]["semantic"]["prompt_mean"]
    text = cli("qa", str(out))
    assert "technical check: ok" in text.stdout and "prompt match" in text.stdout


def test_cli_qa_exits_5_on_black_frames_and_refuses_what_is_no_video(cli, tmp_path):
    frames = moving()
    frames[4:9] = 0.0
    bad = media.encode_mp4(tmp_path / "black.mp4", frames, 24, tone(17 / 24), 16000)
    r = cli("qa", str(bad), "--prompt", "a gradient", "--json")
    assert r.returncode == 5, r.stderr
    found = [f for f in r.json["qa"]["findings"] if f["code"] == "black_frames"]
    assert found and found[0]["start_frame"] == 4 and found[0]["end_frame"] == 8
    json.dumps(r.json, allow_nan=False)
    text = cli("qa", str(bad))
    assert text.returncode == 5 and "black_frames" in text.stdout
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video")
    for path, says in [(junk, "not a readable video"), (tmp_path / "none.mp4", "does not exist")]:
        r = cli("qa", str(path))
        assert r.returncode == 2 and says in r.stderr


def test_compare_min_psnr_exits_5_on_different_seeds_and_compares_the_sound(cli, studio):
    a = studio.render(studio.build_recipe({"prompt": "a red square", "seed": 1}))["output_path"]
    b = studio.render(studio.build_recipe({"prompt": "a red square", "seed": 2}))["output_path"]
    r = cli("compare", a, b, "--min-psnr", "55", "--json")
    assert r.returncode == 5 and r.json["passed"] is False and r.json["psnr_min"] < 55
    assert r.json["max_abs_diff"] > 0 and r.json["audio"]["samples"] > 0
    same = cli("compare", a, a, "--min-psnr", "55", "--json")
    assert same.returncode == 0 and same.json["psnr_min"] == "inf" and same.json["audio"]["snr"] == "inf"
    assert same.json["audio"]["identical"] and same.json["identical"]
    bad = cli("compare", a, b, "--min-psnr", "-3")
    assert bad.returncode == 2 and "min-psnr" in bad.stderr


def test_cli_best_of_three_ranks_the_takes_and_copies_the_best(cli, tmp_path):
    out = tmp_path / "best.mp4"
    r = cli("render", "--prompt", "a red square", "--seed", "20", "--takes", "3", "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr
    takes = r.json["takes"]
    assert sorted(t["seed"] for t in takes) == [20, 21, 22] and [t["rank"] for t in takes] == [1, 2, 3]
    assert takes[0]["best"] and r.json["id"] == takes[0]["id"] and r.json["output"] == str(out)
    assert media.read_frames(out).tobytes() == media.read_frames(takes[0]["output_path"]).tobytes()
    bad = cli("render", "--prompt", "x", "--takes", "9")
    assert bad.returncode == 2 and "takes must be a whole number from 1 to 8, got 9" in bad.stderr


def test_takes_rank_by_score_then_findings_and_unfinished_last():
    from aiprod_studio.jobs.takes import ranked

    def take(i, status="done", score=None, errors=0):
        qa = {"ok": errors == 0, "errors": errors, "warnings": 0}
        qa["semantic"] = {"prompt_mean": score} if score is not None else None
        return {"id": i, "status": status, "qa": qa}

    rows = [take(1, score=0.1), take(2, "failed"), take(3, score=0.9, errors=1), take(4, score=0.3), take(5)]
    order = ranked(rows)  # a technical failure never wins on score; unscored after scored; unfinished last
    assert [r["id"] for r in order] == [4, 1, 5, 3, 2] and order[0]["best"] and not order[1]["best"]
    assert [r["rank"] for r in order] == [1, 2, 3, 4, 5]
    assert not ranked([take(2, "failed")])[0]["best"]  # no finished take: none is the best


def test_a_check_that_breaks_is_a_finding_not_a_clean_clip(studio, monkeypatch):
    from engine.qa import technical

    def broken(path, expect=None):
        raise RuntimeError("decoder exploded")

    monkeypatch.setattr(technical, "check_file", broken)
    row = studio.render(studio.build_recipe({"prompt": "a red square", "seed": 77}))
    qa = row["qa"]
    assert row["status"] == "done" and qa["ok"] is None and "decoder exploded" in qa["technical_error"]
    assert [f["code"] for f in qa["findings"]] == ["check_failed"] and qa["semantic"]["model"] == "aiprod-tiny-clip"
    assert row["id"] in [r["id"] for r in studio.history.jobs(findings=True)]
    assert row["id"] not in [r["id"] for r in studio.history.jobs(findings=False)]


def test_compare_says_when_only_one_file_has_sound(cli, tmp_path):
    frames = moving()
    a = media.encode_mp4(tmp_path / "a.mp4", frames, 24, tone(17 / 24), 16000)
    b = media.encode_mp4(tmp_path / "b.mp4", frames, 24)
    r = cli("compare", str(a), str(b), "--json")
    assert r.returncode == 0 and r.json["audio"]["only_in"] == "a" and r.json["audio"]["snr"] is None
    assert "only A has a sound track" in cli("compare", str(a), str(b)).stdout
    silent = media.encode_mp4(tmp_path / "silent.mp4", frames, 24, np.zeros_like(tone(17 / 24)), 16000)
    r = cli("compare", str(silent), str(a), "--json")
    assert r.json["audio"]["snr"] == "-inf"  # a silent reference: not "inf", which would read as identical


def test_retakes_try_more_seeds_while_no_take_passes_its_technical_check(studio, worker, monkeypatch):
    from engine.qa import technical

    real = technical.check_file
    failing = {"left": 2}

    def first_two_fail(path, expect=None):
        report = real(path, expect)
        if failing["left"]:
            failing["left"] -= 1
            return report | {"ok": False, "errors": 1, "findings": [{"code": "black_frames"}]}
        return report

    monkeypatch.setattr(technical, "check_file", first_two_fail)
    from engine.render.takes import render_takes

    ranking = render_takes(studio, studio.build_recipe({"prompt": "a red square", "seed": 30}), 2, retakes=3)
    assert sorted(r["seed"] for r in ranking) == [30, 31, 32]  # two failed, one retake passed, none more
    assert ranking[0]["seed"] == 32 and ranking[0]["best"] and ranking[0]["qa"]["ok"]
    assert {r["take_of"] for r in ranking} == {min(r["id"] for r in ranking)}
    failing["left"] = 1  # through the queue: one take fails, one retake
    first = worker.enqueue(studio.build_recipe({"prompt": "a blue square", "seed": 50}))
    worker.wait(first)
    again = worker.wait(worker.enqueue_retake(first))
    group = sorted(
        r["seed"] for r in __import__("aiprod_studio.jobs.takes", fromlist=["x"]).takes_of(studio.history, first)
    )
    assert again["seed"] == 51 and again["qa"]["ok"] and group == [50, 51]
