"""benchmarks/fullsize.py: the full-size LTX-2 step benchmark, run in its --smoke mode on the CPU.

One smoke run (1/8 width, 2 layers, 64x64x9, one thread so a busy machine cannot swamp it) is
shared by the tests, which read its JSON. Parameter counts are checked against a count
written out by hand from the LTX-2.0 configuration (huggingface/diffusers
scripts/convert_ltx2_to_diffusers.py), not against diffusers' own modules.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "fullsize.py"
PROFILES = ["none:none", "int8:none", "fp8:none", "none:group", "none:model"]

# LTX-2.0 as published: video 32 heads x 128, audio 32 heads x 64, text states 3840 wide, 48 blocks
VIDEO, AUDIO, CAPTION, LAYERS, LATENT = 32 * 128, 32 * 64, 3840, 48, 128
GEMMA3_12B_KERAS_PARAMS, GEMMA_EXTRA_TOKENS, GEMMA_WIDTH = 12_187_079_280, 64, 3840


def ltx2_params(video: int, audio: int, caption: int, layers: int) -> int:
    """Parameters of an LTX-2.0 transformer, counted layer by layer from its architecture."""

    def linear(i: int, o: int) -> int:
        return i * o + o

    def attention(query: int, source: int, inner: int) -> int:  # q, k, v, out, and the q/k RMSNorm scales
        return linear(query, inner) + 2 * linear(source, inner) + linear(inner, query) + 2 * inner

    def feed_forward(d: int) -> int:
        return linear(d, 4 * d) + linear(4 * d, d)

    def adaln(d: int, n: int) -> int:  # timestep embedding (256 → d → d), then n modulation vectors
        return linear(256, d) + linear(d, d) + linear(d, n * d)

    block = (
        attention(video, video, video)  # video self-attention
        + attention(audio, audio, audio)  # audio self-attention
        + attention(video, video, video)  # video ← text (cross_attention_dim = video width)
        + attention(audio, audio, audio)  # audio ← text
        + attention(video, audio, audio)  # audio → video
        + attention(audio, video, audio)  # video → audio
        + feed_forward(video)
        + feed_forward(audio)
        + 11 * video  # 6 scale/shift + 5 cross-modal rows
        + 11 * audio
    )
    top = (
        linear(LATENT, video)
        + linear(LATENT, audio)
        + linear(caption, video)
        + linear(video, video)  # caption projection
        + linear(caption, audio)
        + linear(audio, audio)
        + adaln(video, 6)
        + adaln(audio, 6)
        + adaln(video, 4)
        + adaln(audio, 4)
        + adaln(video, 1)
        + adaln(audio, 1)
        + 2 * video
        + 2 * audio  # output scale/shift
        + linear(video, LATENT)
        + linear(audio, LATENT)
    )
    return layers * block + top


def run(*args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("fullsize") / "smoke.json"
    result = run("--smoke", "--device", "cpu", "--threads", "1", "--profiles", ",".join(PROFILES), "--json", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(out.read_text()), result.stdout


def test_the_smoke_run_times_one_step_for_every_profile_asked(smoke):
    report, table = smoke
    assert [p["profile"] for p in report["profiles"]] == PROFILES
    assert report["device"].startswith("CPU, ") and report["dtype"] == "float32" and report["scale"] == 8
    for p in report["profiles"]:
        assert "error" not in p, p
        (size,) = p["sizes"]
        # 64x64x9: latent 2 frames x 2 x 2; audio round(9/24 s x 25 latents/s) = 9
        assert (size["size"], size["video_tokens"], size["audio_tokens"]) == ("64x64x9", 8, 9)
        assert size["output_shapes"] == [[2, 8, 128], [2, 9, 128]]
        assert size["finite"] is True
        assert len(size["steps_s"]) == 1 and size["seconds_per_step"] > 0
        assert size["peak_gib"] is None  # no CUDA
        assert f"{p['profile']:<16} 64x64x9" in table
    assert report["profiles"][3]["offload_settings"]["use_stream"] is False  # group offloading, no streams on CPU


def test_the_built_transformer_has_the_parameters_its_config_implies(smoke):
    report, _ = smoke
    expected = ltx2_params(VIDEO // 8, AUDIO // 8, CAPTION // 8, layers=2)
    assert expected == 18_195_712
    assert {p["params"] for p in report["profiles"]} == {expected}
    unquantized = next(p for p in report["profiles"] if p["profile"] == "none:none")
    assert unquantized["weight_bytes"] == expected * 4  # float32, nothing else in the state dict


def test_the_published_size_counted_on_meta_is_the_19b_ltx2_and_the_12b_gemma(smoke):
    published = smoke[0]["published"]
    assert published["transformer_params"] == ltx2_params(VIDEO, AUDIO, CAPTION, LAYERS) == 18_876_174_592
    assert abs(published["transformer_params"] / 19e9 - 1) < 0.03
    # Gemma 3 12B with its Hugging Face vocabulary (64 tokens more than keras-hub's 262,144)
    assert published["gemma_params"] == GEMMA3_12B_KERAS_PARAMS + GEMMA_EXTRA_TOKENS * GEMMA_WIDTH


def test_int8_and_fp8_profiles_run_on_the_cpu_with_quantized_weights(smoke):
    profiles = {p["profile"]: p for p in smoke[0]["profiles"]}
    full = profiles["none:none"]["weight_bytes"]
    for name in ("int8:none", "fp8:none"):
        p = profiles[name]
        assert p["quantization"] == name.split(":")[0]
        assert p["sizes"][0]["finite"] is True and p["sizes"][0]["seconds_per_step"] > 0
        assert p["weight_bytes"] < 0.3 * full  # one byte a weight (plus scales) instead of four


def test_the_text_encoder_encodes_one_prompt_into_connector_states(smoke):
    te = smoke[0]["text_encoder"]
    assert "error" not in te, te
    # 1/8 of Gemma's 3840 width; 2 layers + the embeddings = 3 hidden states packed together
    assert te["hidden_shape"] == [1, 128, 480 * 3]
    assert te["context_shape"] == [1, 128, 480]
    assert te["finite"] is True and te["gemma_s"] > 0 and te["connectors_s"] > 0


@pytest.mark.parametrize(
    ("flag", "value", "says"),
    [
        ("--profiles", "fp16:none", "'fp16:none'"),
        ("--size", "700x512x121", "'700x512x121'"),
        ("--size", "768x512x120", "got 120"),
        ("--text-tokens", "1000", "got 1000"),
        ("--steps", "0", "'0'"),
    ],
)
def test_a_bad_flag_is_refused_naming_the_flag_and_the_value(flag, value, says):
    result = run(flag, value, timeout=60)
    assert result.returncode == 2
    assert flag in result.stderr and says in result.stderr, result.stderr
