"""Deep verify throughput against coreutils `sha256sum`, and the quick verify time.

Builds a synthetic vault of several large files (random bytes, recorded in a manifest),
then in one run, alternating, times:

- `sha256sum` over all the files (one process, one file after another), against
  `vault verify --deep` hashing several files at once in threads;
- `sha256sum` on the single largest file, against deep verify of an entry holding only
  that file (one thread: the per-file hashing loop itself);
- the quick verify of the whole vault (stat cache, nothing re-hashed).

Files are read once before timing so both sides hash from the page cache: the ratio
compares hashing, not the disk. Ratios are sha256sum time / verify time (≥ 1: verify
is as fast or faster).

    .venv/bin/python benchmarks/verify_throughput.py [--gb 4] [--files 4] [--repeats 3] [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiprod_studio.vault.store import Vault  # noqa: E402
from aiprod_studio.vault.verify import verify  # noqa: E402


def build(root: Path, total_gb: float, files: int) -> None:
    """Entry `big` holds `files` files of random bytes; entry `one` holds a copy of the largest."""
    per = int(total_gb * 1e9 / files)
    folder = root / "pipelines" / "big"
    folder.mkdir(parents=True)
    for i in range(files):
        chunk = os.urandom(64 * 1024 * 1024)
        with open(folder / f"part-{i}.dat", "wb") as f:
            left = per + (i * 7919) % 4096
            while left > 0:
                f.write(chunk[: min(left, len(chunk))])
                left -= len(chunk)
    largest = max(folder.iterdir(), key=lambda p: p.stat().st_size)
    (root / "pipelines" / "one").mkdir()
    shutil.copyfile(largest, root / "pipelines" / "one" / largest.name)
    vault = Vault(root)
    vault.record("big", "pipeline", "ltx2", "pipelines/big")
    vault.record("one", "pipeline", "ltx2", "pipelines/one")


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gb", type=float, default=4.0, help="total size of the synthetic vault (default 4)")
    ap.add_argument("--files", type=int, default=4, help="number of files (default 4)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="verify threads (default: the studio's)")
    ap.add_argument("--dir", help="where to build it (default: a temp folder, removed afterwards)")
    args = ap.parse_args()
    if shutil.which("sha256sum") is None:
        sys.exit("needs coreutils sha256sum")

    base = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="aiprod-verify-bench-"))
    root = base / "models"
    try:
        t = timed(lambda: build(root, args.gb, args.files))
        vault = Vault(root)
        big = sorted(str(p) for p in (root / "pipelines/big").iterdir())
        one = [str(next((root / "pipelines/one").iterdir()))]
        total = sum(os.path.getsize(p) for p in big)
        print(
            f"built {len(big)} files, {total / 1e9:.2f} GB (+ {os.path.getsize(one[0]) / 1e9:.2f} GB single) "
            f"in {t:.1f}s; {os.cpu_count()} CPUs"
        )
        for p in big + one:  # warm the page cache for both sides
            with open(p, "rb") as f:
                while f.read(64 << 20):
                    pass

        def sha256sum(paths: list[str]) -> None:
            subprocess.run(["sha256sum", *paths], check=True, capture_output=True)

        def deep(name: str, threads: int | None) -> None:
            report = verify(vault, [name], deep=True, threads=threads)
            assert report.ok, report.failures()

        rows = {"many files": ([], []), "single file": ([], [])}
        for _ in range(args.repeats):
            rows["many files"][0].append(timed(lambda: sha256sum(big)))
            rows["many files"][1].append(timed(lambda: deep("big", args.threads)))
            rows["single file"][0].append(timed(lambda: sha256sum(one)))
            rows["single file"][1].append(timed(lambda: deep("one", 1)))
        quick = [timed(lambda: verify(vault)) for _ in range(max(5, args.repeats))]

        print(f"\n{'case':<12} {'sha256sum s':>12} {'verify s':>10} {'verify GB/s':>12} {'ratio':>7}")
        for case, (ref, ours) in rows.items():
            size = total if case == "many files" else os.path.getsize(one[0])
            r, o = statistics.median(ref), statistics.median(ours)
            print(f"{case:<12} {r:>12.3f} {o:>10.3f} {size / o / 1e9:>12.2f} {r / o:>7.2f}")
        print(
            f"\nquick verify of the whole vault ({len(big) + 1} files, "
            f"{(total + os.path.getsize(one[0])) / 1e9:.2f} GB): "
            f"median {statistics.median(quick) * 1000:.1f} ms"
        )
    finally:
        if not args.dir:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
