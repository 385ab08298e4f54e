"""Pictures a render starts from or holds to: checked by content, prepared to the clip's size,
kept content-addressed so a recipe naming them by sha256 re-renders anywhere.

Every uploaded or named file is hostile until checked: only PNG, JPEG and WebP (by their
first bytes, not their names), at most `MAX_FILE_BYTES` on disk and `MAX_PIXELS` pixels
(read from the header before anything is decoded), fully decodable. A prepared image is
the picture scaled to cover the clip (aspect kept) and cropped at its centre, exactly the
clip's width × height: the pixels the model is given, stored losslessly as PNG.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from aiprod_studio.errors import BadInput
from aiprod_studio.files import partials
from aiprod_studio.files.atomic import replace_durably

MAX_FILE_BYTES = 50 * 1024 * 1024
MAX_PIXELS = 40_000_000  # 40 megapixels (8K is 33)
FORMATS = {"PNG": "PNG", "JPEG": "JPEG", "WEBP": "WebP"}
STORE_DIR = "images"  # under the outputs folder, beside the clips
MAX_SOURCE_SIDE = 3840  # a picture kept to be prepared later (a storyboard shot's) is at most this wide or high
_PREPARED: dict[tuple[str, str, int, int], str] = {}  # (store, source sha256, width, height) → the prepared one


def kind_of(head: bytes) -> str | None:
    """The picture format these first bytes open, or None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return None


def read_limited(path: str | Path, field: str) -> bytes:
    """The bytes of file `path` (at most `MAX_FILE_BYTES`), or `BadInput` naming `field`."""
    path = Path(path)
    try:
        if not path.is_file():
            raise BadInput(f"{field} {str(path)!r} is not a file", field=field)
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise BadInput(f"{field} {str(path)!r} cannot be read: {exc.strerror or exc}", field=field) from None
    if len(data) > MAX_FILE_BYTES:
        raise BadInput(f"{field} {path.name!r} is over {MAX_FILE_BYTES // 2**20} MiB", field=field)
    return data


def open_image(path: str | Path, field: str) -> Image.Image:
    """The picture at `path` as RGB (EXIF rotation applied), or `BadInput` naming `field`."""
    return decode_image(read_limited(path, field), Path(path).name, field)


def decode_image(data: bytes, name: str, field: str) -> Image.Image:
    """A picture file's bytes as RGB: checked by content and pixel count before anything is decoded."""
    kind = kind_of(data[:16])
    if kind is None:
        raise BadInput(f"{field} {name!r} is not a PNG, JPEG or WebP picture (by its content)", field=field)
    try:
        image = Image.open(io.BytesIO(data), formats=[kind])
        width, height = image.size  # from the header: nothing decoded yet
        if width * height > MAX_PIXELS:
            raise BadInput(
                f"{field} {name!r} is {width}×{height} pixels; at most {MAX_PIXELS // 1_000_000} megapixels",
                field=field,
            )
        image.load()
        image = ImageOps.exif_transpose(image)
        if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):  # 16-bit or float grey: scaled, not clipped
            grey = np.asarray(image, dtype=np.float64)
            top = 65535.0 if image.mode.startswith("I") else max(float(grey.max()), 1.0)
            image = Image.fromarray(np.clip(grey / top * 255.0 + 0.5, 0, 255).astype(np.uint8), mode="L")
        if "A" in image.getbands() or "transparency" in image.info:  # transparent parts over black
            image = Image.alpha_composite(Image.new("RGBA", image.size, (0, 0, 0, 255)), image.convert("RGBA"))
        return image.convert("RGB")
    except BadInput:
        raise
    except Image.DecompressionBombError:  # (Pillow's own guard, from the header)
        raise BadInput(
            f"{field} {name!r} has too many pixels; at most {MAX_PIXELS // 1_000_000} megapixels", field=field
        ) from None
    except Exception as exc:  # noqa: BLE001 — a hostile file can fail anywhere in a decoder: always a refusal
        raise BadInput(f"{field} {name!r} is not a readable {FORMATS[kind]} picture: {exc}", field=field) from None


def prepare(image: Image.Image, width: int, height: int) -> Image.Image:
    """`image` scaled to cover width × height (aspect kept) and cropped at its centre to exactly that."""
    return ImageOps.fit(image, (width, height), method=Image.Resampling.LANCZOS, centering=(0.5, 0.5))


