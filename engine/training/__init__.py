"""LoRA training: dataset, preprocessing, the flow-matching loop, checkpoints and export."""
