"""Full-size LTX-2 denoising-step timing with random weights: nothing to download.

Builds the LTX-2.0 transformer (`LTX2VideoTransformer3DModel`) and, separately, its text
encoder (Gemma 3 12B + the LTX-2 text connectors) at their published sizes from their
published configurations, with random weights. Each model is built on the `meta` device and
materialised one block at a time straight on the device in its dtype (never a float32 copy
on the host), quantized there block by block when the profile asks.

For every profile (QUANTIZATION:OFFLOAD) it times a denoising step at each size: one
transformer forward with the pipeline's own arguments (video + audio latents, connector-sized
text states, timestep = sigma = sigma*1000, RoPE coords from `rope.prepare_video_coords` /
`audio_rope.prepare_audio_coords`), batch 2 = the classifier-free-guidance call. It reports the
median seconds after a warm-up and, on CUDA, the peak `torch.cuda.max_memory_allocated`
(reset for each profile and size). With `LTX2Pipeline`'s default guidance (stg_scale 1,
modality_scale 3) a step adds two batch-1 forwards, about twice this; a distilled model
(guidance 1) runs one batch-1 forward (`--batch 1`). The text encoder is timed on one prompt
of `--text-tokens` tokens (the pipeline pads every prompt to 1024).

Quantization: none (bf16 on CUDA, float32 on CPU), fp8, int8 (optimum-quanto weights, every
Linear, as the engine quantizes). Offload: none; model (accelerate hook, the model moves over
on its first call); group (diffusers group offloading, CUDA streams); sequential (accelerate,
leaf by leaf). A toy model tries each combination first, so one the libraries cannot run
(quanto weights with group or sequential offload) fails in a second, not after a 19 B build.
A failed profile is recorded with its error; the run goes on and exits 1.

Defaults on CUDA: published size (48 layers), 768x512x121 and 1280x704x121, 3 timed steps.
Defaults on a CPU (no CUDA, or --device cpu): a 1/8-width copy (head_dim / 8, so width =
published / 8), 4 transformer and 8 Gemma layers, float32, 256x160x25, 3 timed steps, one
timed prompt encode: about a minute on 2 idle cores. There the offload profiles have nowhere
to offload to; their hooks still run (group offloading without streams), which proves the
wiring, not the speed. --smoke: 1/8 width, 2 layers, 64x64x9, 128 text tokens, 1 timed step.

    python benchmarks/fullsize.py --json fullsize-h200.json          # CUDA, published size
    python benchmarks/fullsize.py --profiles none:none,fp8:none --size 1280x704x121
    python benchmarks/fullsize.py --device cpu --threads 2             # 1/8 width
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import logging
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiprod_studio import offline

offline.enforce()

log = logging.getLogger("benchmarks.fullsize")

# LTX-2.0 transformer as published: `get_ltx2_transformer_config("2.0")["diffusers_config"]` in
# huggingface/diffusers scripts/convert_ltx2_to_diffusers.py (commit 8d8a65621412d66ba493717f8c4574a1af46732d).
LTX2_TRANSFORMER_CONFIG: dict[str, Any] = {
    "in_channels": 128,
    "out_channels": 128,
    "patch_size": 1,
    "patch_size_t": 1,
    "num_attention_heads": 32,
    "attention_head_dim": 128,
    "cross_attention_dim": 4096,
    "vae_scale_factors": (8, 32, 32),
    "pos_embed_max_pos": 20,
    "base_height": 2048,
    "base_width": 2048,
    "audio_in_channels": 128,
    "audio_out_channels": 128,
    "audio_patch_size": 1,
    "audio_patch_size_t": 1,
    "audio_num_attention_heads": 32,
    "audio_attention_head_dim": 64,
    "audio_cross_attention_dim": 2048,
    "audio_scale_factor": 4,
    "audio_pos_embed_max_pos": 20,
    "audio_sampling_rate": 16000,
    "audio_hop_length": 160,
    "num_layers": 48,
    "activation_fn": "gelu-approximate",
    "qk_norm": "rms_norm_across_heads",
    "norm_elementwise_affine": False,
    "norm_eps": 1e-6,
    "caption_channels": 3840,
    "attention_bias": True,
    "attention_out_bias": True,
    "rope_theta": 10000.0,
    "rope_double_precision": True,
    "causal_offset": 1,
    "timestep_scale_multiplier": 1000,
    "cross_attn_timestep_scale_multiplier": 1000,
    "rope_type": "split",
}

# LTX-2.0 text connectors: `get_ltx2_connectors_config("2.0")` in the same file and commit.
LTX2_CONNECTORS_CONFIG: dict[str, Any] = {
    "caption_channels": 3840,
    "text_proj_in_factor": 49,
    "video_connector_num_attention_heads": 30,
    "video_connector_attention_head_dim": 128,
    "video_connector_num_layers": 2,
    "video_connector_num_learnable_registers": 128,
    "audio_connector_num_attention_heads": 30,
    "audio_connector_attention_head_dim": 128,
    "audio_connector_num_layers": 2,
    "audio_connector_num_learnable_registers": 128,
    "connector_rope_base_seq_len": 4096,
    "rope_theta": 10000.0,
    "rope_double_precision": True,
    "causal_temporal_positioning": False,
    "rope_type": "split",
}

# Gemma 3 12B (the converter's text encoder, google/gemma-3-12b-it-qat-q4_0-unquantized): its config.json
# as restated in ostris/ai-toolkit extensions_built_in/diffusion_models/ltx2/ltx2.py (Gemma3Config(**{...})).
GEMMA3_12B_CONFIG: dict[str, Any] = {
    "boi_token_index": 255999,
    "eoi_token_index": 256000,
    "image_token_index": 262144,
    "mm_tokens_per_image": 256,
    "text_config": {
        "head_dim": 256,
        "hidden_activation": "gelu_pytorch_tanh",
        "hidden_size": 3840,
        "intermediate_size": 15360,
        "max_position_embeddings": 131072,
        "num_attention_heads": 16,
        "num_hidden_layers": 48,
        "num_key_value_heads": 8,
        "query_pre_attn_scalar": 256,
        "rms_norm_eps": 1e-06,
        "rope_local_base_freq": 10000,
        "rope_scaling": {"factor": 8.0, "rope_type": "linear"},
        "rope_theta": 1000000,
        "sliding_window": 1024,
        "vocab_size": 262208,
    },
    "vision_config": {
        "hidden_act": "gelu_pytorch_tanh",
        "hidden_size": 1152,
        "image_size": 896,
        "intermediate_size": 4304,
        "layer_norm_eps": 1e-06,
        "num_attention_heads": 16,
        "num_channels": 3,
        "num_hidden_layers": 27,
        "patch_size": 14,
        "vision_use_head": False,
    },
}

# Published sizes. LTX-2.0 is the "19b" model of Lightricks/LTX-2 README.md (LTX-2-19b-* LoRAs). Gemma 3 12B
# (vision + text): 12,187,079,280 parameters in keras-team/keras-hub keras_hub/src/models/gemma3/gemma3_presets.py
# ("gemma3_instruct_12b"), whose vocabulary has 262,144 tokens; the Hugging Face config has 64 more (x 3840).
PUBLISHED_TRANSFORMER_PARAMS = 19_000_000_000
PUBLISHED_GEMMA_PARAMS = 12_187_079_280 + 64 * 3840

VAE_SPATIAL, VAE_TEMPORAL = 32, 8  # LTX-2 video VAE compression (latent channels = in_channels = 128)
# the pipeline's audio defaults (LTX-2 audio VAE): 16 kHz, hop 160, 4x temporal, 8 channels x 64/4 mel bins
AUDIO_SAMPLING_RATE, AUDIO_HOP_LENGTH, AUDIO_VAE_TEMPORAL = 16000, 160, 4
AUDIO_LATENT_CHANNELS, AUDIO_MEL_BINS, AUDIO_VAE_MEL = 8, 64, 4
QUANTIZATIONS = ("none", "fp8", "int8")
OFFLOADS = ("none", "model", "group", "sequential")
DEFAULT_PROFILES = "none:none,fp8:none,int8:none,fp8:group,none:sequential"
SCALES = (1, 2, 4, 8)


def scaled_configs(scale: int, layers: int, text_layers: int) -> tuple[dict, dict, dict]:
    """The published configs at 1/`scale` width (head_dim / scale, same head counts) and the given depths."""
    t = dict(LTX2_TRANSFORMER_CONFIG, num_layers=layers)
    for key in ("attention_head_dim", "audio_attention_head_dim", "cross_attention_dim"):
        t[key] = LTX2_TRANSFORMER_CONFIG[key] // scale
    t["audio_cross_attention_dim"] = LTX2_TRANSFORMER_CONFIG["audio_cross_attention_dim"] // scale
    t["caption_channels"] = LTX2_TRANSFORMER_CONFIG["caption_channels"] // scale
    text = dict(GEMMA3_12B_CONFIG["text_config"], num_hidden_layers=text_layers)
    for key in ("head_dim", "hidden_size", "intermediate_size", "query_pre_attn_scalar"):
        text[key] = GEMMA3_12B_CONFIG["text_config"][key] // scale
    vision = dict(GEMMA3_12B_CONFIG["vision_config"])
    for key in ("hidden_size", "intermediate_size"):
        vision[key] = GEMMA3_12B_CONFIG["vision_config"][key] // scale
    gemma = dict(GEMMA3_12B_CONFIG, text_config=text, vision_config=vision)
    c = dict(LTX2_CONNECTORS_CONFIG, caption_channels=text["hidden_size"], text_proj_in_factor=text_layers + 1)
    for key in ("video_connector_attention_head_dim", "audio_connector_attention_head_dim"):
        c[key] = LTX2_CONNECTORS_CONFIG[key] // scale
    return t, gemma, c


def count_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def meta_transformer(config: dict, dtype):
    import torch
    from diffusers import LTX2VideoTransformer3DModel

    with torch.device("meta"):
        model = LTX2VideoTransformer3DModel.from_config(config)
    # nn.Module's own cast: diffusers' `to` warns about an (empty) keep-in-float32 list
    return torch.nn.Module.to(model, dtype)


def meta_text_encoder(gemma_config: dict, connectors_config: dict, dtype):
    import torch
    from diffusers.pipelines.ltx2 import LTX2TextConnectors
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    with torch.device("meta"):
        gemma = Gemma3ForConditionalGeneration(Gemma3Config(**gemma_config)).to(dtype)
        connectors = LTX2TextConnectors.from_config(connectors_config)
    return gemma, torch.nn.Module.to(connectors, dtype)


def random_init_(module, prefix: str = "", recurse: bool = True) -> None:
    """Small random weights in place: N(0, 0.02) matrices, zero biases, unit norm scales."""
    import torch

    with torch.no_grad():
        for name, p in module.named_parameters(prefix=prefix, recurse=recurse):
            if name.endswith("bias"):
                p.zero_()
            elif "norm" in name:
                p.fill_(1.0)
            else:
                p.normal_(0.0, 0.02)


def qtype(quantization: str):
    from optimum.quanto import qfloat8, qint8

    return {"fp8": qfloat8, "int8": qint8}[quantization]


def materialise_transformer(model, device, quantization: str, park) -> None:
    """Give a meta-device transformer real random weights on `device` one unit (block) at a time.

    A unit is quantized there when asked (only one unit's full-precision weights ever exist on
    the device), then moved to `park` (the CPU, for offloaded profiles).
    """
    import torch
    from optimum.quanto import freeze, quantize

    # 1. The model's own parameters (output scale/shift tables) first; they stay with the root module.
    model.to_empty(device=device, recurse=False)
    random_init_(model, recurse=False)
    # 2. Then every child, and each transformer block on its own.
    units = [n for n, _ in model.named_children() if n != "transformer_blocks"]
    units += [f"transformer_blocks.{i}" for i in range(len(model.transformer_blocks))]
    for name in units:
        unit = model.get_submodule(name)
        unit.to_empty(device=device)
        random_init_(unit)
        if quantization != "none":
            quantize(model, weights=qtype(quantization), include=[name, f"{name}.*"])
            unit = model.get_submodule(name)  # a Linear child is replaced by its quantized twin
            freeze(unit)
        if park != device:
            unit.to(park)
    if park != device:
        model.to(park)  # the root's own tables; the units are there already
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def materialise_text_encoder(gemma, connectors, device) -> None:
    """Random weights for Gemma (its own initialiser: buffers such as RoPE frequencies too) and the connectors."""
    import torch

    gemma.to_empty(device=device)
    with torch.no_grad():
        for m in gemma.modules():
            gemma._init_weights(m)
        for name, buf in gemma.named_buffers():
            if name.endswith("position_ids"):
                buf.copy_(torch.arange(buf.shape[-1], device=device).expand_as(buf))
    connectors.to_empty(device=device)
    random_init_(connectors)


def apply_offload(model, offload: str, device, group_type: str, blocks_per_group: int) -> dict[str, Any]:
    """Attach the profile's offloading to a model parked on the CPU; return what was applied."""
    from diffusers.hooks import apply_group_offloading

    if offload == "none":
        return {}
    if offload == "model":
        from accelerate import cpu_offload_with_hook

        cpu_offload_with_hook(model, execution_device=device)
        return {"hook": "accelerate.cpu_offload_with_hook"}
    if offload == "sequential":
        from accelerate import cpu_offload

        # as `DiffusionPipeline.enable_sequential_cpu_offload` does for a model with parameters of its own
        cpu_offload(model, execution_device=device, offload_buffers=len(model._parameters) > 0)
        return {"hook": "accelerate.cpu_offload"}
    use_stream = device.type == "cuda"  # streams need an accelerator; on a CPU the hooks run without them
    apply_group_offloading(  # what `ModelMixin.enable_group_offload` calls, and it takes a plain module too
        model,
        onload_device=device,
        offload_device="cpu",
        offload_type=group_type,
        num_blocks_per_group=blocks_per_group if group_type == "block_level" else None,
        use_stream=use_stream,
    )
    return {"offload_type": group_type, "blocks_per_group": blocks_per_group, "use_stream": use_stream}


