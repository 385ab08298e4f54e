"""The studio's enumerations, in one place: each a `Literal` type and the tuple of its values.

Models validate with the types, argparse and the UI offer the tuples, and SQL or checks that
name a value use the constants, so a value is spelled once and a new one is added once.
The defaults of a recipe live in `aiprod_studio.recipe.RECIPE_DEFAULTS`, those of a training
run in `aiprod_studio.training.TrainConfig`; only the vault's import defaults are here.
"""

from __future__ import annotations

from typing import Literal, get_args

# -- rendering -----------------------------------------------------------------------------------
StoredQuantization = Literal["int8", "fp8"]  # a quantized copy saved in the vault
Quantization = Literal["none", StoredQuantization]  # what a render or a training run asks for
Offload = Literal["none", "model", "group", "sequential"]  # CUDA memory saving, least saving first

FastMode = Literal["off", "taylorseer", "firstblock"]  # a step cache, by the name of its exact settings
FAST_ON: FastMode = "taylorseer"  # what Fast "on" (True) means: the cache that measured best

Decoder = Literal["vae", "diffusion"]  # how latents become frames: the VAE, or LTX-2.5's diffusion decoder

AUTO = "auto"  # a quantization, offload or profile left to the memory budget to choose

ComputeDtype = Literal["float32", "bfloat16", "float16"]  # what a saved quantized copy runs in

STORED_QUANTIZATIONS: tuple[StoredQuantization, ...] = get_args(StoredQuantization)
QUANTIZATIONS: tuple[Quantization, ...] = get_args(Quantization)
OFFLOADS: tuple[Offload, ...] = get_args(Offload)
FAST_MODES: tuple[FastMode, ...] = get_args(FastMode)
DECODERS: tuple[Decoder, ...] = get_args(Decoder)
COMPUTE_DTYPES: tuple[ComputeDtype, ...] = get_args(ComputeDtype)

# -- the job queue -------------------------------------------------------------------------------
JobStatus = Literal["queued", "running", "done", "failed", "cancelled", "interrupted"]
FinalStatus = Literal["done", "failed", "cancelled", "interrupted"]  # a job that ended: no owner
JobKind = Literal["render", "train"]

JOB_STATUSES: tuple[JobStatus, ...] = get_args(JobStatus)
FINAL_STATUSES: tuple[FinalStatus, ...] = get_args(FinalStatus)
ACTIVE_STATUSES: tuple[JobStatus, ...] = ("queued", "running")  # a job that is waiting or working
RESUMABLE_STATUSES: tuple[FinalStatus, ...] = ("interrupted", "failed", "cancelled")  # may be queued again
JOB_KINDS: tuple[JobKind, ...] = get_args(JobKind)

# -- the vault -----------------------------------------------------------------------------------
VaultKind = Literal["pipeline", "lora", "qa", "scenarist", "upsampler"]
ModelFamily = Literal["ltx2", "ltx", "clip", "llm"]

VAULT_KINDS: tuple[VaultKind, ...] = get_args(VaultKind)
MODEL_FAMILIES: tuple[ModelFamily, ...] = get_args(ModelFamily)
DEFAULT_KIND: VaultKind = "pipeline"  # what an import or a provision brings in unless told
DEFAULT_FAMILY: ModelFamily = "ltx2"

# -- training and presets ------------------------------------------------------------------------
LrSchedule = Literal["constant", "cosine"]
Optimizer = Literal["adamw", "adamw8bit"]
PresetKind = Literal["render", "hardware"]

LR_SCHEDULES: tuple[LrSchedule, ...] = get_args(LrSchedule)
OPTIMIZERS: tuple[Optimizer, ...] = get_args(Optimizer)
PRESET_KINDS: tuple[PresetKind, ...] = get_args(PresetKind)
