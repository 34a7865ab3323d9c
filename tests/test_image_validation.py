"""Upload validation: every refusal with a real file, and what a kept photo loses."""

from __future__ import annotations

import io
import struct
import tracemalloc
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageDraw, ImageFilter, PngImagePlugin

from docwiz.services.images import (
    MIN_SHARPNESS,
    ImageRejected,
    ProcessedImage,
    measure_quality,
    process_upload,
    read_limited,
    sniff_format,
)

FIXTURES = Path(__file__).parent / "fixtures" / "images"
ORIENTATION = 0x0112
GPS_IFD = 0x8825


def photo_like(width: int = 640, height: int = 480, seed: int = 7) -> Image.Image:
    """A textured stand-in for a photo: lit gradient, shapes, sensor noise."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack(
        [
            120 + 80 * xs / width,
            90 + 60 * ys / height,
            140 - 50 * (xs + ys) / (width + height),
        ],
        axis=-1,
    )
    image = Image.fromarray(base.clip(0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(25):
        x0, y0 = rng.integers(0, width), rng.integers(0, height)
        x1, y1 = x0 + rng.integers(20, 160), y0 + rng.integers(20, 160)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        else:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
    noisy = np.asarray(image, dtype=np.float32) + rng.normal(0, 6, (height, width, 3))
    return Image.fromarray(noisy.clip(0, 255).astype(np.uint8), "RGB")


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def reopen(processed: ProcessedImage) -> Image.Image:
    image = Image.open(io.BytesIO(processed.content))
    image.load()
    return image


def refusal(data: bytes, **limits: int) -> ImageRejected:
    with pytest.raises(ImageRejected) as caught:
        process_upload(data, **limits)
    assert caught.value.message, "every refusal tells the patient something"
    return caught.value


def png_header_only(width: int, height: int) -> bytes:
    """A valid PNG stream whose IHDR declares ``width`` x ``height`` RGB."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (1 + width * 3), 9)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", idat)
        + chunk(b"IEND", b"")
    )


def jpeg_declaring(width: int, height: int) -> bytes:
    """A small real JPEG whose SOF0 marker is rewritten to a huge canvas."""
    data = bytearray(encode(photo_like(320, 240), "JPEG", quality=80))
    sof = data.index(b"\xff\xc0")
    # SOF0: marker, length(2), precision(1), height(2), width(2)
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


# -- accepted uploads ---------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "mime_type", "extension"),
    [
        ("JPEG", "image/jpeg", "jpg"),
        ("PNG", "image/png", "png"),
        ("WEBP", "image/webp", "webp"),
    ],
)
def test_accepts_a_photo_in_each_format(fmt: str, mime_type: str, extension: str):
    original = photo_like(640, 480)

    processed = process_upload(encode(original, fmt, quality=95))

    assert processed.format == fmt
    assert processed.mime_type == mime_type
    assert processed.extension == extension
    assert (processed.width, processed.height) == (640, 480)
    assert processed.size_bytes == len(processed.content)
    stored = reopen(processed)
    assert stored.format == fmt
    assert stored.size == (640, 480)
    assert processed.quality.sharpness > MIN_SHARPNESS


def test_png_pixels_survive_reencoding_exactly():
    original = photo_like(400, 300)

    stored = reopen(process_upload(encode(original, "PNG")))

    assert np.array_equal(np.asarray(stored.convert("RGB")), np.asarray(original))


def test_accepts_the_real_portrait():
    processed = process_upload((FIXTURES / "astronaut.jpg").read_bytes())

    assert (processed.format, processed.width, processed.height) == ("JPEG", 512, 512)
    assert processed.quality.sharpness > 10 * MIN_SHARPNESS


def test_format_comes_from_the_bytes_not_the_name(tmp_path: Path):
    renamed = tmp_path / "holiday.jpg"
    renamed.write_bytes(encode(photo_like(), "PNG"))

    processed = process_upload(renamed.read_bytes())

    assert (processed.format, processed.mime_type, processed.extension) == (
        "PNG",
        "image/png",
        "png",
    )


# -- refused formats ----------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "described_as"),
    [
        (lambda: encode(photo_like(), "GIF"), "GIF"),
        (lambda: encode(photo_like(), "BMP"), "BMP"),
        (lambda: encode(photo_like(), "TIFF"), "TIFF"),
        (lambda: b"name,date of birth\nJane,1990-01-15\n" * 40, "not a photo"),
        (lambda: b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + b"0" * 500, "PDF"),
        (lambda: b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00" + b"\x00" * 500, "HEIC"),
    ],
    ids=["gif", "bmp", "tiff", "text", "pdf", "heic"],
)
def test_refuses_other_formats(make, described_as: str):
    rejected = refusal(make())

    assert rejected.reason_code == "unsupported_format"
    assert described_as in rejected.message
    assert "JPEG, PNG and WebP" in rejected.message


