"""The memory model: peak device and host memory of one render, before anything loads.

A render runs in phases — encode the prompt, denoise, decode the video — and each phase
needs its weights where it computes plus its working memory (activations). Where the weights
wait between phases is the offload mode:

    none        every component on the device the whole time: Σ weights + the largest phase
    model       a component moves to the device while it runs: max over phases (its weights + work)
    group       block by block with CUDA streams: two blocks of a component in flight + work
    sequential  layer by layer: about one layer's weights + work (the least memory, the slowest)

and the host (RAM) keeps what is not on the device (offloaded weights, in pinned memory), the
decoded frames as float arrays, and while loading every component on its way to the device —
the transformer in full precision when it is quantized while loading (a quantized copy in the
vault is read as stored).

Working memory per phase, in elements of the compute dtype:

    prompt    passes × prompt tokens × text width × (text layers + 1)  (LTX-2 keeps every layer)
    denoise   passes × (video tokens × video width + audio tokens × audio width) × K_DENOISE
    decode    the decoder's largest level (channels × frames × height × width at that level) × K_DECODE
              + the decoded frames (3 per pixel); with VAE tiling the level is one tile's (512×512
              pixels, 17 frames) and the tiles' outputs add two more frame-sized copies — so
              tiling pays only where the decoder is wide (LTX-2's: 16 values a pixel at its last
              level, against 3 for the frames)

On the CPU a decode of at most 17 frames at a time adds the 3-D convolution's scratch buffer
(`CPU_CONV_SCRATCH` floats per pixel of the chunk).

`passes` is 2 with classifier-free guidance (guidance > 1), else 1. The two constants count the
tensors alive at the peak; they were fitted on the tiny model on the CPU
(`benchmarks/memory_budget.py` measures the estimator's error) and are the part of the model a
CUDA run should re-check (`max_memory_allocated`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.budget.facts import ModelFacts

GiB = 2**30
K_DENOISE = 12.0  # tensors of the token width alive in a transformer block (q, k, v, out, 4× MLP, residuals)
K_DECODE = 2.5  # tensors of the largest decoder level alive at once (input, norm, conv output)
HOST_FRAME_COPIES = 3.0  # float32 frames on the host: the pipeline's output, its numpy copy, the encoder's
TILE = 512  # the VAE's spatial tile (pixels), diffusers' default for LTX-2
TILE_FRAMES = 16
TILE_COPIES = 2  # a tiled decode holds every tile's output, then blends them into the frames
# On the CPU, torch's 3-D convolution picks its kernel by shape: over chunks of up to 17 frames
# (a tile, or a short clip) it measured a scratch buffer of up to ~50 floats per pixel of the
# chunk (up to 2.5× the rest of the render on the tiny model); longer chunks took a kernel
# without it. The estimate assumes the buffer for short chunks.
CPU_CONV_SCRATCH = 50
CUDA_CONTEXT = 0.6 * GiB  # the CUDA context and kernels: in free memory, not in max_memory_allocated
QUANT_OVERHEAD = 1.03  # 8-bit weights plus their scales


def gib(nbytes: float) -> str:
    """Bytes as GiB for a message: two decimals below 10 GiB, one above."""
    value = nbytes / GiB
    return f"{value:.2f} GiB" if value < 10 else f"{value:.1f} GiB"


@dataclass(frozen=True)
class Job:
    """The recipe fields the memory model reads."""

    width: int
    height: int
    num_frames: int
    fps: int = 24
    guidance: float = 4.0
    quantization: str = "none"
    offload: str = "none"
    vae_tiling: bool = False
    text_tokens: int = 1024  # the prompt length the pipeline pads to (its `max_sequence_length`)


@dataclass
class Estimate:
    """Peak bytes on the compute device and on the host, and how each phase adds up."""

    device_bytes: int
    host_bytes: int
    on_cuda: bool
    phases: dict[str, int] = field(default_factory=dict)  # each phase's peak on the device
    weights: dict[str, int] = field(default_factory=dict)  # each component's bytes as it computes

    @property
    def device_gib(self) -> float:
        return self.device_bytes / GiB

    @property
    def host_gib(self) -> float:
        return self.host_bytes / GiB

    def to_json(self) -> dict[str, object]:
        return {
            "device_gib": round(self.device_gib, 3),
            "host_gib": round(self.host_gib, 3),
            "phases_gib": {k: round(v / GiB, 3) for k, v in self.phases.items()},
            "weights_gib": {k: round(v / GiB, 3) for k, v in self.weights.items()},
        }


def weight_bytes(facts: ModelFacts, job: Job, dtype_bytes: int) -> dict[str, int]:
    """Each component's bytes as it computes: the compute dtype, the transformer in 8 bits when quantized."""
    out = {}
    for name, comp in facts.components.items():
        if name == "transformer" and facts.stored_quantization:
            out[name] = comp.stored_bytes  # loaded as stored, never widened
        elif name == "transformer" and job.quantization != "none":
            out[name] = int(comp.params * QUANT_OVERHEAD)
        else:
            out[name] = comp.params * dtype_bytes
    return out