# quantized weights with these offloads, as reported upstream
KNOWN_ISSUES = {
    "group": "optimum-quanto weights and diffusers group offloading, huggingface/diffusers#12610",
    "sequential": "optimum-quanto weights and accelerate's sequential offload, huggingface/diffusers#10526",
}


def probe_profile(quantization: str, offload: str, device, dtype, group_type: str, blocks_per_group: int):
    """Run the profile's quantization and offloading on a two-layer toy first: a combination the
    libraries cannot do fails here in a second, not after materialising 19 B parameters. None if it runs."""
    import torch
    from optimum.quanto import freeze, quantize

    toy = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.GELU(), torch.nn.Linear(64, 64)).to(device, dtype)
    try:
        if quantization != "none":
            quantize(toy, weights=qtype(quantization))
            freeze(toy)
        if offload != "none":
            toy.to("cpu")
            apply_offload(toy, offload, device, group_type, blocks_per_group)
        with torch.no_grad():
            toy(torch.randn(2, 64, device=device, dtype=dtype))
    except Exception as exc:  # the very thing being probed: any failure means the profile cannot run
        hint = KNOWN_ISSUES.get(offload) if quantization != "none" else None
        return f"{type(exc).__name__}: {exc}" + (f" ({hint})" if hint else "")
    finally:
        del toy
    return None