def test_sniffing_needs_the_whole_webp_signature():
    assert sniff_format(b"RIFF\x00\x00\x00\x00WAVEfmt ") is None
    assert sniff_format(encode(photo_like(), "WEBP")) is not None


# -- damaged files -----------------------------------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_refuses_a_truncated_file(fmt: str):
    whole = encode(photo_like(), fmt)

    rejected = refusal(whole[: len(whole) // 2])

    assert rejected.reason_code == "corrupt"


def test_refuses_a_png_with_a_damaged_chunk():
    data = bytearray(encode(photo_like(), "PNG"))
    idat = data.index(b"IDAT")
    data[idat + 100] ^= 0xFF  # the chunk CRC no longer matches

    assert refusal(bytes(data)).reason_code == "corrupt"


def test_refuses_garbage_behind_a_jpeg_signature():
    assert refusal(b"\xff\xd8\xff" + bytes(range(256)) * 8).reason_code == "corrupt"


def test_refuses_an_empty_file():
    assert refusal(b"").reason_code == "corrupt"


# -- decompression bombs -----------------------------------------------------


def test_refuses_the_bomb_fixture_without_decoding_it():
    data = (FIXTURES / "bomb_50000x50000.png").read_bytes()
    assert len(data) < 1024

    tracemalloc.start()
    try:
        rejected = refusal(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert rejected.reason_code == "decompression_bomb"
    # Decoding even one row of this canvas would take 150 kB; all of it 7.5 GB.
    assert peak < 2 * 1024 * 1024


def test_refuses_a_canvas_over_our_limit_but_under_pillows():
    rejected = refusal(png_header_only(8000, 6000))

    assert rejected.reason_code == "decompression_bomb"
    assert "8000x6000" in rejected.message


def test_pillows_own_bomb_warning_is_a_refusal_too():
    # 100 MP is over Pillow's warning line (89 MP) and under its error line;
    # with our own limit lifted only the promoted warning can refuse it.
    rejected = refusal(png_header_only(10_000, 10_000), max_pixels=10**12)

    assert rejected.reason_code == "decompression_bomb"


def test_refuses_a_jpeg_declaring_a_huge_canvas():
    rejected = refusal(jpeg_declaring(60_000, 60_000))

    assert rejected.reason_code == "decompression_bomb"


def test_refuses_a_real_compressed_bomb_before_decoding():
    # 49 MP of one colour compresses to a few kB: a genuine bomb, not a
    # forged header.
    data = encode(Image.new("1", (7000, 7000)), "PNG", optimize=True)
    assert len(data) < 64 * 1024

    tracemalloc.start()
    try:
        rejected = refusal(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert rejected.reason_code == "decompression_bomb"
    assert peak < 8 * 1024 * 1024


# -- size and quality ---------------------------------------------------------


def test_refuses_an_oversize_file():
    data = encode(photo_like(), "PNG")

    rejected = refusal(data, max_bytes=len(data) - 1)

    assert rejected.reason_code == "too_large"


def test_refuses_a_photo_too_small_to_preview():
    rejected = refusal(encode(photo_like(200, 150), "JPEG"))

    assert rejected.reason_code == "too_small"
    assert "200x150" in rejected.message
    assert "256" in rejected.message


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_refuses_a_blank_photo(fmt: str):
    rng = np.random.default_rng(3)
    flat = np.full((600, 800, 3), (205, 180, 160), dtype=np.float32)
    flat += rng.normal(0, 1.0, flat.shape)  # a little sensor noise
    image = Image.fromarray(flat.clip(0, 255).astype(np.uint8), "RGB")

    assert refusal(encode(image, fmt)).reason_code == "blank"


@pytest.mark.parametrize(
    "source",
    [lambda: Image.open(FIXTURES / "astronaut.jpg"), lambda: photo_like(800, 600)],
    ids=["portrait", "photo-like"],
)
def test_refuses_a_blurred_photo_that_passes_when_sharp(source):
    sharp = source().convert("RGB")
    smeared = sharp.filter(ImageFilter.GaussianBlur(5))

    process_upload(encode(sharp, "JPEG", quality=92))
    rejected = refusal(encode(smeared, "JPEG", quality=92))

    assert rejected.reason_code == "too_blurry"
    assert "blurry" in rejected.message


def test_sharpness_does_not_depend_on_resolution():
    portrait = Image.open(FIXTURES / "astronaut.jpg").convert("RGB")
    large = portrait.resize((2048, 2048), Image.Resampling.LANCZOS)

    small_q = measure_quality(portrait)
    large_q = measure_quality(large)

    assert 0.5 < large_q.sharpness / small_q.sharpness < 2


# -- orientation and metadata -------------------------------------------------


def _marked_photo() -> Image.Image:
    """A 400x300 photo with a red block in its stored top-left corner."""
    image = photo_like(400, 300)
    ImageDraw.Draw(image).rectangle((0, 0, 59, 59), fill=(255, 0, 0))
    return image


def test_exif_orientation_is_applied():
    exif = Image.Exif()
    exif[ORIENTATION] = 6  # the viewer must turn it 90 degrees clockwise
    data = encode(_marked_photo(), "JPEG", quality=95, exif=exif)

    processed = process_upload(data)

    assert (processed.width, processed.height) == (300, 400)
    stored = reopen(processed)
    # A clockwise turn carries the top-left corner to the top-right.
    red, green, blue = stored.getpixel((270, 30))
    assert red > 200 and green < 60 and blue < 60
    assert ORIENTATION not in stored.getexif()


def _exif_with_gps() -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x0110] = "PhoneModel 12"  # Model
    exif[0x0132] = "2024:01:15 10:30:00"  # DateTime
    exif[GPS_IFD] = {
        1: "N",
        2: (37.0, 46.0, 29.7),
        3: "W",
        4: (122.0, 25.0, 9.9),
    }
    return exif


XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf='
    b'"http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
    b'xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/" '
    b'photoshop:City="San Francisco"/></rdf:RDF></x:xmpmeta>'
)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_exif_gps_and_xmp_are_stripped(fmt: str):
    options: dict[str, object] = {"exif": _exif_with_gps()}
    if fmt == "PNG":
        text = PngImagePlugin.PngInfo()
        text.add_text("Comment", "patient Jane Doe, DOB 1990-01-15")
        options["pnginfo"] = text
    else:
        options["xmp"] = XMP
    if fmt == "JPEG":
        options["comment"] = b"patient Jane Doe"
    data = encode(photo_like(), fmt, **options)
    uploaded = Image.open(io.BytesIO(data))
    assert uploaded.getexif().get_ifd(GPS_IFD), "the fixture must carry GPS"

    processed = process_upload(data)

    stored = reopen(processed)
    assert len(stored.getexif()) == 0
    assert not stored.getexif().get_ifd(GPS_IFD)
    assert not {"exif", "xmp", "XML:com.adobe.xmp", "comment", "Comment"} & set(
        stored.info
    )
    for leak in (b"PhoneMaker", b"San Francisco", b"Jane Doe", b"Exif\x00\x00"):
        assert leak not in processed.content


def test_icc_profile_is_kept():
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = encode(photo_like(), "JPEG", icc_profile=srgb)

    stored = reopen(process_upload(data))

    assert stored.info.get("icc_profile") == srgb


def test_cmyk_jpeg_is_stored_as_rgb():
    data = encode(photo_like().convert("CMYK"), "JPEG", quality=95)

    processed = process_upload(data)

    assert reopen(processed).mode == "RGB"


def test_palette_png_keeps_its_transparency():
    image = photo_like(400, 300).convert("P", palette=Image.Palette.ADAPTIVE)
    data = encode(image, "PNG", transparency=0)

    stored = reopen(process_upload(data))

    assert stored.mode == "RGBA"
    assert stored.getextrema()[3][0] == 0, "transparent pixels stay transparent"


# -- streamed uploads --------------------------------------------------------


async def test_read_limited_stops_at_the_first_chunk_over_the_limit():
    pulled = 0

    async def endless_body() -> AsyncIterator[bytes]:
        nonlocal pulled
        for _ in range(1000):
            pulled += 1
            yield b"\x00" * (1024 * 1024)

    with pytest.raises(ImageRejected) as caught:
        await read_limited(endless_body(), max_bytes=3 * 1024 * 1024)

    assert caught.value.reason_code == "too_large"
    assert pulled == 4


async def test_read_limited_returns_a_body_within_the_limit():
    body = encode(photo_like(), "PNG")

    async def chunked() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 7000):
            yield body[start : start + 7000]

    assert await read_limited(chunked(), max_bytes=len(body)) == body
