"""The memory budget: the room a job has, the profile `auto` picks, and a refusal that names a fix.

`plan_job` runs before anything loads (when a recipe is built, and again when its job starts):

1. `room(plan)`: free memory on the compute device (`torch.cuda.mem_get_info`, plus what this
   process's own cache holds: the lease frees the warm model before loading another) and on
   the host (`psutil`), each capped by `AIPROD_MEMORY_LIMIT_GB` for the compute device.
2. Profile `auto` tries the hardware profiles of this device, fastest first, and takes the
   first whose estimate fits (settings the user gave are kept over the profile's).
3. A job that does not fit is refused (`OverBudget`, exit 2) with the cheapest change that
   fits: VAE tiling, then more offload or 8-bit weights, then fewer frames, then a smaller size.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psutil
import torch

from aiprod_studio.choices import AUTO
from aiprod_studio.errors import BadInput
from aiprod_studio.presets import Preset, hardware_profiles
from engine.budget.estimate import Estimate, GiB, Job, estimate, gib
from engine.budget.facts import ModelFacts

if TYPE_CHECKING:
    from engine.device.plan import DevicePlan

PROFILE_KEYS = ("quantization", "offload", "vae_tiling")
# Changes a fix may make, cheapest first (a little time, then 8 bits, then much more time). 8-bit
# weights go with model offload only: the pinned diffusers and accelerate cannot move quantized
# weights piecewise (group or sequential offload), see `Recipe._offload_with_quantization`.
FIXES: tuple[tuple[str, dict[str, object]], ...] = (
    ("VAE tiling", {"vae_tiling": True}),
    ("model offload", {"offload": "model"}),
    ("fp8", {"quantization": "fp8"}),
    ("fp8 and model offload", {"quantization": "fp8", "offload": "model"}),
    ("fp8, model offload and VAE tiling", {"quantization": "fp8", "offload": "model", "vae_tiling": True}),
    ("group offload", {"quantization": "none", "offload": "group"}),
    ("group offload and VAE tiling", {"quantization": "none", "offload": "group", "vae_tiling": True}),
    ("sequential offload and VAE tiling", {"quantization": "none", "offload": "sequential", "vae_tiling": True}),
)
LEANEST = FIXES[-1][1]


@dataclass(frozen=True)
class Room:
    """Bytes a job may use: on the compute device (the host itself on a CPU) and on the host."""

    device_bytes: int
    host_bytes: int
    on_cuda: bool
    total_bytes: int  # the compute device's whole memory (profiles are named after it)
    label: str

    def shortfall(self, est: Estimate) -> list[str]:
        """What does not fit, in words ("66.4 GiB of GPU memory (44.7 GiB free)"), or nothing."""
        short = []
        if self.on_cuda and est.device_bytes > self.device_bytes:
            short.append(f"{gib(est.device_bytes)} of GPU memory ({self.label} has {gib(self.device_bytes)} free)")
        host_room = self.host_bytes if self.on_cuda else self.device_bytes
        if est.host_bytes > host_room:
            short.append(f"{gib(est.host_bytes)} of RAM ({gib(host_room)} available)")
        return short


def room(plan: DevicePlan, limit_gb: float | None = None, resident_bytes: int = 0) -> Room:
    """The memory free for a job now; `resident_bytes`: RAM held by the studio's warm model (freed
    for another model, reused by the same one: either way it is room for this job)."""
    host = psutil.virtual_memory().available
    limit = int(limit_gb * GiB) if limit_gb else None
    if plan.device.type == "cuda":
        free, total = torch.cuda.mem_get_info(plan.device)
        free += torch.cuda.memory_reserved(plan.device)  # our own cache: the lease frees it for this job
        device = min(free, limit) if limit else free
        return Room(device, host + resident_bytes, True, min(total, limit) if limit else total, str(plan.device))
    host += resident_bytes
    device = min(host, limit) if limit else host
    total = psutil.virtual_memory().total
    return Room(device, min(host, device), False, min(total, limit) if limit else total, "the CPU")


def dtype_bytes(plan: DevicePlan) -> int:
    return torch.empty((), dtype=plan.dtype).element_size()


class OverBudget(BadInput):
    """The job needs more memory than there is (exit 2); the message names a change that fits."""

    def __init__(self, message: str):
        super().__init__(message, field="memory")


def _with(job: Job, changes: dict[str, object]) -> Job:
    return dataclasses.replace(job, **changes)  # type: ignore[arg-type]


def streams_8_bit(facts: ModelFacts, job: Job) -> bool:
    """8-bit weights (asked for, or stored so) with an offload that moves weights piecewise: what
    the pinned libraries cannot run."""
    return (job.quantization != "none" or bool(facts.stored_quantization)) and job.offload in ("group", "sequential")


def chooser(space: Room) -> Room:
    """The room profile `auto` chooses by: the whole device (and RAM), not what happens to be free
    now, so the same recipe gets the same profile (and render key) on the same machine; the
    memory free now only decides whether the chosen settings run."""
    host_total = max(space.host_bytes, psutil.virtual_memory().total)
    if space.on_cuda:
        return dataclasses.replace(
            space, device_bytes=max(space.device_bytes, space.total_bytes), host_bytes=host_total
        )
    whole = max(space.device_bytes, space.total_bytes)
    return dataclasses.replace(space, device_bytes=whole, host_bytes=whole)


def pick_profile(
    facts: ModelFacts, job: Job, given: dict[str, object], space: Room, nbytes: int, profiles: list[Preset]
) -> tuple[Preset | None, Job, Estimate]:
    """Profile `auto`: the fastest profile that fits (the user's own settings kept); when none
    fits, the leanest one (whose refusal then names a fix)."""
    tried: tuple[Preset | None, Job, Estimate] | None = None
    for profile in profiles:
        settings = {k: v for k, v in profile.settings.items() if k in PROFILE_KEYS and k not in given}
        candidate = _with(job, settings)
        if streams_8_bit(facts, candidate):
            continue  # 8-bit weights the user asked for (or stored) cannot stream: a profile that would is skipped
        est = estimate(facts, candidate, space.on_cuda, nbytes)
        tried = (profile, candidate, est)
        if not space.shortfall(est):
            return tried
    return tried or (None, job, estimate(facts, job, space.on_cuda, nbytes))


def _frames_that_fit(facts: ModelFacts, job: Job, space: Room, nbytes: int) -> int | None:
    """The most frames (8k+1, fewer than the job's) that fit with the job's settings."""
    lo, hi = 0, (job.num_frames - 1) // 8 - 1  # k for 8k+1 frames
    best = None
    while lo <= hi:
        mid = (lo + hi) // 2
        if space.shortfall(estimate(facts, _with(job, {"num_frames": 8 * mid + 1}), space.on_cuda, nbytes)):
            hi = mid - 1
        else:
            best, lo = 8 * mid + 1, mid + 1
    return best


def _size_that_fits(facts: ModelFacts, job: Job, space: Room, nbytes: int) -> tuple[int, int] | None:
    """The largest size of the job's aspect (multiples of 32) that fits with the job's settings."""
    for step in range(1, 64):
        scale = 1 - step / 64
        w, h = max(32, int(job.width * scale) // 32 * 32), max(32, int(job.height * scale) // 32 * 32)
        if (w, h) == (job.width, job.height):
            continue
        if not space.shortfall(estimate(facts, _with(job, {"width": w, "height": h}), space.on_cuda, nbytes)):
            return w, h
        if (w, h) == (32, 32):
            break
    return None


def cheapest_fix(facts: ModelFacts, job: Job, space: Room, nbytes: int, profiles: list[Preset]) -> str | None:
    """The cheapest change that makes `job` fit, in words, or None when nothing does."""
    for label, changes in FIXES:
        if not space.on_cuda and "offload" in changes:
            continue  # offload means nothing without a GPU
        if all(getattr(job, k) == v for k, v in changes.items()):
            continue
        candidate = _with(job, changes)
        if streams_8_bit(facts, candidate):
            continue  # a change the recipe would refuse is no fix
        if not space.shortfall(estimate(facts, candidate, space.on_cuda, nbytes)):
            named = next(
                (p.id for p in profiles if all(p.settings.get(k) == getattr(candidate, k) for k in PROFILE_KEYS)),
                None,
            )
            return f"it fits with {label}" + (f" (profile {named})" if named else "")
    frames = _frames_that_fit(facts, job, space, nbytes)
    if frames:
        return f"lower num_frames to {frames}"
    size = _size_that_fits(facts, job, space, nbytes)
    if size:
        return f"lower the size to {size[0]}×{size[1]}"
    if not space.on_cuda:
        lean, words = {"vae_tiling": True}, "VAE tiling"
    elif facts.stored_quantization:  # stored 8-bit weights move only whole
        lean, words = {"offload": "model", "vae_tiling": True}, "model offload and VAE tiling"
    else:
        lean, words = LEANEST, "sequential offload and VAE tiling"
    frames = _frames_that_fit(facts, _with(job, lean), space, nbytes)
    if frames:
        return f"lower num_frames to {frames} with {words}"
    return None


def plan_job(
    facts: ModelFacts,
    job: Job,
    given: dict[str, object],
    profile: str,
    plan: DevicePlan,
    space: Room,
) -> tuple[str, Job, Estimate]:
    """Choose the profile's settings for `job` and check they fit; returns (profile id, job, estimate).

    `given`: the settings (quantization, offload, vae_tiling) the user chose, kept over any
    profile's. `profile`: `auto`, `custom` (only the given settings) or a profile's id."""
    nbytes = dtype_bytes(plan)
    device = "cuda" if space.on_cuda else "cpu"
    profiles = hardware_profiles(device)
    chosen_id = profile
    chosen: Preset | None = None
    if profile == AUTO:
        chosen, job, _ = pick_profile(facts, job, given, chooser(space), nbytes, profiles)
    elif profile != "custom":
        chosen = load_hardware(profile, device, profiles)
        job = _with(job, {k: v for k, v in chosen.settings.items() if k in PROFILE_KEYS and k not in given})
    if chosen is not None:  # the user's own settings over the profile's make it custom: say so
        chosen_id = chosen.id if all(chosen.settings.get(k) == v for k, v in given.items()) else "custom"
    if streams_8_bit(facts, job):
        raise BadInput(
            f"offload {job.offload!r} cannot move {job.quantization if job.quantization != 'none' else 'stored 8-bit'} "
            f"weights (only whole components move when quantized): choose offload 'model' or 'none'"
            + (f" (profile {chosen_id})" if chosen is not None else ""),
            field="offload",
        )
    est = estimate(facts, job, space.on_cuda, nbytes)
    short = space.shortfall(est)
    if short:
        fix = cheapest_fix(facts, job, space, nbytes, profiles)
        total = gib(space.total_bytes)
        raise OverBudget(
            f"this render needs about {' and '.join(short)}; {fix or 'nothing the studio can change makes it fit'}"
            f" (model {facts.name}, {job.width}×{job.height}×{job.num_frames}, quantization {job.quantization}, "
            f"offload {job.offload}, VAE tiling {'on' if job.vae_tiling else 'off'}, {total} in all)"
        )
    return chosen_id, job, est


def load_hardware(profile: str, device: str, profiles: list[Preset]) -> Preset:
    """The hardware profile `profile` among `device`'s `profiles`, refused by name when there is none."""
    found = [p for p in profiles if p.id == profile]
    if not found:
        names = ", ".join([AUTO, "custom", *(p.id for p in profiles)])
        other = "cpu" if device == "cuda" else "cuda"
        where = ""
        if any(p.id == profile for p in hardware_profiles(other)):
            where = ", a profile for a CUDA GPU (this studio runs on the CPU)" if other == "cuda" else ", a CPU profile"
        raise BadInput(f"profile must be one of {names}, got {profile!r}{where}", field="profile")
    return found[0]


def forecast_line(f: dict[str, Any]) -> str:
    """A forecast (`Studio.forecast`) in words: the budget's choice, then the memory against what
    is free and the expected time (the CLI prints it on two lines, the Render tab on one)."""
    expected = f["expected_s"]
    time = f"about {expected:.3g} s of denoising" if expected is not None else "no past render like it to time it by"
    memory = f"needs about {f['device_gib']:.2f} GiB of RAM ({f['free_device_gib']:.1f} GiB free)"
    if f["device"] != "the CPU":
        memory = (
            f"needs about {f['device_gib']:.2f} GiB of GPU memory on {f['device']} ({f['free_device_gib']:.1f} GiB "
            f"free) and {f['host_gib']:.2f} GiB of RAM ({f['free_host_gib']:.1f} GiB free)"
        )
    return (
        f"profile {f['profile']}: quantization {f['quantization']}, offload {f['offload']}, "
        f"VAE tiling {'on' if f['vae_tiling'] else 'off'}\n{memory}; {time}"
    )
