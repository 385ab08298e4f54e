"""The studio's own tiny LTX-2 model, built offline from configs alone.

It has every component of a real LTX-2 diffusers pipeline (Gemma3 text encoder, a
word-level tokenizer, text connectors, the audio-video transformer, video and audio
VAEs, vocoder, flow-matching scheduler) at a size that saves to well under a megabyte
and renders 17 frames at 64×64 with sound in a fraction of a second on a CPU. Tests and
the out-of-the-box studio load it through exactly the code that loads a real model.

The video VAE is self-consistent: every scaling block is `spatiotemporal`, so the
encoder's latent grid is what the pipeline's compression ratios predict (8× spatial,
4× temporal) and `decode(encode(x))` keeps the shape — LoRA training encodes real clips
with it. Two builds give byte-identical files (everything is seeded, nothing timed).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

from aiprod_studio import offline

offline.enforce()

import torch  # noqa: E402
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers  # noqa: E402

log = logging.getLogger(__name__)

TINY_NAME = "aiprod-tiny-ltx2"
TEXT_HIDDEN = 32  # must equal the connectors' heads × head_dim
TEXT_LAYERS = 2
MAX_TOKENS = 64

# What the render form starts from for this model (fast on a CPU, valid for the VAE grid).
TINY_DEFAULTS = {
    "width": 64,
    "height": 64,
    "num_frames": 17,
    "fps": 24,
    "steps": 8,
    "guidance": 3.0,
    "advanced": {"max_sequence_length": MAX_TOKENS},
}

# The vocabulary the word-level tokenizer is trained on: plain film-making words.
_CORPUS = """
a an the of in on at with and or to from over under through into by for near far above below
camera shot close up wide medium long aerial drone pan tilt zoom dolly tracking static handheld slow
motion fast cut fade dissolve scene frame light shadow night day dawn dusk sunset sunrise morning
evening golden hour rain snow fog wind storm cloud sky sun moon star stars ocean sea wave waves beach
river lake forest tree trees mountain mountains hill desert city street road car train boat bridge
house room window door wall floor table chair lamp fire candle smoke water glass mirror
man woman child boy girl person people crowd dog cat bird horse fish robot dancer runner
walks runs dances jumps flies swims sits stands looks smiles talks sings laughs cries turns falls
red orange yellow green blue purple pink white black grey gray brown gold silver
bright dark soft warm cold cinematic dramatic calm quiet loud gentle colorful vivid film grain
portrait landscape style painting watercolor anime photo photograph realistic documentary
music sound voice song drum piano guitar bell birds thunder footsteps applause
is are was be being has have very small big large tiny huge old young new beautiful
""".split()


def build_tokenizer(max_length: int = MAX_TOKENS):
    """A word-level tokenizer trained with `tokenizers`, wrapped for transformers."""
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordLevelTrainer(special_tokens=["<pad>", "<eos>", "<bos>", "<unk>"], min_frequency=1)
    tok.train_from_iterator([" ".join(sorted(set(_CORPUS)))], trainer=trainer)
    bos_id = tok.token_to_id("<bos>")
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", bos_id)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        padding_side="left",
        model_max_length=max_length,
    )


def build_gemma3(tokenizer, seed: int = 0):
    """A two-layer Gemma3 text encoder (with the smallest vision tower it accepts), seeded."""
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    torch.manual_seed(seed)
    text_config = {
        "vocab_size": len(tokenizer),
        "hidden_size": TEXT_HIDDEN,
        "intermediate_size": 64,
        "num_hidden_layers": TEXT_LAYERS,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 8,
        "max_position_embeddings": 256,
        "sliding_window": 64,
        "query_pre_attn_scalar": 8,
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "bos_token_id": tokenizer.bos_token_id,
    }
    vision_config = {
        "hidden_size": 16,
        "intermediate_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "image_size": 32,
        "patch_size": 8,
    }
    config = Gemma3Config(
        text_config=text_config,
        vision_config=vision_config,
        mm_tokens_per_image=4,
        boi_token_index=0,
        eoi_token_index=0,
        image_token_index=0,
    )
    return Gemma3ForConditionalGeneration(config).eval()


def build_audio_vae(seed: int = 0):
    """The audio VAE: 16 kHz log-mel with 8 bins and a 160-sample hop, 2 latent channels, seeded."""
    from diffusers import AutoencoderKLLTX2Audio

    torch.manual_seed(seed)
    return AutoencoderKLLTX2Audio(
        base_channels=4,
        output_channels=2,
        ch_mult=(1,),
        num_res_blocks=1,
        attn_resolutions=None,
        in_channels=2,
        resolution=32,
        latent_channels=2,
        norm_type="pixel",
        causality_axis="height",
        dropout=0.0,
        mid_block_add_attention=False,
        sample_rate=16000,
        mel_hop_length=160,
        is_causal=True,
        mel_bins=8,
    )


def build_scheduler():
    """The flow-matching scheduler with LTX-2's dynamic shift."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler(
        shift=1.0,
        use_dynamic_shifting=True,
        base_shift=0.95,
        max_shift=2.05,
        base_image_seq_len=1024,
        max_image_seq_len=4096,
        shift_terminal=0.1,
    )