def png_bytes(image: Image.Image) -> bytes:
    """The lossless PNG of `image`, written the same way every time (no metadata, fixed compression)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=6, optimize=False)
    return buffer.getvalue()


class ImageStore:
    """Prepared pictures by sha256 (`<sha256>.png`) in one folder; written atomically, read back verified."""

    def __init__(self, root: Path, also: list[Path] | None = None):
        self.root = Path(root)
        self.also = [Path(p) for p in also or []]  # more folders to look in (an MP4's `images/` beside it)

    def put(self, image: Image.Image) -> str:
        """Store `image` (if not already there); returns its sha256."""
        data = png_bytes(image)
        sha = hashlib.sha256(data).hexdigest()
        target = self.root / f"{sha}.png"
        if not (target.is_file() and _sha256(target) == sha):
            self._write(sha, data)
        return sha

    def adopt(self, shas: list[str]) -> list[str]:
        """Copy into the store the pictures it lacks that one of its other folders holds unchanged
        (a clip's `images/` copied along with it); returns those copied."""
        copied = []
        for sha in shas:
            if (self.root / f"{sha}.png").is_file():
                continue
            found = self.find(sha)
            if found is None:
                continue
            try:
                data = read_limited(found, "conditions")
            except BadInput:
                continue
            if hashlib.sha256(data).hexdigest() == sha:
                self._write(sha, data)
                copied.append(sha)
        return copied

    def _write(self, sha: str, data: bytes) -> None:
        target = self.root / f"{sha}.png"
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = partials.temp_path_for(target)
        with partials.holding(tmp):
            try:
                with open(tmp, "wb") as f:
                    f.write(data)
                replace_durably(tmp, target)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise

    def put_source(self, path: str | Path, field: str) -> str:
        """Keep the picture at `path` to be prepared later at whatever size (at most `MAX_SOURCE_SIDE` a side,
        so a stored source always reads back within the limits); returns its sha256."""
        image = open_image(path, field)
        image.thumbnail((MAX_SOURCE_SIDE, MAX_SOURCE_SIDE), Image.Resampling.LANCZOS)
        return self.put(image)

    def prepared(self, source: str, width: int, height: int, field: str = "image") -> str:
        """The sha256 of stored picture `source` prepared at width × height (made once, then remembered)."""
        key = (str(self.root), source, width, height)
        known = _PREPARED.get(key)
        if known and (self.root / f"{known}.png").is_file():
            return known
        path = self.find(source)
        if path is None:
            raise BadInput(f"{field}: picture {source[:12]}… is not in the image store; set it again", field=field)
        data = read_limited(path, field)
        if hashlib.sha256(data).hexdigest() != source:
            raise BadInput(f"{field}: picture {path} does not match its sha256 (changed on disk)", field=field)
        _PREPARED[key] = self.put(prepare(decode_image(data, path.name, field), width, height))
        return _PREPARED[key]

    def find(self, sha: str) -> Path | None:
        for folder in (self.root, *self.also):
            path = folder / f"{sha}.png"
            if path.is_file():
                return path
        return None

    def load(self, sha: str, width: int, height: int, field: str = "conditions") -> np.ndarray:
        """The stored picture `sha` as uint8 H×W×3, checked against its name and the clip's size."""
        path = self.find(sha)
        if path is None:
            raise BadInput(
                f"{field}: picture {sha[:12]}… is not in the image store ({self.root}); copy the `images` folder "
                "that came with the clip there, or give the picture again",
                field=field,
            )
        data = read_limited(path, field)  # read once: the bytes hashed are the bytes decoded
        if hashlib.sha256(data).hexdigest() != sha:
            raise BadInput(f"{field}: picture {path} does not match its sha256 (changed on disk)", field=field)
        image = decode_image(data, path.name, field)
        if image.size != (width, height):
            raise BadInput(
                f"{field}: picture {sha[:12]}… is {image.size[0]}×{image.size[1]}, the clip {width}×{height}",
                field=field,
            )
        return np.asarray(image, dtype=np.uint8)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def store_for(outputs_dir: Path, clip: Path | None = None) -> ImageStore:
    """The studio's image store (beside its clips), also looking beside `clip` when given."""
    also = [Path(clip).parent / STORE_DIR] if clip is not None else []
    return ImageStore(
        Path(outputs_dir) / STORE_DIR,
        [p for p in also if os.path.abspath(p) != os.path.abspath(Path(outputs_dir) / STORE_DIR)],
    )
