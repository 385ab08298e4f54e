"""The Model Vault tab's handlers, driven the way Gradio drives them (no browser)."""

from __future__ import annotations

import pytest


@pytest.fixture
def handlers(own_studio):
    from engine.runners import make_worker
    from ui.app import build_app

    worker = make_worker(own_studio)
    app = build_app(own_studio, worker)
    return {f.fn.__name__: f.fn for f in app.fns.values() if f.fn is not None}


W = "pipelines/aiprod-tiny-ltx2/transformer/diffusion_pytorch_model.safetensors"


def test_verify_shows_badges_then_names_a_damaged_file(handlers, own_studio):
    *_, (text, task, table) = list(handlers["on_vault_verify"]("(all)", "deep"))
    assert task is None  # the page's task is forgotten once it is over
    assert "all ok" in text and next(r for r in table["value"] if r[1] == "aiprod-tiny-ltx2")[:2] == [
        "✔ ok",
        "aiprod-tiny-ltx2",
    ]
    with open(own_studio.vault.root / W, "r+b") as f:
        f.seek(-1, 2)
        last = f.read(1)
        f.seek(-1, 2)
        f.write(bytes([last[0] ^ 0xFF]))
    *_, (text, _, table) = list(handlers["on_vault_verify"]("aiprod-tiny-ltx2", "quick"))
    assert "1 problem**" in text and f"hash mismatch {W}" in text
    assert next(r for r in table["value"] if r[1] == "aiprod-tiny-ltx2")[0] == "✖ failed"


def test_import_export_round_trip_through_the_tab(handlers, own_studio, tmp_path):
    updates = list(handlers["on_vault_export"]("aiprod-tiny-ltx2", str(tmp_path / "usb")))
    assert "Exported **aiprod-tiny-ltx2**" in updates[-1][0] and updates[-1][1] is None
    bundle = tmp_path / "usb/aiprod-tiny-ltx2"
    *_, final = list(handlers["on_vault_import"](str(bundle), "tiny-copy", "pipeline", "", False))
    assert "Imported **tiny-copy**" in final[0]
    assert [r[1] for r in final[2]["value"]] == ["aiprod-tiny-clip", "aiprod-tiny-ltx2", "tiny-copy"]
    assert "tiny-copy" in final[5]["choices"] and "tiny-copy" in final[6]["choices"]  # quantize and Render menus
    with pytest.warns(UserWarning, match="already an entry"):
        list(handlers["on_vault_import"](str(bundle), "tiny-copy", "pipeline", "", False))
    with pytest.warns(UserWarning, match="path"):
        list(handlers["on_vault_import"]("  ", "", "pipeline", "", False))


def test_cancel_reports_when_nothing_runs(handlers):
    assert handlers["on_vault_cancel"](None) == "Nothing is running from this page."
    updates = list(handlers["on_vault_verify"]("(all)", "quick"))
    assert updates[0][0] == "quick verify: starting…"
    assert handlers["on_vault_cancel"](updates[0][1]) == "Nothing is running from this page."  # it is over


def test_page_load_lists_models_added_since_the_app_was_built(handlers, own_studio, tmp_path):
    from aiprod_studio.vault.transfer import export_bundle, import_path

    bundle = export_bundle(own_studio.vault, "aiprod-tiny-ltx2", tmp_path / "usb")
    import_path(own_studio.vault, bundle, "added-by-cli")
    table, target, export_menu, quantize_menu, render_menu, lora_menu = handlers["lists"]()
    assert [r[1] for r in table["value"]] == ["added-by-cli", "aiprod-tiny-clip", "aiprod-tiny-ltx2"]
    assert "added-by-cli" in render_menu["choices"] and "added-by-cli" in target["choices"]


def test_quantize_and_report(handlers, own_studio):
    *_, final = list(handlers["on_vault_quantize"]("aiprod-tiny-ltx2", "int8", "tiny-q8"))
    assert "Saved **tiny-q8**" in final[0] and own_studio.vault.get("tiny-q8").quantization == "int8"
    with pytest.warns(UserWarning, match="already an entry"):
        list(handlers["on_vault_quantize"]("aiprod-tiny-ltx2", "int8", "tiny-q8"))
    path, text = handlers["on_vault_report"](False)
    assert path.startswith(str(own_studio.settings.outputs_dir)) and path.endswith(".md")
    assert "| tiny-q8 | pipeline/ltx2 |" in text and "Network self-test\n\nnot run" in text