def build_pipeline(seed: int = 0):
    """Build the tiny LTX-2 pipeline in memory (float32, CPU), deterministically."""
    # (one function on purpose: every component's config side by side is how the tiny model is checked against a real
    # one)
    from diffusers import AutoencoderKLLTX2Video, LTX2Pipeline, LTX2VideoTransformer3DModel
    from diffusers.pipelines.ltx2 import LTX2TextConnectors
    from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder

    tokenizer = build_tokenizer()

    text_encoder = build_gemma3(tokenizer, seed)  # 1. a two-layer Gemma3 text encoder

    # 2. Text connectors: width (heads × head_dim) equals the Gemma hidden size.
    torch.manual_seed(seed)
    connectors = LTX2TextConnectors(
        caption_channels=TEXT_HIDDEN,
        text_proj_in_factor=TEXT_LAYERS + 1,
        video_connector_num_attention_heads=4,
        video_connector_attention_head_dim=8,
        video_connector_num_layers=1,
        video_connector_num_learnable_registers=None,
        audio_connector_num_attention_heads=4,
        audio_connector_attention_head_dim=8,
        audio_connector_num_layers=1,
        audio_connector_num_learnable_registers=None,
        connector_rope_base_seq_len=32,
        rope_double_precision=False,
        rope_type="split",
    )

    # 3. Video VAE: patch 2 and two spatiotemporal blocks → 8× spatial, 4× temporal, 8 channels.
    torch.manual_seed(seed)
    vae = AutoencoderKLLTX2Video(
        in_channels=3,
        out_channels=3,
        latent_channels=8,
        block_out_channels=(8, 8),
        down_block_types=("LTX2VideoDownBlock3D",) * 2,
        layers_per_block=(1, 1, 1),
        spatio_temporal_scaling=(True, True),
        downsample_type=("spatiotemporal", "spatiotemporal"),
        decoder_block_out_channels=(8, 8),
        decoder_layers_per_block=(1, 1, 1),
        decoder_spatio_temporal_scaling=(True, True),
        upsample_type=("spatiotemporal", "spatiotemporal"),
        decoder_inject_noise=(False, False, False),
        upsample_residual=(False, False),
        upsample_factor=(1, 1),
        timestep_conditioning=False,
        patch_size=2,
        patch_size_t=1,
        encoder_causal=True,
        decoder_causal=False,
    )

    # 4. Audio VAE (16 kHz log-mel, 8 bins) and a vocoder whose upsampling equals the mel hop,
    #    so the waveform lasts exactly as long as the mel frames say.
    audio_vae = build_audio_vae(seed)
    torch.manual_seed(seed)
    vocoder = LTX2Vocoder(
        in_channels=2 * 8,
        hidden_channels=32,
        out_channels=2,
        upsample_kernel_sizes=[16, 10, 8],
        upsample_factors=[8, 5, 4],
        resnet_kernel_sizes=[3],
        resnet_dilations=[[1, 3, 5]],
        leaky_relu_negative_slope=0.1,
        output_sampling_rate=16000,
    )

    # 5. The audio-video transformer: two layers over the 8-channel video and 4-wide audio latents.
    torch.manual_seed(seed)
    transformer = LTX2VideoTransformer3DModel(
        in_channels=8,
        out_channels=8,
        patch_size=1,
        patch_size_t=1,
        num_attention_heads=2,
        attention_head_dim=8,
        cross_attention_dim=16,
        vae_scale_factors=(4, 8, 8),
        audio_in_channels=4,
        audio_out_channels=4,
        audio_num_attention_heads=2,
        audio_attention_head_dim=4,
        audio_cross_attention_dim=8,
        audio_sampling_rate=16000,
        audio_hop_length=160,
        num_layers=2,
        qk_norm="rms_norm_across_heads",
        caption_channels=TEXT_HIDDEN,
        rope_double_precision=False,
        rope_type="split",
    )

    scheduler = build_scheduler()
    return LTX2Pipeline(
        scheduler=scheduler,
        vae=vae,
        audio_vae=audio_vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        connectors=connectors,
        transformer=transformer,
        vocoder=vocoder,
    )


