"""Device policy: CUDA → bf16, CPU → float32, explicit choices checked."""

from __future__ import annotations

import pytest
import torch

from aiprod_studio.errors import BadInput
from engine.device.plan import resolve


def test_cpu_is_float32():
    plan = resolve("cpu")
    assert plan.device.type == "cpu" and plan.dtype == torch.float32 and plan.label == "cpu (float32)"


def test_auto_follows_cuda_availability():
    plan = resolve("auto")
    expected = ("cuda", torch.bfloat16) if torch.cuda.is_available() else ("cpu", torch.float32)
    assert (plan.device.type, plan.dtype) == expected


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error shown without a GPU")
def test_cuda_without_gpu_is_a_clear_error():
    with pytest.raises(BadInput, match="'cuda' was asked for but no CUDA GPU") as info:
        resolve("cuda")
    assert info.value.field == "device"


def test_unknown_device_names_the_value():
    with pytest.raises(BadInput, match="got 'tpu'"):
        resolve("tpu")


@pytest.mark.gpu
def test_cuda_render_in_bf16_with_fp8(studio_cuda):
    row = studio_cuda.render(studio_cuda.build_recipe({"prompt": "gpu check", "quantization": "fp8"}))
    assert row["status"] == "done" and row["recipe"]["versions"]["device"].endswith("(bfloat16)")


@pytest.fixture
def studio_cuda(tiny_vault, data_dir):
    from aiprod_studio.settings import load_settings
    from engine.studio import Studio

    s = Studio(load_settings(models_dir=tiny_vault, data_dir=data_dir, device="cuda"))
    yield s
    s.close()
