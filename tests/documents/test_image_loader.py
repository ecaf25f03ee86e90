"""load_image / load_image_bytes on images generated here."""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from doc_factories import image_bytes, png_header_only, tiff_frames
from PIL import Image

from pagesight.documents import load_image, load_image_bytes
from pagesight.errors import (
    ConfigurationError,
    DocumentLoadError,
    EmptyDocumentError,
    ImageTooLargeError,
    SourceNotFoundError,
)

WriteFile = Callable[[str, bytes], Path]


@pytest.mark.parametrize(
    ("name", "fmt", "mode", "color"),
    [
        ("a.png", "PNG", "RGB", (10, 200, 30)),
        ("a.jpg", "JPEG", "RGB", (10, 200, 30)),
        ("a.jpeg", "JPEG", "L", 128),
        ("a.webp", "WEBP", "RGB", (10, 200, 30)),
        ("a.tif", "TIFF", "RGB", (10, 200, 30)),
        ("a.png", "PNG", "P", 3),
        ("a.jpg", "JPEG", "CMYK", (0, 0, 0, 0)),
    ],
)
def test_formats_become_rgb_png(
    write_file: WriteFile, image_dir: Path, name: str, fmt: str, mode: str, color: object
) -> None:
    data = image_bytes((64, 48), fmt, color, mode)
    path = write_file(name, data)
    (page,) = load_image(path, image_dir=image_dir)
    digest = hashlib.sha256(data).hexdigest()
    assert (page.source, page.page, page.text, page.width, page.height) == (str(path), 1, "", 64, 48)
    assert page.content_hash == digest
    assert page.image == image_dir / f"{digest[:32]}-p1.png"
    with Image.open(page.image) as im:
        assert (im.format, im.mode, im.size) == ("PNG", "RGB", (64, 48))


def test_transparency_over_white(write_file: WriteFile, image_dir: Path) -> None:
    path = write_file("clear.png", image_bytes((8, 8), "PNG", (255, 0, 0, 0), "RGBA"))
    (page,) = load_image(path, image_dir=image_dir)
    assert page.image is not None
    with Image.open(page.image) as im:
        assert im.getpixel((4, 4)) == (255, 255, 255)


def test_exif_orientation_applied(write_file: WriteFile, image_dir: Path) -> None:
    im = Image.new("RGB", (40, 20), "blue")
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    buf = io.BytesIO()
    im.save(buf, format="JPEG", exif=exif.tobytes())
    (page,) = load_image(write_file("phone.jpg", buf.getvalue()), image_dir=image_dir)
    assert (page.width, page.height) == (20, 40)


def test_multi_frame_tiff_gives_one_page_per_frame(write_file: WriteFile, image_dir: Path) -> None:
    data = tiff_frames([(30, 40), (50, 20), (10, 10)], ["red", "green", "blue"])
    path = write_file("scan.tiff", data)
    pages = list(load_image(path, image_dir=image_dir))
    assert [(p.page, p.width, p.height) for p in pages] == [(1, 30, 40), (2, 50, 20), (3, 10, 10)]
    assert len({p.image for p in pages}) == 3
    assert pages[1].image is not None
    with Image.open(pages[1].image) as im:
        assert im.getpixel((0, 0)) == (0, 128, 0)


def test_tiff_frames_decoded_lazily(write_file: WriteFile, image_dir: Path) -> None:
    path = write_file("scan.tif", tiff_frames([(10, 10)] * 3, ["red"] * 3))
    pages = load_image(path, image_dir=image_dir)
    next(pages)
    assert len(list(image_dir.iterdir())) == 1


def test_load_image_bytes_and_source(image_dir: Path) -> None:
    data = image_bytes((5, 7), "WEBP")
    (page,) = load_image_bytes(data, source="https://x/y.webp", image_dir=image_dir)
    assert (page.source, page.width, page.height) == ("https://x/y.webp", 5, 7)
    assert page.content_hash == hashlib.sha256(data).hexdigest()


