"""`vault import-checkpoint`: original single-file LTX-2 checkpoints become diffusers-format vault entries."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from original_layout import diffusers_tensors, key_maps, original_state_dict, write_checkpoint
from safetensors.torch import save_file

from aiprod_studio.cli import main
from aiprod_studio.errors import Cancelled, IntegrityError
from aiprod_studio.vault.staging import recover_staging
from aiprod_studio.vault.store import Vault
from aiprod_studio.vault.verify import verify
from engine.models.single_file import convert_part, import_checkpoint, plan_import

TINY = "aiprod-tiny-ltx2"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def models(tiny_vault, tmp_path) -> Path:
    root = tmp_path / "models"
    shutil.copytree(tiny_vault, root)
    return root


def tiny_dir(models: Path, name: str = TINY) -> Path:
    return models / "pipelines" / name


def run(capsys, models: Path, *args: str) -> tuple[int, dict]:
    """`aiprod-studio vault import-checkpoint ARGS --json`, in this process."""
    code = main(["vault", "import-checkpoint", *args, "--models-dir", str(models), "--json"])
    out = capsys.readouterr().out.strip().splitlines()
    return code, json.loads(out[-1])


def render(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """Frames and audio of one seeded render of the pipeline in `folder`, loaded as diffusers loads it."""
    from diffusers import LTX2Pipeline

    pipe = LTX2Pipeline.from_pretrained(folder, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    out = pipe(
        prompt="a red boat on the sea at dawn",
        width=64,
        height=64,
        num_frames=17,
        num_inference_steps=3,
        guidance_scale=3.0,
        generator=torch.Generator().manual_seed(11),
        output_type="np",
        max_sequence_length=64,
    )
    return np.asarray(out.frames), np.asarray(out.audio)


def four_level_pipeline(folder: Path) -> Path:
    """The tiny pipeline with a video VAE laid out like the released one (4 encoder levels, 3 decoder
    levels: the only layout diffusers' VAE key map fits), saved to `folder`."""
    from diffusers import AutoencoderKLLTX2Video

    from engine.models.tiny import build_pipeline

    pipe = build_pipeline()
    torch.manual_seed(0)
    pipe.vae = AutoencoderKLLTX2Video(
        latent_channels=8,
        block_out_channels=(8, 8, 8, 8),
        layers_per_block=(1, 1, 1, 1, 1),
        spatio_temporal_scaling=(True,) * 4,
        downsample_type=("spatial", "temporal", "spatiotemporal", "spatiotemporal"),
        decoder_block_out_channels=(8, 8, 8),
        decoder_layers_per_block=(1, 1, 1, 1),
        decoder_spatio_temporal_scaling=(True,) * 3,
        decoder_inject_noise=(False,) * 4,
        upsample_residual=(False,) * 3,
        upsample_factor=(1,) * 3,
        patch_size=2,
        decoder_causal=False,
        spatial_compression_ratio=16,
        temporal_compression_ratio=8,
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def entries_and_leftovers(models: Path) -> tuple[list[str], list[str]]:
    return [e.name for e in Vault(models).entries()], sorted(os.listdir(models / "pipelines"))


# -- the test helper: the original layout is the exact inverse of diffusers' key mapping ----------------------
def test_original_layout_inverts_the_diffusers_converters(tiny_vault, tmp_path):
    from diffusers.loaders import single_file_utils as sfu

    converters = {
        "transformer": sfu.convert_ltx2_transformer_to_diffusers,
        "vae": sfu.convert_ltx2_vae_to_diffusers,
        "audio_vae": sfu.convert_ltx2_audio_vae_to_diffusers,
    }

    def round_trip(folder: Path, component: str) -> tuple[set[str], set[str]]:
        keys = set(diffusers_tensors(folder, component))
        return keys, set(converters[component]({key_maps(folder)[component](k): None for k in keys}))

    for component in ("transformer", "audio_vae"):
        keys, back = round_trip(tiny_dir(tiny_vault), component)
        assert back == keys and len(keys) > 30, component
    # the tiny 2.0 video VAE has 2 encoder levels; diffusers' map is written for the released 4
    keys, back = round_trip(tiny_dir(tiny_vault), "vae")
    assert "encoder.mid_block.resnets.0.conv1.conv.weight" in keys - back
    keys, back = round_trip(four_level_pipeline(tmp_path / "four"), "vae")
    assert back == keys and "encoder.down_blocks.3.downsamplers.0.conv.conv.weight" in keys
    # a combined file's extras are what the converters drop
    state = original_state_dict(tiny_dir(tiny_vault), ("transformer",))
    extras = {k for k in state if "embeddings_connector" in k}
    assert len(extras) == 4 and not set(sfu.convert_ltx2_transformer_to_diffusers({k: None for k in extras}))


# -- imports that work ---------------------------------------------------------------------------------------
def test_transformer_only_checkpoint_renders_the_same_frames(models, tmp_path, capsys):
    source = write_checkpoint(tiny_dir(models), tmp_path / "ltx-2-tiny-dev.safetensors", ("transformer",))
    code, data = run(capsys, models, str(source), "--like", TINY)
    assert code == 0, data
    vault = Vault(models)
    entry, like = vault.get("ltx-2-tiny-dev"), vault.get(TINY)
    # 1. the record: a different model, with the like entry's family, license and defaults
    assert entry.imported_from is not None and entry.imported_from.model_dump() == {
        "file": "ltx-2-tiny-dev.safetensors",
        "sha256": hashlib.sha256(source.read_bytes()).hexdigest(),
        "size": source.stat().st_size,
        "like": TINY,
        "components": ["transformer"],
    }
    assert entry.derived_from is None and entry.source is None and entry.variant is None
    assert (entry.family, entry.license, entry.defaults) == (like.family, like.license, like.defaults)
    assert data["imported_from"]["sha256"] == entry.imported_from.sha256 and data["digest"] == entry.digest
    assert data["not_converted"] == {
        "transformer (unused by diffusers)": 4,
        "vocoder": 1,
        "text_embedding_projection": 1,
    }
    # 2. the files: the converted transformer is new, everything else is the like entry's (hard-linked)
    assert set(entry.files) == set(like.files)
    new, old = tiny_dir(models, entry.name), tiny_dir(models)
    weights = "transformer/diffusion_pytorch_model.safetensors"
    assert (new / weights).stat().st_ino != (old / weights).stat().st_ino
    for rel in set(entry.files) - {weights}:
        assert (new / rel).stat().st_ino == (old / rel).stat().st_ino, rel
    assert verify(vault, deep=True).ok
    # 3. the same weights, so the same render, bit for bit
    a_frames, a_audio = render(old)
    b_frames, b_audio = render(new)
    assert a_frames.shape == (1, 17, 64, 64, 3) and np.array_equal(a_frames, b_frames)
    assert np.array_equal(a_audio, b_audio)


def test_combined_checkpoint_with_the_audio_vae_and_a_variant(models, tmp_path, capsys):
    source = write_checkpoint(tiny_dir(models), tmp_path / "combined.safetensors", ("transformer", "audio_vae"))
    code, data = run(capsys, models, str(source), "--like", TINY, "--name", "tiny-distilled", "--variant", "distilled")
    assert code == 0, data
    entry = Vault(models).get("tiny-distilled")
    assert entry.imported_from is not None and entry.imported_from.components == ["transformer", "audio_vae"]
    assert entry.variant == "distilled" and data["variant"] == "distilled"
    # the like entry's sizes stay; what the variant decides (steps, guidance) is left to its recommendations
    like = Vault(models).get(TINY).defaults
    assert entry.defaults == {k: v for k, v in like.items() if k not in ("steps", "guidance")}
    folder = tiny_dir(models, "tiny-distilled")
    assert (folder / "audio_vae/diffusion_pytorch_model.safetensors").stat().st_ino != (
        tiny_dir(models) / "audio_vae/diffusion_pytorch_model.safetensors"
    ).stat().st_ino
    assert (folder / "audio_vae/config.json").read_bytes() == (tiny_dir(models) / "audio_vae/config.json").read_bytes()
    frames, audio = render(folder)
    assert all(np.array_equal(x, y) for x, y in zip((frames, audio), render(tiny_dir(models)), strict=True))
    # the same name again: refused, unless replacing it
    code, data = run(capsys, models, str(source), "--like", TINY, "--name", "tiny-distilled")
    assert code == 2 and data["field"] == "name" and "already an entry" in data["error"]
    code, data = run(capsys, models, str(source), "--like", TINY, "--name", "tiny-distilled", "--replace")
    assert code == 0 and data["variant"] is None and verify(Vault(models), deep=True).ok


def test_checkpoint_with_the_video_vae(models, tmp_path, capsys):
    """The tiny 2.0 video VAE does not fit diffusers' 4-level key map (refused, naming the keys);
    a tiny pipeline with a 4-level VAE converts all three components."""
    code, data = run(
        capsys,
        models,
        str(write_checkpoint(tiny_dir(models), tmp_path / "two.safetensors", ("transformer", "vae", "audio_vae"))),
        "--like",
        TINY,
    )
    assert code == 2 and data["field"] == "file" and "its vae does not match" in data["error"]
    assert "encoder.mid_block.resnets.0.conv1.conv.weight" in data["error"]  # missing, as diffusers names it
    assert "vae.encoder.down_blocks.4.res_blocks.0.conv1.conv.weight" in data["error"]  # unexpected, as the file does

    like = four_level_pipeline(models / "pipelines" / "tiny-four")
    Vault(models).record("tiny-four", "pipeline", "ltx2", "pipelines/tiny-four", license="Apache-2.0")
    source = write_checkpoint(like, tmp_path / "four.safetensors", ("transformer", "vae", "audio_vae"))
    code, data = run(capsys, models, str(source), "--like", "tiny-four", "--name", "four-imported")
    assert code == 0, data
    assert data["imported_from"]["components"] == ["transformer", "vae", "audio_vae"]
    assert data["not_converted"]["vae (unused by diffusers)"] == 2  # the extra statistics
    folder = tiny_dir(models, "four-imported")
    for component in ("vae", "transformer", "audio_vae"):
        a, b = diffusers_tensors(like, component), diffusers_tensors(folder, component)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), component
    frames, audio = render(folder)
    expected = render(like)
    assert frames.shape == (1, 17, 64, 64, 3) and np.array_equal(frames, expected[0])
    assert np.array_equal(audio, expected[1])


# -- refusals: exit 2 naming the field, and nothing left in the vault -------------------------------------------------
def test_wrong_keys_and_shapes_are_named_and_leave_nothing(models, tmp_path, capsys):
    state = original_state_dict(tiny_dir(models), ("transformer",))
    before = entries_and_leftovers(models)
    renamed = dict(state)
    renamed["model.diffusion_model.proj_outt.weight"] = renamed.pop("model.diffusion_model.proj_out.weight")
    del renamed["model.diffusion_model.transformer_blocks.1.attn1.q_norm.weight"]
    save_file(renamed, str(tmp_path / "renamed.safetensors"))
    code, data = run(capsys, models, str(tmp_path / "renamed.safetensors"), "--like", TINY)
    assert code == 2 and data["field"] == "file" and "its transformer does not match" in data["error"]
    assert "2 missing" in data["error"] and "proj_out.weight" in data["error"]
    assert "transformer_blocks.1.attn1.norm_q.weight" in data["error"]
    assert "1 unexpected (model.diffusion_model.proj_outt.weight)" in data["error"]

    reshaped = dict(state)
    reshaped["model.diffusion_model.patchify_proj.weight"] = torch.zeros(16, 4)
    save_file(reshaped, str(tmp_path / "reshaped.safetensors"))
    code, data = run(capsys, models, str(tmp_path / "reshaped.safetensors"), "--like", TINY)
    assert code == 2 and "1 of another shape" in data["error"]
    assert "model.diffusion_model.patchify_proj.weight [16, 4] (expected [16, 8])" in data["error"]

    save_file({"vocoder.ups.0.weight": torch.zeros(2)}, str(tmp_path / "vocoder.safetensors"))
    save_file({**state, "lora_unet.x.weight": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    for name, words in (("vocoder", "holds no LTX-2 component"), ("other", "lora_unet.x.weight")):
        code, data = run(capsys, models, str(tmp_path / f"{name}.safetensors"), "--like", TINY)
        assert code == 2 and data["field"] == "file" and words in data["error"], data
    assert entries_and_leftovers(models) == before


def test_bad_requests_name_their_field(models, tmp_path, capsys):
    source = write_checkpoint(tiny_dir(models), tmp_path / "good.safetensors")
    marker = tmp_path / "pwned"

    class Boom:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (tmp_path / "evil.safetensors").write_bytes(pickle.dumps(Boom()))
    header = json.dumps({"a": {"dtype": "XX", "shape": [1], "data_offsets": [0, 1]}}).encode()
    (tmp_path / "odd.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + b"\0")
    before = entries_and_leftovers(models)
    cases = [
        ([str(tmp_path / "evil.safetensors"), "--like", TINY], "file", "not a safetensors file"),
        ([str(tmp_path / "odd.safetensors"), "--like", TINY], "file", "not a readable safetensors file"),
        ([str(tmp_path), "--like", TINY], "file", "not a regular file"),
        ([str(tmp_path / "none.safetensors"), "--like", TINY], "file", "does not exist"),
        ([str(source), "--like", "aiprod-tiny-clip"], "like", "not an LTX-2 pipeline"),
        ([str(source), "--like", "nope"], "like", "'nope'"),
        ([str(source), "--like", TINY, "--name", "../x"], "name", "plain name"),
        ([str(source), "--like", TINY, "--name", TINY, "--replace"], "name", "the like entry itself"),
        ([str(source), "--like", TINY, "--variant", "turbo"], "arguments", "invalid choice"),
    ]
    for args, field, words in cases:
        code, data = run(capsys, models, *args)
        assert code == 2 and data["field"] == field and words in data["error"], (args, data)
    assert not marker.exists() and entries_and_leftovers(models) == before


# -- the traps of from_single_file, cancelling and killing ----------------------------------------------------
def test_a_weight_the_loader_did_not_get_is_refused(models, tmp_path):
    source = write_checkpoint(tiny_dir(models), tmp_path / "t.safetensors")
    plan = plan_import(source, tiny_dir(models), TINY)
    plan.parts["transformer"].remove("model.diffusion_model.proj_out.weight")  # as if the file lacked it
    with pytest.raises(IntegrityError, match="would leave 1 weights unset \\(proj_out.weight\\)"):
        convert_part(plan, "transformer", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cancel_and_ctrl_c_leave_nothing(models, tmp_path, capsys, monkeypatch):
    from engine.models import single_file

    source = write_checkpoint(tiny_dir(models), tmp_path / "t.safetensors")
    before = entries_and_leftovers(models)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        import_checkpoint(Vault(models), source, TINY, cancel=cancel)
    assert entries_and_leftovers(models) == before

    def interrupted(*args, **kwargs):
        assert (models / "pipelines" / ".t.importing").is_dir()  # the half-written entry, hidden
        raise KeyboardInterrupt

    monkeypatch.setattr(single_file, "convert_part", interrupted)
    code, data = run(capsys, models, str(source), "--like", TINY)
    assert code == 4 and data["error"] == "interrupted"
    assert entries_and_leftovers(models) == before


def test_a_killed_import_is_cleared_and_can_run_again(models, tmp_path, capsys):
    source = write_checkpoint(tiny_dir(models), tmp_path / "t.safetensors")
    before = entries_and_leftovers(models)
    script = (
        "import sys, time\n"
        "from engine.models import single_file\n"
        "real = single_file.convert_part\n"
        "def slow(*a, **k):\n"
        "    real(*a, **k)\n"
        "    print('converted', flush=True)\n"
        "    time.sleep(60)\n"
        "single_file.convert_part = slow\n"
        "from aiprod_studio.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    args = ["vault", "import-checkpoint", str(source), "--like", TINY, "--models-dir", str(models)]
    proc = subprocess.Popen([sys.executable, "-c", script, *args], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "converted"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert (models / "pipelines" / ".t.importing").is_dir() and entries_and_leftovers(models)[0] == before[0]
    report = recover_staging(Vault(models))  # what the studio's start runs
    assert report.removed and entries_and_leftovers(models) == before
    started = time.perf_counter()
    code, data = run(capsys, models, str(source), "--like", TINY)
    assert code == 0 and data["name"] == "t" and time.perf_counter() - started < 60


def test_an_ltx_2_3_checkpoint_imports_with_its_fourth_decoder_stage(models, tmp_path, capsys):
    """LTX-2.3's video decoder has a fourth stage diffusers' single-file map does not name
    (`up_blocks.7`, `up_blocks.8`): the import names it as diffusers' conversion script does."""
    from aiprod_studio.generations import detect
    from engine.models.tiny_generations import make_tiny_generation

    like = make_tiny_generation(Vault(models), "2.3")
    like_dir = models / like.path
    source = write_checkpoint(like_dir, tmp_path / "ltx23.safetensors", ("transformer", "vae", "audio_vae"))
    code, data = run(capsys, models, str(source), "--like", like.name, "--name", "my-ltx23")
    assert code == 0, data
    folder = tiny_dir(models, "my-ltx23")
    assert detect(folder).version == "2.3"
    for component in ("vae", "transformer", "audio_vae"):
        a, b = diffusers_tensors(like_dir, component), diffusers_tensors(folder, component)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), component
    frames, audio = render(folder)
    expected = render(like_dir)
    assert np.array_equal(frames, expected[0]) and np.array_equal(audio, expected[1])
