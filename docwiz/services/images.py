"""Checks and cleans an uploaded patient photo before anything stores it.

Everything here is synchronous CPU work; the HTTP layer runs it in a thread.
"""

from __future__ import annotations

import io
import logging
import struct
import warnings
from collections.abc import AsyncIterable
from dataclasses import dataclass
from typing import Final, Literal

import cv2
import numpy as np
from PIL import Image, ImageOps, ImageStat, UnidentifiedImageError

log = logging.getLogger("docwiz.images")

RejectionReason = Literal[
    "unsupported_format",
    "too_large",
    "corrupt",
    "decompression_bomb",
    "too_small",
    "blank",
    "too_blurry",
]

MAX_UPLOAD_BYTES: Final = 10 * 1024 * 1024
MIN_SIDE: Final = 256
MAX_PIXELS: Final = 40_000_000

# Quality measures are taken on a copy whose longer side is at most this many
# pixels, so that one threshold fits a 12 MP phone photo and a 600 px crop.
ANALYSIS_SIDE: Final = 512

# Measured on the longer-side-512 copy: real photos (astronaut, cat, coffee,
# rocket, motorcycle, Hubble field, moon) have a largest channel standard
# deviation of 12-89; a flat colour saved as JPEG measures 0, a gentle
# gradient 14. A line at 5 refuses flat frames (lens cap, blank screen)
# with a margin on both sides.
MIN_CONTRAST_STDDEV: Final = 5.0

# Variance of the Laplacian on the same copy, each photo saved as JPEG 92
# and blurred at its own resolution (300-1411 px): sharp photos measured
# 437-1640 (a smooth retina scan 91, the moon 65); after a Gaussian blur of
# sigma 1 px 8-346, sigma 2 px 2.6-60, sigma 3 px 1.6-18, sigma 4 px 1.3-8.
# The issue asks to refuse only photos far too blurry to use, so the line sits
# near sigma 2-3: a slightly soft photo still passes, a smeared one does not.
# The measure grows with contrast: the dim, low-contrast moon (stddev 13)
# already fails at sigma 1, while the portrait and the other daylight photos
# measured stddev 35-90. Sensor noise raises the measure, so a noisy blurred photo can
# pass; the check is a floor, not a grade.
MIN_SHARPNESS: Final = 8.0

JPEG_QUALITY: Final = 92
WEBP_QUALITY: Final = 92


@dataclass(frozen=True)
class ImageFormat:
    """One accepted upload format and how it is stored."""

    name: Literal["JPEG", "PNG", "WEBP"]
    mime_type: str
    extension: str
    """Without the dot, as used in storage keys (``images/img_1.jpg``)."""


JPEG: Final = ImageFormat("JPEG", "image/jpeg", "jpg")
PNG: Final = ImageFormat("PNG", "image/png", "png")
WEBP: Final = ImageFormat("WEBP", "image/webp", "webp")
ACCEPTED_FORMATS: Final = (JPEG, PNG, WEBP)


class ImageRejected(Exception):
    """An upload cannot be used; ``message`` tells the patient what to do."""

    def __init__(self, reason_code: RejectionReason, message: str) -> None:
        super().__init__(message)
        self.reason_code: RejectionReason = reason_code
        self.message = message

    def __repr__(self) -> str:
        return f"ImageRejected({self.reason_code!r}, {self.message!r})"

    def __reduce__(self) -> tuple[type[ImageRejected], tuple[str, str]]:
        # Rebuilt from both fields, so it also crosses a process pool.
        return (type(self), (self.reason_code, self.message))


@dataclass(frozen=True)
class ImageQuality:
    """Measures taken on the analysis copy, kept for logs and audits."""

    contrast_stddev: float
    sharpness: float
    """Variance of the Laplacian of the grey analysis copy."""


@dataclass(frozen=True)
class ProcessedImage:
    """A validated upload, re-encoded without EXIF, GPS, XMP or comments."""

    content: bytes
    format: Literal["JPEG", "PNG", "WEBP"]
    mime_type: str
    extension: str
    width: int
    height: int
    size_bytes: int
    quality: ImageQuality


def sniff_format(data: bytes) -> ImageFormat | None:
    """The accepted format that the leading bytes announce, if any."""
    if data.startswith(b"\xff\xd8\xff"):
        return JPEG
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return WEBP
    return None


_OTHER_SIGNATURES: Final = (
    (b"GIF87a", "a GIF file"),
    (b"GIF89a", "a GIF file"),
    (b"BM", "a BMP file"),
    (b"II*\x00", "a TIFF file"),
    (b"MM\x00*", "a TIFF file"),
    (b"%PDF", "a PDF file"),
)


def _describe_unsupported(data: bytes) -> str:
    """A short guess at what the patient sent, for the refusal message."""
    for signature, kind in _OTHER_SIGNATURES:
        if data.startswith(signature):
            return kind
    # HEIC/HEIF: an ISO media box "ftyp" with a HEIF brand; iPhones save these.
    if data[4:8] == b"ftyp" and data[8:12] in {b"heic", b"heix", b"mif1", b"msf1"}:
        return "a HEIC file"
    return "not a photo file we recognize"


