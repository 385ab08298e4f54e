"""Training datasets the tests build: clips of coloured squares with their captions."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.render import media

COLOURS = {"red": (230, 40, 40), "green": (40, 200, 60), "blue": (40, 80, 230), "yellow": (230, 220, 40)}


def make_dataset(folder: Path, n: int = 8, frames: int = 17, size: int = 64, seed: int = 0) -> Path:
    """n clips of a coloured square moving over a dark background, each with its caption."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        name, rgb = list(COLOURS.items())[i % 4]
        video = np.full((frames, size, size, 3), 20, np.uint8)
        x0, y0 = rng.integers(0, size - 16, 2)
        dx, dy = rng.choice([-2, -1, 1, 2], 2)
        for f in range(frames):
            x, y = (x0 + dx * f) % (size - 16), (y0 + dy * f) % (size - 16)
            video[f, y : y + 16, x : x + 16] = rgb
        media.encode_mp4(folder / f"clip{i:02d}.mp4", video, 24)
        (folder / f"clip{i:02d}.txt").write_text(f"a {name} square moves across a dark background")
    return folder
