"""Fast mode: fewer transformer blocks computed per render, with diffusers' own step caches.

A render's denoising loop calls the transformer three times a step on LTX-2 (the CFG pair
as one batch of two, the spatio-temporal guidance pass, the modality-isolation pass) and
each call runs every block. Between neighbouring steps the transformer's output changes
smoothly, so some steps can be extrapolated instead of computed. Fast mode turns on one
of diffusers' step caches on `pipe.transformer` (`enable_cache`), chosen by measurement on
the tiny LTX-2 model and on an 8-block random one (benchmarks/fast_mode.py):

- `"taylorseer"` (Fast on): TaylorSeer in its lite form. Every block is computed for the
  first two steps and then one step in three; on the other steps the blocks are skipped
  and the transformer's two outputs (`proj_out`, `audio_proj_out`) are extrapolated to
  first order from the computed ones. A fixed schedule: the saving is known before the
  render (half the blocks at 8 steps, 0.37× at 30) and needs no calibration per model.
- `"firstblock"`: First Block Cache (adaptive: the first block's change decides whether
  the others run). It needs LTX-2's audio-video block registered in diffusers' block
  registry, which this module does once. On the measured models it skipped less for the
  same quality and is kept for comparison on real weights.

MagCache was measured too and left out: it needs ratios calibrated per checkpoint and
step count, and on a skipped step it passes the audio stream through untouched.

Each cache keeps one state per denoising pass (diffusers' `cache_context` names them), so
the CFG batch of two and the guidance passes never mix. The state must not outlive a
render (a cancelled one skips diffusers' own reset): `apply_fast` resets it, so call it
before every pipeline call, Fast on or off. A warm pipeline switches Fast on and off
between renders without reloading; off removes every hook, and the output is then bit
for bit that of a pipeline that never had Fast.

    apply_fast(pipe, recipe_fast, recipe.steps)   # before each pipe(...) call
    pipe(...)
    disable_fast(pipe)                            # optional: apply_fast(pipe, "off", …) does the same
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from aiprod_studio import choices
from aiprod_studio.errors import BadInput

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline as Pipeline

log = logging.getLogger(__name__)

# A recipe stores the cache's name, never "on": the name stands for the exact settings below,
# so a recipe renders the same way later. Changed settings need a new name.
FAST_MODES = choices.FAST_MODES  # ("off", "taylorseer", "firstblock"): spelled once, in the core
FAST_ON = choices.FAST_ON  # what `True` / "on" means: the cache that measured best

TAYLORSEER_WARMUP_STEPS = 2  # steps computed in full before the first extrapolated one
TAYLORSEER_INTERVAL = 3  # then one step in three is computed
FIRSTBLOCK_THRESHOLD = 0.1  # relative change of the first block's residual below which the rest is skipped
OUTPUT_LAYERS = ("proj_out", "audio_proj_out")  # what TaylorSeer extrapolates (those the model has)


def fast_mode(fast: bool | str) -> str:
    """The cache name a Fast setting stands for: True/"on" → FAST_ON, False/"off" → "off"."""
    if isinstance(fast, bool):
        return FAST_ON if fast else "off"
    if isinstance(fast, str):
        name = fast.strip().lower()
        if name == "on":
            return FAST_ON
        if name in FAST_MODES:
            return name
    raise BadInput(f"fast must be one of {', '.join(FAST_MODES)} (or on / true / false), got {fast!r}", field="fast")


def block_lists(transformer: torch.nn.Module) -> list[tuple[str, torch.nn.ModuleList]]:
    """The transformer's block stacks: every `nn.ModuleList` directly under it, with its name."""
    return [(name, child) for name, child in transformer.named_children() if isinstance(child, torch.nn.ModuleList)]