def process_upload(
    data: bytes,
    *,
    max_bytes: int = MAX_UPLOAD_BYTES,
    min_side: int = MIN_SIDE,
    max_pixels: int = MAX_PIXELS,
    min_contrast: float = MIN_CONTRAST_STDDEV,
    min_sharpness: float = MIN_SHARPNESS,
) -> ProcessedImage:
    """Validate an uploaded photo and return it re-encoded without metadata.

    Raises :class:`ImageRejected` with a machine ``reason_code`` and a message
    for the patient. Blocking CPU work: call it through ``asyncio.to_thread``.
    """
    if len(data) > max_bytes:
        raise _too_large(max_bytes)
    if not data:
        raise ImageRejected(
            "corrupt", "The file is empty. Please choose the photo again."
        )

    image_format = sniff_format(data)
    if image_format is None:
        raise ImageRejected(
            "unsupported_format",
            f"The file is {_describe_unsupported(data)}. Only JPEG, PNG and"
            " WebP photos are accepted; please save or export the photo in one"
            " of those formats and upload it again.",
        )

    _check_declared_canvas(data, image_format, max_pixels)
    image = _decode(data, image_format, max_pixels)
    image = _apply_orientation(image)
    _check_size(image, min_side)
    quality = measure_quality(image)
    _check_quality(quality, min_contrast, min_sharpness)

    content = _encode_without_metadata(image, image_format)
    return ProcessedImage(
        content=content,
        format=image_format.name,
        mime_type=image_format.mime_type,
        extension=image_format.extension,
        width=image.width,
        height=image.height,
        size_bytes=len(content),
        quality=quality,
    )


def _too_large(max_bytes: int) -> ImageRejected:
    megabytes = max_bytes / (1024 * 1024)
    return ImageRejected(
        "too_large",
        f"The file is larger than {megabytes:g} MB. Please upload a smaller"
        " photo, for example one exported at a lower resolution.",
    )


def _bomb(max_pixels: int, size: tuple[int, int] | None = None) -> ImageRejected:
    canvas = f"a canvas of {size[0]}x{size[1]} pixels" if size else "a canvas"
    return ImageRejected(
        "decompression_bomb",
        f"The image declares {canvas}, more than the {max_pixels / 1e6:g}"
        " megapixels allowed. Please upload an ordinary photo from a camera or"
        " phone.",
    )


def _corrupt() -> ImageRejected:
    return ImageRejected(
        "corrupt",
        "The image data is damaged or incomplete and cannot be read. Please"
        " upload the original photo again.",
    )


# What Pillow raises on a damaged file varies by format and by step.
_DAMAGED = (UnidentifiedImageError, OSError, SyntaxError, ValueError, struct.error)
_BOMB_ALERTS = (Image.DecompressionBombError, Image.DecompressionBombWarning)


def _open_header(data: bytes, image_format: ImageFormat) -> Image.Image:
    """Parse only the header; Pillow reads no pixel data here."""
    return Image.open(io.BytesIO(data), formats=[image_format.name])


def _check_declared_canvas(
    data: bytes, image_format: ImageFormat, max_pixels: int
) -> None:
    """Refuse a canvas too large to decode before any pixel is decoded."""
    # Pillow warns above Image.MAX_IMAGE_PIXELS and raises above twice that;
    # the warning is promoted so that both become a refusal, never a decode.
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with _open_header(data, image_format) as header:
                size = header.size
                declared_format = header.format
                header.verify()
        except _BOMB_ALERTS:
            log.info("upload refused: Pillow reports a decompression bomb")
            raise _bomb(max_pixels) from None
        except _DAMAGED as exc:
            log.info("upload refused: header unreadable (%s)", type(exc).__name__)
            raise _corrupt() from None

    if declared_format != image_format.name:
        raise _corrupt()
    if size[0] * size[1] > max_pixels:
        log.info("upload refused: declared canvas %dx%d", *size)
        raise _bomb(max_pixels, size)