def step_inputs(model, size: tuple[int, int, int], fps: float, batch: int, text_tokens: int, device, dtype) -> dict:
    """The keyword arguments `LTX2Pipeline.__call__` passes to the transformer for one step at this size."""
    import torch

    width, height, frames = size
    cfg = model.config
    lat_f, lat_h, lat_w = (frames - 1) // VAE_TEMPORAL + 1, height // VAE_SPATIAL, width // VAE_SPATIAL
    audio_frames = round(frames / fps * AUDIO_SAMPLING_RATE / AUDIO_HOP_LENGTH / AUDIO_VAE_TEMPORAL)
    audio_channels = AUDIO_LATENT_CHANNELS * (AUDIO_MEL_BINS // AUDIO_VAE_MEL)
    g = torch.Generator(device="cpu").manual_seed(0)

    def noise(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g).to(device=device, dtype=dtype)

    t = torch.full((batch,), 0.75 * 1000.0, device=device)  # a mid-schedule sigma, scaled as the scheduler does
    return {
        "hidden_states": noise(batch, lat_f * lat_h * lat_w, cfg.in_channels),
        "audio_hidden_states": noise(batch, audio_frames, audio_channels),
        "encoder_hidden_states": noise(batch, text_tokens, cfg.caption_channels),
        "audio_encoder_hidden_states": noise(batch, text_tokens, cfg.caption_channels),
        "timestep": t,
        "sigma": t,
        "encoder_attention_mask": torch.ones(batch, text_tokens, dtype=torch.int64, device=device),
        "audio_encoder_attention_mask": torch.ones(batch, text_tokens, dtype=torch.int64, device=device),
        "num_frames": lat_f,
        "height": lat_h,
        "width": lat_w,
        "fps": fps,
        "audio_num_frames": audio_frames,
        "video_coords": model.rope.prepare_video_coords(batch, lat_f, lat_h, lat_w, device, fps=fps),
        "audio_coords": model.audio_rope.prepare_audio_coords(batch, audio_frames, device),
        "isolate_modalities": False,
        "spatio_temporal_guidance_blocks": None,
        "perturbation_mask": None,
        "use_cross_timestep": True,  # the pipeline's default
        "return_dict": False,
    }


def timed_calls(fn, warmup: int, steps: int, device) -> tuple[list[float], list[float], Any]:
    """Run `fn` warmup + steps times, synchronising the device around each call."""
    import torch

    def one() -> tuple[float, Any]:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - started, out

    warm = [one()[0] for _ in range(warmup)]
    timed, out = [], None
    for _ in range(steps):
        seconds, out = one()
        timed.append(seconds)
    return warm, timed, out


def host_peak_rss_gib() -> float:
    """The process's peak resident memory so far (Linux reports KiB): shows that no host copy was made."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3)


def gib(n: int | None) -> float | None:
    return None if n is None else round(n / 2**30, 3)


def free(device) -> None:
    import torch

    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()


def run_profile(args, profile: tuple[str, str], t_config: dict, device, dtype) -> dict[str, Any]:
    """Build, quantize and offload one transformer as the profile says, time a step at every size, free it."""
    import torch

    from engine.models.quantize import weight_bytes

    quantization, offload = profile
    result: dict[str, Any] = {"profile": f"{quantization}:{offload}", "quantization": quantization, "offload": offload}
    model = None
    try:
        # 1. The same quantization and offloading on a toy model: refused combinations end here, cheaply.
        problem = probe_profile(quantization, offload, device, dtype, args.group_offload_type, args.blocks_per_group)
        if problem:
            log.error("profile %s cannot run: %s", result["profile"], problem)
            result["error"] = problem
            return result

        # 2. Build on meta, materialise block by block on the device (quantizing there), park it if offloaded.
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        started = time.perf_counter()
        torch.manual_seed(args.seed)
        model = meta_transformer(t_config, dtype)
        park = torch.device("cpu") if offload != "none" else device
        materialise_transformer(model, device, quantization, park)
        model.eval()
        result["params"] = count_params(model)
        result["weight_bytes"] = weight_bytes(model)
        result["offload_settings"] = apply_offload(
            model, offload, device, args.group_offload_type, args.blocks_per_group
        )
        result["setup_s"] = round(time.perf_counter() - started, 3)
        if device.type == "cuda":
            result["setup_peak_gib"] = gib(torch.cuda.max_memory_allocated(device))
            result["resident_gib"] = gib(torch.cuda.memory_allocated(device))
        log.info("%s built in %.1fs", result["profile"], result["setup_s"])

        # 3. Time a step at each size (fresh peak for each), under no_grad as the pipeline's __call__ runs.
        result["sizes"] = []
        for size in args.size:
            kwargs = step_inputs(model, size, args.fps, args.batch, args.text_tokens, device, dtype)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            with torch.no_grad():
                warm, timed, out = timed_calls(functools.partial(model, **kwargs), args.warmup, args.steps, device)
            video, audio = out
            entry = {
                "size": "x".join(map(str, size)),
                "video_tokens": kwargs["hidden_states"].shape[1],
                "audio_tokens": kwargs["audio_hidden_states"].shape[1],
                "text_tokens": args.text_tokens,
                "batch": args.batch,
                "seconds_per_step": round(statistics.median(timed), 4),
                "steps_s": [round(s, 4) for s in timed],
                "warmup_s": [round(s, 4) for s in warm],
                "peak_gib": gib(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None,
                "output_shapes": [list(video.shape), list(audio.shape)],
                "finite": bool(torch.isfinite(video).all() and torch.isfinite(audio).all()),
                "host_peak_rss_gib": host_peak_rss_gib(),
            }
            result["sizes"].append(entry)
            log.info("%s %s: %.3f s/step", result["profile"], entry["size"], entry["seconds_per_step"])
            del kwargs, out, video, audio
    except Exception as exc:  # one failing profile (out of memory, an unsupported combination) must not end the run
        log.exception("profile %s failed", result["profile"])
        result["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        model = None
        free(device)
    return result


def run_text_encoder(args, gemma_config: dict, c_config: dict, device, dtype) -> dict[str, Any]:
    """Build Gemma 3 + connectors, time one prompt encode as `LTX2Pipeline.encode_prompt` + connectors do it."""
    import torch

    result: dict[str, Any] = {"text_tokens": args.text_tokens}
    gemma = connectors = None
    try:
        # 1. Build on meta, materialise on the device.
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        torch.manual_seed(args.seed)
        gemma, connectors = meta_text_encoder(gemma_config, c_config, dtype)
        materialise_text_encoder(gemma, connectors, device)
        gemma.eval()
        connectors.eval()
        result["gemma_params"] = count_params(gemma)
        result["connectors_params"] = count_params(connectors)

        # 2. One left-padded prompt (a quarter of it real tokens), the pipeline's calls.
        n = args.text_tokens
        ids = torch.randint(0, gemma_config["boi_token_index"], (1, n), generator=torch.Generator().manual_seed(0))
        mask = torch.zeros(1, n, dtype=torch.int64)
        mask[:, n - n // 4 :] = 1
        ids, mask = ids.to(device), mask.to(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)

        def encode(gemma=gemma):  # `_get_gemma_prompt_embeds`: every hidden state, stacked and packed
            out = gemma(input_ids=ids, attention_mask=mask, output_hidden_states=True)
            return torch.stack(out.hidden_states, dim=-1).flatten(2, 3)

        with torch.no_grad():
            _, gemma_s, hidden = timed_calls(encode, args.warmup, args.text_steps, device)
            connect = functools.partial(connectors, hidden, mask, padding_side="left")
            _, conn_s, (video_ctx, audio_ctx, _) = timed_calls(connect, args.warmup, args.text_steps, device)
        result.update(
            gemma_s=round(statistics.median(gemma_s), 4),
            connectors_s=round(statistics.median(conn_s), 4),
            encode_s=round(statistics.median(gemma_s) + statistics.median(conn_s), 4),
            hidden_shape=list(hidden.shape),
            context_shape=list(video_ctx.shape),
            finite=bool(torch.isfinite(video_ctx).all() and torch.isfinite(audio_ctx).all()),
            peak_gib=gib(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None,
            host_peak_rss_gib=host_peak_rss_gib(),
        )
        log.info("text encoder: %.3f s (Gemma) + %.3f s (connectors)", result["gemma_s"], result["connectors_s"])
    except Exception as exc:  # reported in the table and the JSON like a failing profile
        log.exception("text encoder failed")
        result["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        gemma = connectors = encode = connect = hidden = video_ctx = audio_ctx = None
        free(device)
    return result


def parse_sizes(text: str) -> list[tuple[int, int, int]]:
    sizes = []
    for item in text.split(","):
        try:
            width, height, frames = (int(v) for v in item.lower().split("x"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHTxFRAMES[,...], got {item!r}") from None
        if width <= 0 or height <= 0 or width % VAE_SPATIAL or height % VAE_SPATIAL:
            raise argparse.ArgumentTypeError(f"width and height must be positive multiples of 32, got {item!r}")
        if frames < 1 or (frames - 1) % VAE_TEMPORAL:
            raise argparse.ArgumentTypeError(f"frames must be 8k+1 (9, 25, 121, ...), got {frames} in {item!r}")
        sizes.append((width, height, frames))
    return sizes


def parse_profiles(text: str) -> list[tuple[str, str]]:
    profiles = []
    for item in text.split(","):
        quantization, _, offload = item.partition(":")
        if quantization not in QUANTIZATIONS or offload not in OFFLOADS:
            raise argparse.ArgumentTypeError(
                f"each profile is QUANTIZATION:OFFLOAD with quantization in {'/'.join(QUANTIZATIONS)} and offload "
                f"in {'/'.join(OFFLOADS)}, got {item!r}"
            )
        profiles.append((quantization, offload))
    return profiles


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def non_negative(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected 0 or a positive integer, got {text!r}")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: CUDA when present")
    ap.add_argument("--profiles", type=parse_profiles, help=f"QUANT:OFFLOAD,... (default {DEFAULT_PROFILES})")
    ap.add_argument(
        "--size", type=parse_sizes, help="WxHxF,... (default 768x512x121,1280x704x121 on CUDA, 256x160x25 on CPU)"
    )
    ap.add_argument("--scale", type=int, choices=SCALES, help="width divisor (default 1 on CUDA, 8 on CPU)")
    ap.add_argument("--layers", type=positive, help="transformer blocks (default 48 on CUDA, 4 on CPU)")
    ap.add_argument("--text-layers", type=positive, help="Gemma layers (default 48 on CUDA, 8 on CPU)")
    ap.add_argument("--text-tokens", type=positive, help="prompt length, a multiple of 128 (default 1024)")
    ap.add_argument("--steps", type=positive, help="timed steps; the median is reported (default 3)")
    ap.add_argument("--text-steps", type=positive, help="timed prompt encodes (default 3 on CUDA, 1 on CPU)")
    ap.add_argument("--warmup", type=non_negative, default=1, help="untimed calls before timing (default 1)")
    ap.add_argument("--batch", type=positive, default=2, help="2 = classifier-free guidance, as the pipeline runs")
    ap.add_argument("--fps", type=float, default=24.0)
    ap.add_argument("--group-offload-type", choices=("block_level", "leaf_level"), default="block_level")
    ap.add_argument("--blocks-per-group", type=positive, default=1)
    ap.add_argument("--no-text-encoder", action="store_true", help="skip the Gemma 3 + connectors timing")
    ap.add_argument("--smoke", action="store_true", help="1/8 width, 2 layers, 64x64x9, 128 tokens, 1 step")
    ap.add_argument("--threads", type=positive, help="CPU threads for torch (default: torch's own choice)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="write the results here (rewritten after each profile)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")

    # 1. Check the flags, then resolve the device and the defaults: explicit flags, then --smoke, then the device's.
    if args.text_tokens is not None and args.text_tokens % 128:
        ap.error(f"--text-tokens must be a multiple of 128 (the connectors' 128 registers), got {args.text_tokens}")
    if args.json and not args.json.parent.is_dir():
        ap.error(f"--json: folder {args.json.parent} does not exist")

    import diffusers
    import optimum.quanto
    import torch
    import transformers

    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: no CUDA device is available here")
    device = torch.device("cuda" if args.device != "cpu" and torch.cuda.is_available() else "cpu")
    on_cpu = device.type == "cpu"
    keys = ("scale", "layers", "text_layers", "size", "text_tokens", "steps", "text_steps")
    defaults = {
        "smoke": (8, 2, 2, "64x64x9", 128, 1, 1),
        "cpu": (8, 4, 8, "256x160x25", 1024, 3, 1),
        "cuda": (1, 48, 48, "768x512x121,1280x704x121", 1024, 3, 3),
    }["smoke" if args.smoke else device.type]
    for key, value in zip(keys, defaults, strict=True):
        if getattr(args, key) is None:
            setattr(args, key, parse_sizes(value) if key == "size" else value)
    args.profiles = args.profiles or parse_profiles(DEFAULT_PROFILES)
    if on_cpu and args.scale == 1:
        ap.error("--scale 1 on the CPU: the published 19 B transformer needs ~76 GB in float32; use --scale 8")
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = torch.float32 if on_cpu else torch.bfloat16
    device_name = torch.cuda.get_device_name(device) if not on_cpu else f"CPU, {os.cpu_count()} cores"

    # 2. Parameter counts: the published size on meta (free), against the published figures.
    t_config, gemma_config, c_config = scaled_configs(args.scale, args.layers, args.text_layers)
    full = meta_transformer(LTX2_TRANSFORMER_CONFIG, dtype)
    full_gemma, full_connectors = meta_text_encoder(GEMMA3_12B_CONFIG, LTX2_CONNECTORS_CONFIG, dtype)
    report: dict[str, Any] = {
        "device": device_name,
        "dtype": str(dtype).removeprefix("torch."),
        "scale": args.scale,
        "layers": args.layers,
        "text_layers": args.text_layers,
        "batch": args.batch,
        "fps": args.fps,
        "warmup": args.warmup,
        "steps": args.steps,
        "threads": torch.get_num_threads(),
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "diffusers": diffusers.__version__,
            "transformers": transformers.__version__,
            "optimum-quanto": optimum.quanto.__version__,
        },
        "config_source": "huggingface/diffusers scripts/convert_ltx2_to_diffusers.py @ 8d8a656 (LTX-2.0), "
        "Gemma 3 12B config.json via ostris/ai-toolkit extensions_built_in/diffusion_models/ltx2/ltx2.py",
        "transformer_config": {k: list(v) if isinstance(v, tuple) else v for k, v in t_config.items()},
        "published": {
            "transformer_params": count_params(full),
            "transformer_reference": PUBLISHED_TRANSFORMER_PARAMS,
            "gemma_params": count_params(full_gemma),
            "gemma_reference": PUBLISHED_GEMMA_PARAMS,
            "connectors_params": count_params(full_connectors),
        },
        "profiles": [],
    }
    del full, full_gemma, full_connectors
    pub = report["published"]
    log.info(
        "published size: transformer %.3f B (LTX-2 '19B': x%.4f), Gemma 3 %.3f B (x%.6f), connectors %.3f B",
        pub["transformer_params"] / 1e9,
        pub["transformer_params"] / pub["transformer_reference"],
        pub["gemma_params"] / 1e9,
        pub["gemma_params"] / pub["gemma_reference"],
        pub["connectors_params"] / 1e9,
    )

    def write() -> None:
        if args.json:
            tmp = args.json.with_name(args.json.name + ".tmp")
            tmp.write_text(json.dumps(report, indent=2) + "\n")
            os.replace(tmp, args.json)

    # 3. Each profile on its own, everything freed in between; then the text encoder.
    for profile in args.profiles:
        report["profiles"].append(run_profile(args, profile, t_config, device, dtype))
        write()
    if not args.no_text_encoder:
        report["text_encoder"] = run_text_encoder(args, gemma_config, c_config, device, dtype)
        write()

    # 4. The table.
    width = "published" if args.scale == 1 else f"1/{args.scale}"
    built = next((p["params"] for p in report["profiles"] if "params" in p), None)
    threads = f"; {report['threads']} threads" if on_cpu else ""
    print(f"device: {device_name}{threads}; {report['dtype']}; {width} width, {args.layers} layers; batch {args.batch}")
    print(
        f"transformer: published size {pub['transformer_params'] / 1e9:.3f} B "
        f"(LTX-2 '19B': x{pub['transformer_params'] / pub['transformer_reference']:.4f}); "
        f"built {built / 1e9 if built else float('nan'):.4f} B"
    )
    print(f"{'profile':<16} {'size':<14} {'tokens v/a':>11} {'s/step':>9} {'peak GiB':>9} {'weights GiB':>12}")
    for p in report["profiles"]:
        if "error" in p:
            print(f"{p['profile']:<16} failed: {p['error']}")
        for s in p.get("sizes", []):
            peak = "-" if s["peak_gib"] is None else f"{s['peak_gib']:.2f}"
            tokens = f"{s['video_tokens']}/{s['audio_tokens']}"
            print(
                f"{p['profile']:<16} {s['size']:<14} {tokens:>11} {s['seconds_per_step']:>9.3f} {peak:>9} "
                f"{p['weight_bytes'] / 2**30:>12.2f}"
            )
    te = report.get("text_encoder")
    if te is not None:
        print(
            f"text encoder: Gemma 3 published {pub['gemma_params'] / 1e9:.3f} B "
            f"(reference x{pub['gemma_params'] / pub['gemma_reference']:.6f}) + connectors "
            f"{pub['connectors_params'] / 1e9:.3f} B"
        )
        if "error" in te:
            print(f"text encoder failed: {te['error']}")
        else:
            peak = "-" if te["peak_gib"] is None else f"{te['peak_gib']:.2f} GiB"
            print(
                f"  built {te['gemma_params'] / 1e9:.4f} B + {te['connectors_params'] / 1e9:.4f} B; "
                f"{te['text_tokens']} tokens: Gemma {te['gemma_s']:.3f} s + connectors {te['connectors_s']:.3f} s, "
                f"peak {peak}"
            )
    failed = [p["profile"] for p in report["profiles"] if "error" in p] + (
        ["text encoder"] if te and "error" in te else []
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