# ----------------------------------------------------------------------------- limits


def test_pixel_limit_checked_from_header(write_file: WriteFile) -> None:
    path = write_file("bomb.png", png_header_only(30_000, 20_000))  # 600 Mpx claimed, 57 bytes on disk
    start = time.perf_counter()
    with pytest.raises(
        ImageTooLargeError, match=r"bomb\.png: image is 600,000,000 pixels.*max_pixels="
    ) as info:
        load_image(path)
    assert time.perf_counter() - start < 1.0
    assert isinstance(info.value, DocumentLoadError)


def test_own_limit_names_size_and_limit(write_file: WriteFile, tmp_path: Path) -> None:
    path = write_file("big.png", image_bytes((40, 30), "PNG"))
    with pytest.raises(
        ImageTooLargeError,
        match=r"big\.png: image is 40×30 = 1,200 pixels, over the limit of 1,000.*max_pixels=",
    ):
        load_image(path, max_pixels=1000)
    (page,) = load_image(path, max_pixels=1200, image_dir=tmp_path / "out")
    assert page.width == 40


def test_pillow_warning_range_obeys_max_pixels(write_file: WriteFile, tmp_path: Path) -> None:
    # 100 Mpx: above Pillow's warning threshold, below its hard error. Our limit decides, from the header.
    path = write_file("wide.png", png_header_only(10_000, 10_000))
    with pytest.raises(
        ImageTooLargeError, match=r"10000×10000 = 100,000,000 pixels, over the limit of 89,478,485"
    ):
        load_image(path)


def test_tiff_frame_over_limit_names_frame(write_file: WriteFile) -> None:
    path = write_file("mixed.tiff", tiff_frames([(10, 10), (100, 100)], ["red", "blue"]))
    with pytest.raises(ImageTooLargeError, match=r"mixed\.tiff \(page 2\): image is 100×100") as info:
        load_image(path, max_pixels=500)
    assert info.value.page == 2


def test_bad_max_pixels(write_file: WriteFile) -> None:
    with pytest.raises(ConfigurationError, match="`max_pixels`"):
        load_image(write_file("a.png", image_bytes((2, 2), "PNG")), max_pixels=0)


# ----------------------------------------------------------------------------- bad input


def test_not_an_image(write_file: WriteFile) -> None:
    path = write_file("notes.png", b"these are notes, not pixels\n" * 10)
    with pytest.raises(DocumentLoadError, match=r"notes\.png: not an image pagesight reads"):
        load_image(path)


def test_unsupported_image_format(write_file: WriteFile) -> None:
    path = write_file("anim.png", image_bytes((4, 4), "GIF"))  # GIF bytes under a .png name
    with pytest.raises(DocumentLoadError, match=r"anim\.png: .*supported: PNG, JPEG, TIFF, WebP"):
        load_image(path)


def test_truncated_image_data(write_file: WriteFile, image_dir: Path) -> None:
    import random

    rng = random.Random(0)
    noise = Image.frombytes("RGB", (200, 200), bytes(rng.randrange(256) for _ in range(200 * 200 * 3)))
    buf = io.BytesIO()
    noise.save(buf, format="PNG")
    data = buf.getvalue()
    path = write_file("cut.png", data[: len(data) // 2])
    pages = load_image(path, image_dir=image_dir)  # the header is intact: the damage shows when decoding
    with pytest.raises(DocumentLoadError, match=r"cut\.png: the image data is damaged"):
        next(pages)
    assert list(image_dir.iterdir()) == []  # no half-written file left behind


def test_missing_and_empty(write_file: WriteFile, tmp_path: Path) -> None:
    with pytest.raises(SourceNotFoundError, match=r"gone\.png"):
        load_image(tmp_path / "gone.png")
    with pytest.raises(EmptyDocumentError, match=r"zero\.jpg"):
        load_image(write_file("zero.jpg", b""))
    with pytest.raises(EmptyDocumentError, match=r"https://x/y\.png"):
        load_image_bytes(b"", source="https://x/y.png")