def _decode(data: bytes, image_format: ImageFormat, max_pixels: int) -> Image.Image:
    """Decode every pixel; a truncated or damaged stream is refused."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = _open_header(data, image_format)
        except _BOMB_ALERTS:
            raise _bomb(max_pixels) from None
        except _DAMAGED:
            raise _corrupt() from None
        try:
            image.load()
        except _DAMAGED as exc:
            image.close()
            log.info("upload refused: decoding failed (%s)", type(exc).__name__)
            raise _corrupt() from None
    # Only the first frame of an animated WebP or APNG is kept; its size is the
    # canvas checked above.
    return image


def _apply_orientation(image: Image.Image) -> Image.Image:
    """Turn the pixels as the EXIF Orientation tag says, once and for all."""
    try:
        # In place: without a turn to make, no second copy of the pixels.
        ImageOps.exif_transpose(image, in_place=True)
    except (OSError, SyntaxError, ValueError, struct.error) as exc:
        # A malformed EXIF block should not cost the patient the upload; the
        # block is dropped at re-encoding anyway, only the turn is lost.
        log.warning("EXIF orientation unreadable, kept as stored (%s)", exc)
    return image


def _check_size(image: Image.Image, min_side: int) -> None:
    if min(image.size) < min_side:
        raise ImageRejected(
            "too_small",
            f"The photo is {image.width}x{image.height} pixels; its shorter side"
            f" must be at least {min_side} pixels. Please upload the original,"
            " full-resolution photo rather than a thumbnail or screenshot.",
        )


def measure_quality(image: Image.Image) -> ImageQuality:
    """Contrast and sharpness of a photo, measured on a reduced RGB copy."""
    analysis = _analysis_copy(image)
    contrast = max(ImageStat.Stat(analysis).stddev)
    grey = np.asarray(analysis.convert("L"))
    sharpness = float(cv2.Laplacian(grey, cv2.CV_64F).var())
    return ImageQuality(
        contrast_stddev=round(contrast, 2), sharpness=round(sharpness, 2)
    )


def _analysis_copy(image: Image.Image) -> Image.Image:
    """An RGB copy whose longer side is at most ``ANALYSIS_SIDE``."""
    if image.mode not in {"L", "RGB", "RGBA"}:
        image = image.convert("RGB")
    longer = max(image.size)
    # A box reduction by an integer factor first keeps a 24 MP photo from
    # being copied whole; Lanczos then lands on the exact size. Bilinear was
    # measured to halve the sharpness of an upscaled photo, Lanczos keeps it
    # within 25% of the original's, so one threshold fits every resolution.
    factor = longer // (2 * ANALYSIS_SIDE)
    if factor >= 2:
        image = image.reduce(factor)
    if max(image.size) > ANALYSIS_SIDE:
        scale = ANALYSIS_SIDE / max(image.size)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    return image.convert("RGB")


def _check_quality(
    quality: ImageQuality, min_contrast: float, min_sharpness: float
) -> None:
    # Blank comes first: a flat image is also "blurry", and the blank message
    # tells the patient the more useful thing.
    if quality.contrast_stddev < min_contrast:
        raise ImageRejected(
            "blank",
            "The photo looks blank (nearly one flat colour). Please upload a"
            " photo that clearly shows the area to be treated, taken in good"
            " light.",
        )
    if quality.sharpness < min_sharpness:
        raise ImageRejected(
            "too_blurry",
            "The photo is too blurry to use. Please retake it in good light,"
            " holding the camera steady and letting it focus before taking"
            " the picture.",
        )


def _encode_without_metadata(image: Image.Image, image_format: ImageFormat) -> bytes:
    """Re-encode the pixels only; an ICC profile is kept for true colour."""
    icc_profile = image.info.get("icc_profile")
    stored = _storable_mode(image, image_format)
    if _colour_family(stored.mode) != _colour_family(image.mode):
        # A CMYK or grey profile would misdescribe the converted RGB pixels.
        icc_profile = None
    # Savers fall back to image.info for some chunks (JPEG comments, PNG
    # transparency); clearing it leaves no metadata to copy across.
    stored.info = {}

    options: dict[str, object] = {}
    if icc_profile:
        options["icc_profile"] = icc_profile
    if image_format is JPEG:
        options["quality"] = JPEG_QUALITY
    elif image_format is WEBP:
        options["quality"] = WEBP_QUALITY

    buffer = io.BytesIO()
    stored.save(buffer, format=image_format.name, **options)
    return buffer.getvalue()


_KEPT_MODES: Final = {
    "JPEG": {"L", "RGB"},
    "PNG": {"1", "L", "LA", "I;16", "RGB", "RGBA"},
    "WEBP": {"RGB", "RGBA"},
}


def _storable_mode(image: Image.Image, image_format: ImageFormat) -> Image.Image:
    """The image in a mode its format stores without losing transparency."""
    if image.mode in _KEPT_MODES[image_format.name]:
        return image
    has_alpha = image.mode in {"RGBA", "LA", "PA"} or (
        image.mode == "P" and "transparency" in image.info
    )
    target = "RGBA" if has_alpha and image_format is not JPEG else "RGB"
    return image.convert(target)


def _colour_family(mode: str) -> str:
    if mode in {"1", "L", "LA", "I;16", "I"}:
        return "grey"
    if mode in {"RGB", "RGBA", "P", "PA"}:
        return "rgb"
    return mode


async def read_limited(chunks: AsyncIterable[bytes], max_bytes: int) -> bytes:
    """Collect a streamed upload, refusing it as soon as it passes ``max_bytes``.

    Stops reading at the first chunk over the limit, so an oversize body never
    sits in memory whole. Raises :class:`ImageRejected` ("too_large").
    """
    received: list[bytes] = []
    total = 0
    async for chunk in chunks:
        total += len(chunk)
        if total > max_bytes:
            raise _too_large(max_bytes)
        received.append(chunk)
    return b"".join(received)