def work_bytes(facts: ModelFacts, job: Job, dtype_bytes: int, on_cuda: bool = True) -> dict[str, int]:
    """Each phase's working memory (activations) in bytes."""
    grid = facts.grid
    passes = 2 if job.guidance > 1 else 1
    video_tokens = grid.tokens(job.width, job.height, job.num_frames)
    audio_tokens = int(job.num_frames / max(job.fps, 1) * facts.audio_tokens_per_s) + 1
    prompt = passes * job.text_tokens * facts.text_width * (facts.text_layers + 1)
    denoise = passes * (video_tokens * facts.video_width + audio_tokens * facts.audio_width) * K_DENOISE
    denoise += 4 * video_tokens * facts.latent_channels * 4  # float32 latents, noise, velocity, step output
    # the decoder: its last level sits at pixels / patch², each level before it one upscale smaller
    frames, height, width = job.num_frames, job.height, job.width
    if job.vae_tiling:
        height, width = min(height, TILE), min(width, TILE)
        frames = min(frames, TILE_FRAMES + 1)
    f, h, w = float(frames), height / facts.vae_patch, width / facts.vae_patch
    largest = 0.0
    for channels, scale, temporal in reversed(facts.vae_levels):
        largest = max(largest, channels * f * h * w)
        h, w = h / scale, w / scale
        f = f / scale if temporal else f
    pixels = job.num_frames * job.height * job.width
    decode = largest * K_DECODE + 3 * pixels  # + the decoded frames
    if job.vae_tiling:  # the tiles' outputs, then the frames blended from them
        decode += TILE_COPIES * 3 * pixels
    if not on_cuda and frames <= TILE_FRAMES + 1:  # the CPU's 3-D convolution over a short chunk unfolds it
        decode += CPU_CONV_SCRATCH * frames * height * width
    return {
        "prompt": int(prompt * dtype_bytes),
        "denoise": int(denoise * dtype_bytes),
        "decode": int(decode * dtype_bytes),
    }


def estimate(facts: ModelFacts, job: Job, on_cuda: bool, dtype_bytes: int) -> Estimate:
    """Peak device and host bytes of `job` with `facts`' pipeline (offload only means something on CUDA)."""
    weights = weight_bytes(facts, job, dtype_bytes)
    work = work_bytes(facts, job, dtype_bytes, on_cuda)
    # which weights each phase computes with
    uses = {
        "prompt": ("text_encoder", "connectors"),
        "denoise": ("transformer",),
        "decode": ("vae", "audio_vae", "vocoder"),
    }
    offload = job.offload if on_cuda else "none"
    total = sum(weights.values())
    phases = {}
    for phase, names in uses.items():
        mine = sum(weights.get(n, 0) for n in names)
        if offload == "none":
            resident = total
        elif offload == "model":
            resident = mine
        else:  # group: two blocks in flight; sequential: about one layer
            share = 2 if offload == "group" else 1
            resident = sum(
                min(weights.get(n, 0), weights.get(n, 0) * share // max(facts.weight(n).blocks, 1)) for n in names
            )
        phases[phase] = resident + work[phase]
    device = max(phases.values()) + (CUDA_CONTEXT if on_cuda else 0)
    frames_host = int(HOST_FRAME_COPIES * 3 * 4 * job.num_frames * job.height * job.width)
    if not on_cuda:  # the CPU computes in host memory: the device is the host
        host = device + frames_host
        return Estimate(int(host), int(host), False, phases, weights)
    # loading: every component is read into RAM before it moves, and a transformer quantized
    # while loading is read in full precision first (a stored 8-bit copy is read as stored)
    transformer = facts.weight("transformer")
    quantizing = job.quantization != "none" and not facts.stored_quantization
    loading = total - weights.get("transformer", 0) + (transformer.params * dtype_bytes) if quantizing else total
    offloaded = total if offload != "none" else 0  # weights waiting in RAM for their turn
    host = max(offloaded, loading) + frames_host
    return Estimate(int(device), int(host), True, phases, weights)
