"""The Vault tab's Import a checkpoint, driven the way Gradio drives it (no browser)."""

from __future__ import annotations

import hashlib
import os

import pytest
from original_layout import write_checkpoint

TINY = "aiprod-tiny-ltx2"


@pytest.fixture
def handlers(own_studio):
    from engine.runners import make_worker
    from ui.app import build_app

    app = build_app(own_studio, make_worker(own_studio))
    return {f.fn.__name__: f.fn for f in app.fns.values() if f.fn is not None}


def test_a_checkpoint_imported_through_the_tab(handlers, own_studio, tmp_path):
    vault = own_studio.vault
    source = write_checkpoint(vault.entry_dir(vault.get(TINY)), tmp_path / "ltx-2-tiny.safetensors")
    updates = list(handlers["on_checkpoint_import"](str(source), TINY, " from-ckpt ", True))
    assert updates[0][0] == "import checkpoint: starting…" and updates[0][1] is not None  # Cancel can reach it
    final = updates[-1]
    assert final[0].startswith("Imported **from-ckpt** from `ltx-2-tiny.safetensors`: converted transformer")
    assert final[1] is None  # the task is over
    assert "from-ckpt" in [r[1] for r in final[2]["value"]]
    assert "from-ckpt" in final[6]["choices"]  # the Render tab's model menu
    assert "from-ckpt" in final[8]["choices"]  # a checkpoint can be imported like it too
    entry = vault.get("from-ckpt")
    assert entry.variant == "distilled" and entry.imported_from is not None
    assert entry.imported_from.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    assert handlers["on_like_refresh"]()["choices"] == ["aiprod-tiny-ltx2", "from-ckpt"]


def test_refusals_name_the_field_and_leave_nothing(handlers, own_studio, tmp_path):
    vault = own_studio.vault
    source = write_checkpoint(vault.entry_dir(vault.get(TINY)), tmp_path / "good.safetensors")
    (tmp_path / "evil.safetensors").write_bytes(b"\x80\x04K\x01.")  # a pickle, by its content
    before = [e.name for e in vault.entries()], sorted(os.listdir(vault.root / "pipelines"))
    cases = [  # (handler's arguments, what the warning says, whether the engine refused it)
        (("  ", TINY, "", False), "file: give the path", False),
        ((str(source), None, "", False), "like: choose", False),
        ((str(tmp_path / "evil.safetensors"), TINY, "", False), "file .* not a safetensors file", True),
        ((str(source), "aiprod-tiny-clip", "", False), "like 'aiprod-tiny-clip' is a qa", True),
        ((str(source), TINY, TINY, False), "name 'aiprod-tiny-ltx2' is the like entry itself", True),
    ]
    for args, words, by_engine in cases:
        with pytest.warns(UserWarning, match=words):
            updates = list(handlers["on_checkpoint_import"](*args))
        statuses = [str(u[0]) for u in updates if isinstance(u, tuple)]
        assert any(s.startswith("import checkpoint failed: ") for s in statuses) == by_engine, args
    assert ([e.name for e in vault.entries()], sorted(os.listdir(vault.root / "pipelines"))) == before
