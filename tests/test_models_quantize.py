"""optimum-quanto int8/fp8 quantization of the transformer: smaller weights, still renders."""

from __future__ import annotations

import pytest

from engine.device.plan import resolve
from engine.models.pipelines import load_pipeline
from engine.models.quantize import weight_bytes
from engine.render import media


@pytest.mark.parametrize("mode", ["int8", "fp8"])
def test_quantized_transformer_shrinks_and_renders(studio, mode):
    entry = studio.vault.get("aiprod-tiny-ltx2")
    plain = load_pipeline(studio.vault, entry, resolve("cpu"), "none")
    quant = load_pipeline(studio.vault, entry, resolve("cpu"), mode)
    ratio = weight_bytes(quant.transformer) / weight_bytes(plain.transformer)
    # Linear weights go from 4 bytes to 1 (+ scales); biases and norms stay float.
    assert ratio < 0.45, ratio
    qtypes = {type(m.weight).__name__ for m in quant.transformer.modules() if type(m).__name__ == "QLinear"}
    assert qtypes, "no layer was quantized"

    row = studio.render(studio.build_recipe({"prompt": "a quantized sunset", "quantization": mode}))
    assert row["recipe"]["quantization"] == mode
    assert media.probe(row["output_path"])["video"]["frames"] == 17
