"""Profiles for `fullsize.py`: quantization and offloading applied to a model, and the timed calls.

A profile (QUANTIZATION:OFFLOAD) is tried on a toy model first, then applied to the transformer
built by `fullsize_models`; a denoising step is timed at each size with the pipeline's own
arguments. The text encoder is timed on one prompt the same way.
"""

from __future__ import annotations

import functools
import gc
import logging
import resource
import statistics
import time
from typing import Any

from fullsize_models import (
    AUDIO_HOP_LENGTH,
    AUDIO_LATENT_CHANNELS,
    AUDIO_MEL_BINS,
    AUDIO_SAMPLING_RATE,
    AUDIO_VAE_MEL,
    AUDIO_VAE_TEMPORAL,
    VAE_SPATIAL,
    VAE_TEMPORAL,
    count_params,
    materialise_text_encoder,
    materialise_transformer,
    meta_text_encoder,
    meta_transformer,
    qtype,
)

log = logging.getLogger("benchmarks.fullsize")


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
