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