def write_atomically(target: Path, write: Callable[[Path], object]) -> Path:
    """`write` fills a fresh sibling folder, which then replaces `target`: never half-written."""
    target = Path(target)
    tmp = target.with_name(f".{target.name}.building")
    shutil.rmtree(tmp, ignore_errors=True)
    write(tmp)
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)
    log.info("tiny model written to %s", target)
    return target


def save_pipeline(target: Path, seed: int = 0) -> Path:
    """Build and save the tiny pipeline to `target` (replacing it), atomically."""
    pipe = build_pipeline(seed)
    return write_atomically(target, lambda tmp: pipe.save_pretrained(tmp, safe_serialization=True))


def make_tiny(vault, name: str = TINY_NAME, seed: int = 0):
    """Build the tiny model into the vault (`pipelines/<name>`) and record it in the manifest."""
    from aiprod_studio.vault.manifest import KIND_DIRS

    rel = f"{KIND_DIRS['pipeline']}/{name}"
    save_pipeline(vault.root / rel, seed=seed)
    return vault.record(
        name,
        "pipeline",
        "ltx2",
        rel,
        license="Apache-2.0",
        test_model=True,
        defaults=TINY_DEFAULTS,
        description="AIPROD tiny LTX-2 test model (random weights, built offline): proves the whole path, "
        "renders noise-like clips.",
    )


SCENARIST_NAME = "aiprod-tiny-scenarist"


def make_tiny_scenarist(vault, name: str = SCENARIST_NAME, seed: int = 0):
    """A tiny random causal LM (Llama layout, the word-level tokenizer) as a `scenarist` entry.

    It writes fluent nonsense from the film vocabulary: enough to run the local-LLM path
    of the storyboard (loading, constrained generation, validation, fallback) offline.
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    from aiprod_studio.vault.manifest import KIND_DIRS

    tokenizer = build_tokenizer(max_length=256)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config).eval()
    rel = f"{KIND_DIRS['scenarist']}/{name}"

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)

    write_atomically(vault.root / rel, write)
    return vault.record(
        name,
        "scenarist",
        "llm",
        rel,
        license="Apache-2.0",
        test_model=True,
        description="AIPROD tiny random causal LM: exercises the local-LLM scenarist offline.",
    )


def make_tiny_lora(vault, base_name: str = TINY_NAME, name: str = "aiprod-tiny-lora", rank: int = 4, seed: int = 1):
    """A random (non-zero) LoRA for a tiny pipeline, recorded as a vault `lora` entry for that base."""
    import tempfile

    from diffusers import LTX2Pipeline, LTX2VideoTransformer3DModel
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    from aiprod_studio.vault.manifest import KIND_DIRS

    base = vault.get(base_name, kind="pipeline")
    folder = vault.entry_dir(base) / "transformer"
    transformer = LTX2VideoTransformer3DModel.from_pretrained(folder, local_files_only=True, use_safetensors=True)
    torch.manual_seed(seed)
    transformer.add_adapter(
        LoraConfig(
            r=rank, lora_alpha=rank, init_lora_weights=False, target_modules=["to_q", "to_k", "to_v", "to_out.0"]
        )
    )
    with tempfile.TemporaryDirectory() as tmp:
        LTX2Pipeline.save_lora_weights(
            tmp,
            transformer_lora_layers=get_peft_model_state_dict(transformer),
            transformer_lora_adapter_metadata=transformer.peft_config["default"].to_dict(),
        )
        rel = f"{KIND_DIRS['lora']}/{name}.safetensors"
        (vault.root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.move(Path(tmp) / "pytorch_lora_weights.safetensors", vault.root / rel)
    return vault.record(
        name,
        "lora",
        base.family,
        rel,
        derived_from=f"{base.name}@{base.digest}",
        test_model=True,
        license=base.license,
        description=f"random rank-{rank} LoRA for {base.name} (tests)",
    )
