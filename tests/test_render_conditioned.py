"""Start images and keyframes: prepared and stored pictures, held at the latent level, recorded,
re-rendered to the same bytes, and hostile files refused by field."""

from __future__ import annotations

import hashlib
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from aiprod_studio.errors import BadInput
from engine.render import media
from engine.render.clip import pipeline_kwargs
from engine.render.conditioned import conditioned_pipeline, load_pictures, pipeline_conditions
from engine.render.images import MAX_PIXELS, open_image, prepare

SIZE = {"width": 64, "height": 64, "num_frames": 17, "steps": 3}


def picture(path, height=90, width=120, seed=0):
    """A random RGB picture (landscape by default: the crop has something to cut)."""
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
    return path


def huge_png_header(path, width=30000, height=30000):
    """A PNG whose header claims width × height (a decompression bomb's first bytes)."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)))
    return path


def loaded(studio):
    from engine.models.pipelines import load_pipeline

    return load_pipeline(studio.vault, studio.vault.get("aiprod-tiny-ltx2"), studio.plan)


def latents_of(pipe, recipe, store):
    """The denormalised video latents a recipe renders to (with its pictures when it has some)."""
    runner, extra = pipe, {}
    if recipe.conditions:
        runner = conditioned_pipeline(pipe)
        extra["conditions"] = pipeline_conditions(runner, recipe, load_pictures(store, recipe))
    with torch.inference_mode():
        out = runner(
            **pipeline_kwargs(runner, recipe),
            **extra,
            generator=torch.Generator("cpu").manual_seed(recipe.seed),
            output_type="latent",
        )
    return out.frames


def encoded(pipe, image: np.ndarray) -> torch.Tensor:
    """The VAE encoding of one prepared picture as the model is given it (re-compressed at its CRF)."""
    from diffusers.pipelines.ltx2.utils import apply_image_conditioning_crf, resolve_default_image_crf

    pixels = apply_image_conditioning_crf(image, resolve_default_image_crf(pipe.text_encoder))
    x = torch.from_numpy(pixels).float().permute(2, 0, 1)[None, :, None] / 127.5 - 1.0
    with torch.inference_mode():
        return pipe.vae.encode(x).latent_dist.mode()


def test_start_image_is_the_first_latent_frame(studio, tmp_path):
    pipe = loaded(studio)
    recipe = studio.build_recipe(
        {"prompt": "a red kite", **SIZE, "conditions": [{"path": str(picture(tmp_path / "a.png")), "frame": 0}]}
    )
    store = studio.image_store()
    # the picture is stored prepared: the clip's size, named by the sha256 of its file
    stored = store.find(recipe.conditions[0].image)
    assert stored is not None and hashlib.sha256(stored.read_bytes()).hexdigest() == recipe.conditions[0].image
    prepared = np.asarray(Image.open(stored))
    assert prepared.shape == (64, 64, 3)

    with_image = latents_of(pipe, recipe, store)
    want = encoded(pipe, prepared)
    assert torch.allclose(with_image[:, :, :1], want, atol=1e-5)
    text_only = latents_of(pipe, recipe.model_copy(update={"conditions": []}), store)
    assert text_only.shape == with_image.shape
    assert (text_only[:, :, :1] - want).abs().max() > 0.1  # the same seed without the picture starts elsewhere
    assert not torch.equal(text_only[:, :, 1:], with_image[:, :, 1:])  # and the picture moved the rest too


def test_keyframes_sit_at_the_frames_asked(studio, tmp_path):
    pipe = loaded(studio)
    runner = conditioned_pipeline(pipe)
    assert conditioned_pipeline(pipe) is runner  # built once per warm pipeline, same components
    assert runner.transformer is pipe.transformer and runner.vae is pipe.vae
    a, b = picture(tmp_path / "a.png", seed=1), picture(tmp_path / "b.png", seed=2)
    recipe = studio.build_recipe(
        {
            "prompt": "a red kite",
            **SIZE,
            "fps": 16,
            "conditions": [{"path": str(a), "frame": 0}, {"path": str(b), "frame": "last", "strength": 0.6}],
        }
    )
    assert [(c.frame, c.strength) for c in recipe.conditions] == [(0, 1.0), (16, 0.6)]
    conditions = pipeline_conditions(runner, recipe, load_pictures(studio.image_store(), recipe))
    ratio = runner.vae_temporal_compression_ratio  # 4 for the tiny VAE: frame 16 is in latent frame 4
    assert [c.index for c in conditions] == [0, 16 // ratio]
    with torch.inference_mode():
        latents, mask, clean, coords = runner.prepare_latents(
            conditions=conditions,
            num_channels_latents=runner.transformer.config.in_channels,
            height=64,
            width=64,
            num_frames=17,
            frame_rate=16.0,
            dtype=torch.float32,
            generator=torch.Generator("cpu").manual_seed(0),
        )
    base = 5 * 8 * 8  # latent frames × height × width of the clip itself
    keyframe_b = encoded(pipe, studio.image_store().load(recipe.conditions[1].image, 64, 64))
    kf_tokens = runner._pack_latents(runner._normalize_latents(keyframe_b, pipe.vae.latents_mean, pipe.vae.latents_std))
    assert latents.shape[1] == base + kf_tokens.shape[1]  # the keyframe rides as extra tokens…
    assert torch.allclose(clean[:, base:], kf_tokens, atol=1e-5)  # …holding its picture
    assert torch.allclose(mask[:, base:], torch.full_like(mask[:, base:], 0.6))  # at its strength
    assert torch.all(coords[:, 0, :, 0] == 16 / 16.0)  # at frame 16 (in seconds at 16 fps), not diffusers' 13
    assert torch.all(mask[:, : 8 * 8] == 1.0) and torch.all(mask[:, 8 * 8 : base] == 0.0)  # the start image: frame 0


def test_pictured_clip_rerenders_to_the_same_bytes(studio, tmp_path):
    from engine.render.reproduce import reproduce

    recipe = studio.build_recipe(
        {
            "prompt": "a red kite",
            **SIZE,
            "conditions": [
                {"path": str(picture(tmp_path / "a.png")), "frame": 0},
                {"path": str(picture(tmp_path / "b.webp", seed=3)), "frame": 8, "strength": 0.5},
            ],
        }
    )
    row = studio.render(recipe)
    assert row["status"] == "done"
    embedded = media.read_metadata_json(row["output_path"])
    assert embedded["conditions"] == [c.model_dump() for c in recipe.conditions]
    report = reproduce(studio, row["output_path"])
    assert report["passed"] and report["comparison"]["identical"]
    with open(row["output_path"], "rb") as f1, open(report["reproduction"], "rb") as f2:
        assert hashlib.sha256(f1.read()).digest() == hashlib.sha256(f2.read()).digest()


def test_missing_picture_is_refused_before_rendering(studio, tmp_path):
    recipe = studio.build_recipe(
        {"prompt": "a red kite", **SIZE, "conditions": [{"path": str(picture(tmp_path / "a.png")), "frame": 0}]}
    )
    studio.image_store().find(recipe.conditions[0].image).unlink()
    with pytest.raises(BadInput) as err:
        studio.render(recipe)
    assert err.value.field == "conditions" and "not in the image store" in str(err.value)


def test_prepare_covers_and_crops_at_the_centre():
    image = Image.new("RGB", (200, 100), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 50, 100))  # a red band on the left quarter: cropped away
    out = np.asarray(prepare(image, 64, 64))
    assert out.shape == (64, 64, 3)
    assert out[:, :, 0].max() < 40 and out[:, :, 2].min() > 200


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.write_text("not a picture"), "is not a PNG, JPEG or WebP picture"),
        (lambda p: huge_png_header(p), f"at most {MAX_PIXELS // 1_000_000} megapixels"),
        (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40), "is not a readable PNG picture"),
        (lambda p: None, "is not a file"),
    ],
    ids=["text", "30000x30000", "truncated", "missing"],
)
def test_hostile_pictures_are_refused_by_field(tmp_path, make, message):
    path = tmp_path / "in.png"
    make(path)
    with pytest.raises(BadInput) as err:
        open_image(path, "image")
    assert err.value.field == "image" and message in str(err.value)


def test_cli_refuses_bad_pictures_with_exit_2(cli, tmp_path):
    huge = huge_png_header(tmp_path / "huge.png")
    args = ("render", "--prompt", "a kite", "--width", "64", "--height", "64", "--frames", "17", "--steps", "1")
    for extra, field in [
        (("--image", str(huge)), "image"),
        (("--image", str(tmp_path / "nope.png")), "image"),
        (("--keyframe", f"{picture(tmp_path / 'a.png')}@17"), "keyframe"),
        (("--keyframe", f"{tmp_path / 'a.png'}@2:1.5"), "keyframe"),
        (("--keyframe", f"{tmp_path / 'a.png'}@2", "--keyframe", f"{tmp_path / 'a.png'}@3"), "keyframe"),
        (("--keyframe", "no-frame.png"), "keyframe"),
    ]:
        result = cli(*args, *extra, "--json")
        assert result.returncode == 2, (extra, result.stderr)
        assert result.json["field"] == field, (extra, result.json)
    assert cli("history", "--json").json["jobs"] == []  # nothing was recorded for any of them


def test_cli_renders_from_a_start_image_and_a_last_keyframe(cli, tmp_path):
    a, b = picture(tmp_path / "a.jpg"), picture(tmp_path / "b.png", seed=4)
    result = cli(
        "render", "--prompt", "a kite", "--width", "64", "--height", "64", "--frames", "17", "--steps", "2",
        "--image", str(a), "--keyframe", f"{b}@last:0.75", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    conditions = result.json["recipe"]["conditions"]
    assert [(c["frame"], c["strength"]) for c in conditions] == [(0, 1.0), (16, 0.75)]
    images = tmp_path.parent.glob("**/outputs/images/*.png")
    assert {p.stem for p in images} >= {c["image"] for c in conditions}


def test_a_clip_copied_with_its_images_folder_reproduces_elsewhere(studio, tmp_path):
    import shutil

    from engine.render.reproduce import reproduce

    recipe = studio.build_recipe(
        {"prompt": "a red kite", **SIZE, "conditions": [{"path": str(picture(tmp_path / "a.png")), "frame": 0}]}
    )
    row = studio.render(recipe)
    sha = recipe.conditions[0].image
    moved = tmp_path / "usb"
    (moved / "images").mkdir(parents=True)
    shutil.copy(row["output_path"], moved / "clip.mp4")
    shutil.move(studio.image_store().find(sha), moved / "images" / f"{sha}.png")  # the store no longer has it
    report = reproduce(studio, str(moved / "clip.mp4"))
    assert report["passed"] and studio.image_store().find(sha) == studio.image_store().root / f"{sha}.png"
    # a changed copy is not taken: the recipe's picture is missing, said by field
    studio.image_store().find(sha).unlink()
    (moved / "images" / f"{sha}.png").write_bytes(b"\x89PNG\r\n\x1a\nchanged")
    with pytest.raises(BadInput) as err:
        reproduce(studio, str(moved / "clip.mp4"))
    assert err.value.field == "conditions"


def test_counts_frames_and_spacing_are_refused_before_any_picture_is_read(studio, tmp_path):
    many = [{"path": str(tmp_path / f"missing-{i}.png"), "frame": i * 4} for i in range(12)]
    for conditions, words in [
        (many, "at most 8 pictures"),
        ([{"path": "/nope.png", "frame": 3}, {"path": "/nope.png", "frame": 4}], "same latent frame"),
        ([{"path": "/nope.png", "frame": 40}], "0 to 16"),
        ([{"path": "/nope.png", "frame": 0, "strength": "full"}], "strength"),
    ]:
        with pytest.raises(BadInput, match=words) as err:
            studio.build_recipe({"prompt": "a kite", **SIZE, "conditions": conditions})
        assert err.value.field == "conditions"  # (not "image": no file was opened)
    assert not studio.image_store().root.exists() or not any(studio.image_store().root.iterdir())


def test_sixteen_bit_and_transparent_pictures_open_as_they_look(tmp_path):
    grey = (np.arange(32 * 32).reshape(32, 32) * 64).astype(np.uint16)
    Image.fromarray(grey).save(tmp_path / "g16.png")
    rgb = np.asarray(open_image(tmp_path / "g16.png", "image"))
    assert rgb.shape == (32, 32, 3) and rgb.min() == 0 and 100 < rgb.mean() < 160  # scaled, not clipped white
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:4, ..., 3] = 255  # the top half opaque red, the bottom half transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = np.asarray(open_image(tmp_path / "a.png", "image"))
    assert (out[:4, :, 0] == 255).all() and (out[4:] == 0).all()  # transparency over black
