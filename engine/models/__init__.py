"""Models from the vault: pipeline loading, quantization, LoRAs at render time, size limits, the tiny model."""