def fast_config(transformer: torch.nn.Module, mode: str) -> Any:
    """The diffusers cache config for `mode` on this transformer (`mode` from `fast_mode`)."""
    from diffusers import FirstBlockCacheConfig, TaylorSeerCacheConfig

    stacks = block_lists(transformer)
    if not stacks:
        raise BadInput(f"fast: {type(transformer).__name__} has no block stack to cache", field="fast")
    if mode == "firstblock":
        _register_audio_video_block()
        return FirstBlockCacheConfig(threshold=FIRSTBLOCK_THRESHOLD)
    outputs = [name for name in OUTPUT_LAYERS if isinstance(getattr(transformer, name, None), torch.nn.Module)]
    if not outputs:
        raise BadInput(f"fast: {type(transformer).__name__} has no proj_out layer to extrapolate", field="fast")
    return TaylorSeerCacheConfig(
        cache_interval=TAYLORSEER_INTERVAL,
        disable_cache_before_step=TAYLORSEER_WARMUP_STEPS,
        max_order=1,
        taylor_factors_dtype=torch.float32,  # the factors are small (output layers only); keep them exact
        skip_predict_identifiers=[re.escape(name) + r"\.\d+" for name, _ in stacks],
        cache_identifiers=outputs,
    )


def apply_fast(pipe: Pipeline, fast: bool | str, steps: int) -> None:
    """Make `pipe.transformer` render with Fast `fast` for a render of `steps` steps.

    Call it before every pipeline call. The same cache already on is kept and its state
    reset (nothing carries over from the previous render, also a cancelled one); another
    one is replaced; "off" (or too few steps to skip any) removes the cache.
    """
    # 1. Check the inputs; the transformer must be one diffusers can cache.
    mode = fast_mode(fast)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise BadInput(f"steps must be a whole number of at least 1, got {steps!r}", field="steps")
    transformer = getattr(pipe, "transformer", None)
    if mode == "off":
        disable_fast(pipe)
        return
    if transformer is None or not hasattr(transformer, "enable_cache"):
        raise BadInput(f"fast: {type(pipe).__name__} has no transformer with step caches; use fast off", field="fast")
    if steps <= TAYLORSEER_WARMUP_STEPS:
        log.info("fast %s: %d step(s) leave nothing to skip; rendering without a cache", mode, steps)
        disable_fast(pipe)
        return

    # 2. Keep the cache that is on if it is this one, else replace it; either way start from a clean state.
    config = fast_config(transformer, mode)
    if transformer.is_cache_enabled and transformer._cache_config != config:
        transformer.disable_cache()
    if not transformer.is_cache_enabled:
        transformer.enable_cache(config)
        log.info("fast %s on for %s", mode, type(transformer).__name__)
    transformer._reset_stateful_cache()


def disable_fast(pipe: Pipeline) -> None:
    """Remove any step cache from `pipe.transformer` (nothing happens when none is on)."""
    transformer = getattr(pipe, "transformer", None)
    if transformer is not None and getattr(transformer, "is_cache_enabled", False):
        transformer.disable_cache()
        log.info("fast off for %s", type(transformer).__name__)


def fast_is_on(pipe: Pipeline) -> bool:
    """Whether a step cache is on `pipe.transformer`."""
    return bool(getattr(getattr(pipe, "transformer", None), "is_cache_enabled", False))


