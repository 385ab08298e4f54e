"""Partial files: a live writer's file is never swept, a crash's leftover always is."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from aiprod_studio.files import partials

ROOT = Path(__file__).resolve().parent.parent
SWEEP = "import sys; from aiprod_studio.files import partials; print(len(partials.sweep(sys.argv[1:])))"


def sweep_elsewhere(*paths: Path) -> int:
    """Sweep from another process, as a studio starting beside a running render would."""
    out = subprocess.run(
        [sys.executable, "-c", SWEEP, *map(str, paths)], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return int(out.stdout)


def test_a_held_partial_survives_a_sweep_and_goes_once_released(tmp_path):
    tmp = partials.temp_path_for(tmp_path / "clip.mp4")
    assert tmp.name == ".clip.mp4.partial"
    with partials.holding(tmp):
        tmp.write_bytes(b"half a video")
        assert sweep_elsewhere(tmp) == 0 and tmp.read_bytes() == b"half a video"
    assert sweep_elsewhere(tmp) == 1 and not tmp.exists()


def test_a_writer_killed_with_sigkill_releases_its_partial(tmp_path):
    tmp = tmp_path / ".film.mp4.partial"
    code = (
        "import sys, time; from pathlib import Path; from aiprod_studio.files import partials\n"
        "with partials.holding(Path(sys.argv[1])):\n"
        "    print('held', flush=True); time.sleep(60)\n"
    )
    writer = subprocess.Popen([sys.executable, "-c", code, str(tmp)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "held"
        assert partials.sweep([tmp]) == [] and tmp.exists()
        writer.kill()
        writer.wait()
        assert partials.sweep([tmp]) == [tmp] and not tmp.exists()
    finally:
        if writer.poll() is None:
            writer.kill()


def test_sweep_tree_takes_only_hidden_partial_files(tmp_path):
    (tmp_path / "films").mkdir()
    leftovers = [tmp_path / ".a.mp4.partial", tmp_path / "films" / ".film.mp4.partial"]
    keep = [tmp_path / "a.mp4", tmp_path / "notes.partial", tmp_path / ".hidden.mp4"]
    for p in leftovers + keep:
        p.write_bytes(b"x")
    target = tmp_path / "target.mp4"
    target.write_bytes(b"precious")
    os.symlink(target, tmp_path / ".link.mp4.partial")  # never followed, never removed
    assert sorted(partials.sweep_tree(tmp_path)) == sorted(leftovers)
    assert all(p.exists() for p in keep) and target.read_bytes() == b"precious"
    assert (tmp_path / ".link.mp4.partial").is_symlink()
    assert partials.sweep_tree(tmp_path / "missing") == []


def test_encode_holds_its_partial_until_the_rename(tmp_path, monkeypatch):
    """While the MP4 is being written (and until it is renamed into place) a sweep leaves it."""
    import numpy as np

    from aiprod_studio.files import atomic
    from engine.render import media

    seen = {}
    real_replace = atomic.replace_durably

    def replace_checked(tmp: Path, path: Path) -> None:
        seen["swept"] = sweep_elsewhere(tmp)
        seen["size"] = tmp.stat().st_size
        real_replace(tmp, path)

    monkeypatch.setattr(media, "replace_durably", replace_checked)
    out = media.encode_mp4(tmp_path / "c.mp4", np.zeros((9, 32, 32, 3), np.uint8), 24)
    assert seen["swept"] == 0 and seen["size"] > 0
    assert out.is_file() and not partials.temp_path_for(out).exists()
    assert media.probe(out)["video"]["frames"] == 9
    assert partials.sweep_tree(tmp_path) == []
