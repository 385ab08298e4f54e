"""Semantic QA: a local open_clip CLIP from the vault, loaded offline, scoring deterministically."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from aiprod_studio import offline
from aiprod_studio.errors import BadInput, IntegrityError
from aiprod_studio.vault.store import Vault
from engine.qa.semantic import CONFIG_FILE, WEIGHTS_FILE, load_scorer, sample_indices, score_file
from engine.qa.tiny_clip import TINY_CLIP_NAME, make_tiny_clip
from engine.render import media

KEYS = {"model", "model_digest", "frames_scored", "prompt_mean", "prompt_min", "temporal"}


@pytest.fixture(scope="module")
def clip_vault(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("clip-vault")
    make_tiny_clip(Vault(root))
    return root


@pytest.fixture(scope="module")
def scorer(clip_vault):
    return load_scorer(Vault(clip_vault))


@pytest.fixture
def own_vault(clip_vault, tmp_path) -> Vault:
    """A private copy of the CLIP vault, for tests that change its files."""
    shutil.copytree(clip_vault, tmp_path / "models")
    return Vault(tmp_path / "models")


def clip(seed: int, n: int = 9, h: int = 48, w: int = 64) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def no_hub(monkeypatch) -> None:
    """Every way open_clip (or huggingface_hub) reaches the hub fails the test."""
    import huggingface_hub
    import open_clip.factory
    import open_clip.pretrained

    def refuse(*args, **kwargs):
        raise AssertionError(f"hub lookup: {args} {kwargs}")

    for module, attr in [
        (open_clip.factory, "_get_hf_config"),
        (open_clip.factory, "download_pretrained_from_hf"),
        (open_clip.factory, "download_pretrained"),
        (open_clip.pretrained, "download_pretrained_from_hf"),
        (huggingface_hub, "hf_hub_download"),
        (huggingface_hub, "snapshot_download"),
    ]:
        monkeypatch.setattr(module, attr, refuse)


def test_the_tiny_clip_is_the_open_clip_hub_layout_and_rebuilds_byte_identical(clip_vault, tmp_path):
    entry = Vault(clip_vault).get(TINY_CLIP_NAME)
    assert (entry.kind, entry.family, entry.test_model) == ("qa", "open_clip", True)
    assert set(entry.files) == {CONFIG_FILE, WEIGHTS_FILE} and entry.total_size < 10_000_000
    config = json.loads((clip_vault / "qa" / TINY_CLIP_NAME / CONFIG_FILE).read_text())
    assert {"embed_dim", "vision_cfg", "text_cfg"} <= set(config["model_cfg"]) and "mean" in config["preprocess_cfg"]
    assert config["model_cfg"]["text_cfg"]["vocab_size"] == 49408  # open_clip's bundled BPE tokenizer
    again = make_tiny_clip(Vault(tmp_path))
    assert again.digest == entry.digest
    assert not list((tmp_path / "qa").glob(".*"))  # the hidden build folder was renamed into place


def test_it_loads_from_the_vault_folder_with_the_network_off(clip_vault, monkeypatch):
    no_hub(monkeypatch)
    with offline.no_network() as attempts:
        scorer = load_scorer(Vault(clip_vault), TINY_CLIP_NAME)
        result = scorer.score(clip(0), "a red car on a bridge at night")
    assert attempts == [] and os.environ["HF_HUB_OFFLINE"] == "1"
    assert result["model"] == TINY_CLIP_NAME and result["model_digest"] == Vault(clip_vault).get(TINY_CLIP_NAME).digest
    # the weights are the file's, not a fresh random init; float32, eval mode
    saved = load_file(str(clip_vault / "qa" / TINY_CLIP_NAME / WEIGHTS_FILE))
    state = scorer.model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in saved.items())
    assert not scorer.model.training and state["visual.conv1.weight"].dtype == torch.float32


def test_scores_are_cosines_deterministic_and_follow_the_input(scorer, clip_vault):
    frames = clip(1)
    a = scorer.score(frames, "a red car on a bridge at night")
    assert set(a) == KEYS and a["frames_scored"] == 8
    for key in ("prompt_mean", "prompt_min", "temporal"):
        assert math.isfinite(a[key]) and -1.0 <= a[key] <= 1.0, key
    assert a["prompt_min"] <= a["prompt_mean"]
    assert scorer.score(frames.copy(), "a red car on a bridge at night") == a
    assert load_scorer(Vault(clip_vault)).score(frames, "a red car on a bridge at night") == a  # a fresh load too
    other_prompt = scorer.score(frames, "snow falls on a quiet forest")
    other_frames = scorer.score(clip(2), "a red car on a bridge at night")
    assert other_prompt["prompt_mean"] != a["prompt_mean"] and other_prompt["temporal"] == a["temporal"]
    assert other_frames["prompt_mean"] != a["prompt_mean"] and other_frames["temporal"] != a["temporal"]
    one = scorer.score(frames[:1], "a red car")
    assert one["frames_scored"] == 1 and one["temporal"] is None and one["prompt_min"] == one["prompt_mean"]


def test_frames_are_sampled_evenly_with_the_first_and_the_last(scorer):
    assert sample_indices(17, 8).tolist() == [0, 2, 5, 7, 9, 11, 14, 16]
    assert sample_indices(5, 8).tolist() == [0, 1, 2, 3, 4] and sample_indices(40, 1).tolist() == [0]
    frames = np.repeat(clip(3, n=1), 30, axis=0)
    changed = frames.copy()
    changed[-1] = clip(4, n=1)[0]  # only the last frame differs: it must be among those scored
    same, last = scorer.score(frames, "a dog", samples=4), scorer.score(changed, "a dog", samples=4)
    assert same["temporal"] == pytest.approx(1.0, abs=1e-5) and last["temporal"] < same["temporal"]


def test_shots_of_a_film_are_scored_against_their_own_prompts(scorer):
    film = np.concatenate([clip(5, n=9), clip(6, n=8)])
    shots = [
        {"prompt": "a lighthouse in fog", "start_frame": 0, "end_frame": 9},
        {"prompt": "a cat sleeps on a chair", "start_frame": 9, "end_frame": 17},
    ]
    first, second = scorer.score_shots(film, 24, shots)
    assert set(first) == KEYS | {"shot", "prompt", "start_frame", "end_frame", "start_s", "end_s"}
    assert (first["shot"], second["shot"], second["start_s"], second["end_s"]) == (1, 2, 9 / 24, 17 / 24)
    assert {k: first[k] for k in KEYS} == scorer.score(film[0:9], "a lighthouse in fog")
    assert {k: second[k] for k in KEYS} == scorer.score(film[9:17], "a cat sleeps on a chair")
    with pytest.raises(BadInput, match=r"shot 2: frames \[9, 30\) are not within the film's 17 frames"):
        scorer.score_shots(film, 24, [shots[0], {**shots[1], "end_frame": 30}])
    with pytest.raises(BadInput, match="fps must be a number more than 0"):
        scorer.score_shots(film, 0, shots)


@pytest.mark.parametrize(
    ("frames", "prompt", "samples", "message"),
    [
        (np.zeros((3, 8, 8, 3), np.float32), "a", 8, r"frames must be a uint8 array \(F, H, W, 3\), got float32"),
        (np.zeros((3, 8, 8), np.uint8), "a", 8, r"got uint8 \(3, 8, 8\)"),
        (np.zeros((0, 8, 8, 3), np.uint8), "a", 8, "at least one non-empty frame"),
        (np.zeros((3, 8, 8, 3), np.uint8), "  ", 8, "prompt must be a non-empty text"),
        (np.zeros((3, 8, 8, 3), np.uint8), "a", 0, "samples must be a whole number of at least 1, got 0"),
    ],
)
def test_bad_inputs_are_named(scorer, frames, prompt, samples, message):
    with pytest.raises(BadInput, match=message):
        scorer.score(frames, prompt, samples)


@pytest.mark.parametrize("changed", [WEIGHTS_FILE, CONFIG_FILE])
def test_a_tampered_file_is_refused_by_the_vault_check_before_it_is_parsed(own_vault, monkeypatch, changed):
    import open_clip

    def parsed(*args, **kwargs):
        raise AssertionError("a tampered file was parsed")

    monkeypatch.setattr(open_clip, "load_checkpoint", parsed)
    monkeypatch.setattr(open_clip, "CLIP", parsed)
    path = own_vault.root / "qa" / TINY_CLIP_NAME / changed
    data = bytearray(path.read_bytes())
    data[-2] ^= 0x01  # same size, one bit off
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=f"vault entry '{TINY_CLIP_NAME}' failed its check") as info:
        load_scorer(own_vault)
    assert changed in str(info.value)


def test_no_qa_entry_means_no_scorer_and_a_missing_name_is_named(own_vault, tmp_path):
    assert load_scorer(Vault(tmp_path / "empty")) is None
    with pytest.raises(BadInput, match=r"qa_model 'clip-vit-b32' is not a qa entry .*known: aiprod-tiny-clip"):
        load_scorer(own_vault, "clip-vit-b32")
    # an entry of another family is not picked, and is refused by name
    other = own_vault.root / "qa" / "hf-clip"
    other.mkdir()
    (other / "config.json").write_text("{}")
    own_vault.record("hf-clip", "qa", "clip", "qa/hf-clip")
    with pytest.raises(BadInput, match="has family 'clip'; semantic QA loads 'open_clip' models"):
        load_scorer(own_vault, "hf-clip")
    assert load_scorer(own_vault).entry.name == TINY_CLIP_NAME
    # a real (non-test) model is preferred over the tiny one
    shutil.copytree(own_vault.root / "qa" / TINY_CLIP_NAME, own_vault.root / "qa" / "real-clip")
    own_vault.record("real-clip", "qa", "open_clip", "qa/real-clip")
    assert load_scorer(own_vault).entry.name == "real-clip"


@pytest.mark.parametrize(
    ("text_cfg", "extra_file", "message"),
    [
        ({"hf_tokenizer_name": "bert-base-uncased"}, None, "names the Hugging Face tokenizer 'bert-base-uncased'"),
        ({"hf_model_name": "roberta-base"}, None, "its text tower is the Hugging Face model 'roberta-base'"),
    ],
)
def test_what_open_clip_would_fetch_from_the_hub_is_refused(own_vault, monkeypatch, text_cfg, extra_file, message):
    no_hub(monkeypatch)
    path = own_vault.root / "qa" / TINY_CLIP_NAME / CONFIG_FILE
    config = json.loads(path.read_text())
    config["model_cfg"]["text_cfg"].update(text_cfg)
    path.write_text(json.dumps(config))
    own_vault.record(TINY_CLIP_NAME, "qa", "open_clip", f"qa/{TINY_CLIP_NAME}", test_model=True)
    with offline.no_network() as attempts, pytest.raises(BadInput, match=message):
        load_scorer(own_vault)
    assert attempts == []


def test_an_hf_tokenizer_is_loaded_from_the_entry_folder_only(own_vault, monkeypatch):
    from engine.models.tiny import build_tokenizer

    no_hub(monkeypatch)
    folder = own_vault.root / "qa" / TINY_CLIP_NAME
    build_tokenizer(max_length=77).save_pretrained(folder)  # a small word-level tokenizer, ids < the vocab
    config = json.loads((folder / CONFIG_FILE).read_text())
    config["model_cfg"]["text_cfg"]["hf_tokenizer_name"] = "some-org/some-tokenizer"  # never looked up
    (folder / CONFIG_FILE).write_text(json.dumps(config))
    own_vault.record(TINY_CLIP_NAME, "qa", "open_clip", f"qa/{TINY_CLIP_NAME}", test_model=True)
    with offline.no_network() as attempts:
        scorer = load_scorer(own_vault)
        a, b = scorer.score(clip(9), "red car night"), scorer.score(clip(9), "blue ocean dawn")
    assert attempts == [] and type(scorer.tokenizer).__name__ == "HFTokenizer"
    assert a["prompt_mean"] != b["prompt_mean"] and -1.0 <= a["prompt_min"] <= a["prompt_mean"] <= 1.0


def test_score_file_takes_the_prompt_from_the_recipe_or_scores_a_film_by_shot(scorer, tmp_path):
    frames = clip(7, n=9, h=64, w=64)
    made = media.encode_mp4(
        tmp_path / "clip.mp4", frames, 24, metadata={media.RECIPE_TAG: json.dumps({"prompt": "a red car"})}
    )
    decoded = media.read_frames(made)
    assert score_file(scorer, made) == scorer.score(decoded, "a red car") | {"file": str(made)}
    assert (
        score_file(scorer, made, prompt="a blue boat")["prompt_mean"]
        == scorer.score(decoded, "a blue boat")["prompt_mean"]
    )

    from engine.film.assembly import STORYBOARD_TAG

    record = {"title": "Two", "fps": 24, "shots": [{"prompt": "a lighthouse"}, {"prompt": "a cat"}]}
    film = media.encode_mp4(
        tmp_path / "film.mp4",
        np.concatenate([frames, clip(8, n=8, h=64, w=64)]),
        24,
        metadata={STORYBOARD_TAG: json.dumps(record)},
        chapters=[("Shot 1", 0, 9), ("Shot 2", 9, 17)],
    )
    scored = score_file(scorer, film)
    assert scored["file"] == str(film) and scored["model"] == TINY_CLIP_NAME
    assert [(s["start_frame"], s["end_frame"]) for s in scored["shots"]] == [(0, 9), (9, 17)]
    assert scored["shots"][1]["prompt_mean"] == scorer.score(media.read_frames(film)[9:17], "a cat")["prompt_mean"]

    plain = media.encode_mp4(tmp_path / "plain.mp4", frames, 24)
    with pytest.raises(BadInput, match="carries no AIPROD recipe or storyboard"):
        score_file(scorer, plain)
    with pytest.raises(BadInput, match="does not exist"):
        score_file(scorer, tmp_path / "none.mp4")


def test_make_tiny_builds_the_clip_too(cli, tmp_path):
    models = tmp_path / "models"
    r = cli("vault", "make-tiny", "--json", models_dir=models)
    assert r.returncode == 0, r.stderr
    assert r.json["name"] == "aiprod-tiny-ltx2" and r.json["clip"] == TINY_CLIP_NAME
    manifest = json.loads((models / "MANIFEST.json").read_text())
    [entry] = [e for e in manifest["entries"] if e["name"] == TINY_CLIP_NAME]
    assert (entry["kind"], entry["family"], entry["path"], entry["test_model"]) == (
        "qa",
        "open_clip",
        f"qa/{TINY_CLIP_NAME}",
        True,
    )
    assert (models / "CHECKSUMS.sha256").read_text().count(f"qa/{TINY_CLIP_NAME}/") == 2
    assert load_scorer(Vault(models)).entry.digest == entry["digest"]