def _register_audio_video_block() -> None:
    """Tell diffusers' block registry how LTX-2's audio-video block is called, once.

    `LTX2VideoTransformerBlock.forward(hidden_states, audio_hidden_states, encoder_hidden_states,
    …)` returns `(video, audio)`. The block caches read their second stream under the
    name `encoder_hidden_states` (which in this block is the text), so the metadata maps
    that name to `audio_hidden_states`: a skipped block then passes both streams on and a
    cached step adds both residuals. A diffusers that registers the block itself wins.
    """
    from diffusers.hooks._helpers import TransformerBlockMetadata, TransformerBlockRegistry
    from diffusers.models.transformers.transformer_ltx2 import LTX2VideoTransformerBlock

    try:
        TransformerBlockRegistry.get(LTX2VideoTransformerBlock)
        return
    except ValueError:
        pass

    class AudioVideoBlockMetadata(TransformerBlockMetadata):
        def _get_parameter_from_args_kwargs(self, identifier: str, args: Any = (), kwargs: Any = None) -> Any:
            if identifier == "encoder_hidden_states":
                identifier = self.encoder_hidden_states_argument_name
            elif identifier == "hidden_states":
                identifier = self.hidden_states_argument_name
            return super()._get_parameter_from_args_kwargs(identifier, args, kwargs)

    TransformerBlockRegistry.register(
        LTX2VideoTransformerBlock,
        AudioVideoBlockMetadata(
            return_hidden_states_index=0,
            return_encoder_hidden_states_index=1,
            hidden_states_argument_name="hidden_states",
            encoder_hidden_states_argument_name="audio_hidden_states",
        ),
    )
    log.debug("registered LTX2VideoTransformerBlock for diffusers' block caches")


def compile_transformer(pipe: Pipeline, device: torch.device | str) -> bool:
    """Compile the transformer's blocks with `torch.compile` on CUDA (once per warm pipeline).

    Regional compilation (`compile_repeated_blocks`, `dynamic=False`): each block shape is
    compiled on first use and reused by every later render of that shape. Returns whether
    the transformer is compiled; on any other device, or with layer-by-layer offload, it
    logs why not and changes nothing.
    """
    transformer = getattr(pipe, "transformer", None)
    device = torch.device(device)
    if transformer is None:
        log.info("not compiling: %s has no transformer", type(pipe).__name__)
        return False
    if getattr(transformer, "_aiprod_compiled", False):
        return True
    if device.type != "cuda":
        log.info("not compiling the transformer: torch.compile is used on CUDA only, this render runs on %s", device)
        return False
    if not torch.cuda.is_available():
        log.info("not compiling the transformer: CUDA is not available")
        return False
    first_block = next((block for _name, stack in block_lists(transformer) for block in stack), None)
    if first_block is not None and any(hasattr(m, "_hf_hook") for m in first_block.modules()):
        log.info("not compiling the transformer: it is offloaded layer by layer")
        return False
    if getattr(transformer, "_repeated_blocks", None):
        transformer.compile_repeated_blocks(dynamic=False)
    else:
        transformer.compile(dynamic=False)
    transformer._aiprod_compiled = True
    log.info("compiled %s for %s (each shape compiles on its first render)", type(transformer).__name__, device)
    return True


@dataclass
class BlockCalls:
    """Transformer block calls seen by `count_block_calls`: `calls` made, `computed` of them
    that ran their layers (a cached block is called but returns without computing)."""

    calls: int = 0
    computed: int = 0

    @property
    def skipped(self) -> int:
        return self.calls - self.computed


@contextlib.contextmanager
def count_block_calls(transformer: torch.nn.Module) -> Iterator[BlockCalls]:
    """Count the calls of every block of `transformer` inside the `with` block.

    A block counts as computed when one of its linear layers ran during the call (the
    caches answer a skipped block without touching its weights). The hooks are removed on
    exit, also when the body raises.
    """
    counts = BlockCalls()
    running: list[bool] = []  # one flag per block call in progress: did a layer of it run?

    def enter(_module: torch.nn.Module, _args: Any) -> None:
        running.append(False)

    def leave(_module: torch.nn.Module, _args: Any, _output: Any) -> None:
        counts.calls += 1
        counts.computed += running.pop()

    def ran(_module: torch.nn.Module, _args: Any, _output: Any) -> None:
        if running:
            running[-1] = True

    handles = []
    try:
        for _name, stack in block_lists(transformer):
            for block in stack:
                handles.append(block.register_forward_pre_hook(enter))
                handles.append(block.register_forward_hook(leave))
                handles.extend(m.register_forward_hook(ran) for m in block.modules() if isinstance(m, torch.nn.Linear))
        yield counts
    finally:
        for handle in handles:
            handle.remove()
