"""The local-LLM scenarist with a tiny random causal LM from the vault."""

from __future__ import annotations

import pytest

from aiprod_studio import offline
from aiprod_studio.errors import BadInput, IntegrityError
from aiprod_studio.storyboard.scenarist import split_script
from aiprod_studio.vault.store import Vault
from engine.film.scenarist import enhance
from engine.models.tiny import make_tiny_scenarist

SCRIPT = "Style: film noir\nShot 1: a man walks in the rain at night\nShot 2: a woman sings on a stage"


@pytest.fixture(scope="module")
def llm_vault(tmp_path_factory):
    vault = Vault(tmp_path_factory.mktemp("llm-vault"))
    entry = make_tiny_scenarist(vault)
    assert entry.kind == "scenarist" and entry.family == "llm" and entry.test_model
    return vault


def test_llm_rewrites_every_shot_deterministically_offline(llm_vault):
    board = split_script(SCRIPT)
    with offline.no_network() as attempts:
        enhanced, report = enhance(llm_vault, board)
    assert attempts == []
    assert [r["used"] for r in report] == ["llm", "llm"]
    for before, after, r in zip(board.shots, enhanced.shots, report, strict=False):
        assert after.prompt != before.prompt and after.prompt.endswith("Film noir.")
        assert after.prompt.startswith(r["output"][:20]) and after.seed == before.seed
        assert not set('"\\{}\n') & set(r["output"])  # the JSON-string constraint held
    again, _ = enhance(llm_vault, board)
    assert again == enhanced


def test_unusable_output_falls_back_to_the_rule_based_prompt(llm_vault):
    board = split_script(SCRIPT)
    enhanced, report = enhance(llm_vault, board, max_new_tokens=2)  # two words: too short to be a prompt
    assert enhanced == board
    assert [r["used"] for r in report] == ["rules", "rules"]
    assert all("fewer than 3" in r["reason"] for r in report)


def test_no_scenarist_and_damaged_scenarist_are_refused(llm_vault, tmp_path):
    with pytest.raises(BadInput) as info:
        enhance(Vault(tmp_path / "empty"), split_script(SCRIPT))
    assert info.value.field == "scenarist"
    with pytest.raises(BadInput) as info:
        enhance(llm_vault, split_script(SCRIPT), max_new_tokens=0)
    assert info.value.field == "max_new_tokens"
    import shutil

    damaged = Vault(tmp_path / "damaged")
    shutil.copytree(llm_vault.root, damaged.root)
    weights = next((damaged.root / "scenarists").rglob("model.safetensors"))
    with open(weights, "r+b") as f:
        f.seek(-1, 2)
        last = f.read(1)
        f.seek(-1, 2)
        f.write(bytes([last[0] ^ 0xFF]))
    with pytest.raises(IntegrityError, match="model.safetensors"):
        enhance(damaged, split_script(SCRIPT))


def test_enhance_prompt_rewrites_one_prompt_seeded_and_offline(llm_vault):
    from engine.film.scenarist import enhance_prompt

    with offline.no_network() as attempts:
        first = enhance_prompt(llm_vault, "a fox in snow", seed=3)
    assert attempts == []
    assert first["used"] == "llm" and first["prompt"] == first["output"] != "a fox in snow"
    assert first["scenarist"] == "aiprod-tiny-scenarist" and not set('"\\{}\n') & set(first["prompt"])
    assert enhance_prompt(llm_vault, "a fox in snow", seed=3) == first  # same seed, same rewrite
    assert enhance_prompt(llm_vault, "a fox in snow", seed=4)["prompt"] != first["prompt"]
    kept = enhance_prompt(llm_vault, "a fox in snow", seed=3, max_new_tokens=2)  # too short to use
    assert kept["used"] == "kept" and kept["prompt"] == "a fox in snow" and "fewer than 3" in kept["reason"]


@pytest.mark.parametrize(
    "prompt, seed, field",
    [
        ("   ", 0, "prompt"),
        ("x" * 2001, 0, "prompt"),
        ("a \x00 b", 0, "prompt"),
        ("ok", -1, "seed"),
        ("ok", 2**64, "seed"),
    ],
)
def test_enhance_prompt_refuses_bad_values_by_field(llm_vault, prompt, seed, field):
    from engine.film.scenarist import enhance_prompt

    with pytest.raises(BadInput) as info:
        enhance_prompt(llm_vault, prompt, seed=seed)
    assert info.value.field == field


def test_render_tab_enhance_puts_the_rewrite_in_the_prompt_box(llm_vault, tmp_path):
    from types import SimpleNamespace

    from ui.components.prompt_enhance import on_enhance

    services = SimpleNamespace(studio=SimpleNamespace(vault=llm_vault))
    prompt, status = on_enhance(services, "a fox in snow", 3.0)
    assert prompt != "a fox in snow" and "aiprod-tiny-scenarist" in status and "seed 3" in status
    unchanged, status = on_enhance(services, "", 3.0)
    assert unchanged == {"__type__": "update"} and "prompt must not be empty" in status
    empty = SimpleNamespace(studio=SimpleNamespace(vault=Vault(tmp_path / "empty")))
    assert "no local LLM" in on_enhance(empty, "a fox", 0)[1]
