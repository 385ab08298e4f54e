"""Quantizing a transformer's weights in place with optimum-quanto, and measuring them."""

from __future__ import annotations

import logging

import torch

from aiprod_studio.errors import BadInput

log = logging.getLogger(__name__)


def weight_bytes(module: torch.nn.Module) -> int:
    """Bytes of everything in the module's state dict (quantized weights count as stored)."""
    return sum(t.numel() * t.element_size() for t in module.state_dict().values())


def quantize_transformer(transformer: torch.nn.Module, quantization: str) -> torch.nn.Module:
    """Quantize the transformer's weights in place with optimum-quanto (`int8` or `fp8`)."""
    if quantization == "none":
        return transformer
    from optimum.quanto import freeze, qfloat8, qint8, quantize

    weights = {"int8": qint8, "fp8": qfloat8}.get(quantization)
    if weights is None:
        raise BadInput(f"quantization must be none, int8 or fp8, got {quantization!r}", field="quantization")
    before = weight_bytes(transformer)
    quantize(transformer, weights=weights)
    freeze(transformer)
    log.info("transformer quantized to %s: %d → %d bytes", quantization, before, weight_bytes(transformer))
    return transformer
