"""Face detection with OpenCV's Haar cascades, and anthropometric geometry built on
the eyes: where the nose, lips, chin, ears and body regions lie in a photo.

Only the cascades that ``opencv-python-headless<5`` ships in ``cv2.data`` are
used (frontal face ``default`` and ``alt2``, ``eye``, ``smile``), so nothing is
downloaded. OpenCV ships no nose, lip or landmark model, so every other feature
is placed from the eyes with average adult proportions (Farkas, *Anthropometry
of the Head and Face*, 1994), in units of the interpupillary distance (IPD,
about 63 mm):

====================  =================================================
nasal (alar) width    ~0.55 IPD (31-35 mm)
pupils to subnasale   ~0.65 IPD (nasion-subnasale ~50 mm, pupils ~9 mm lower)
subnasale to stomion  ~0.32 IPD, so the mouth line is ~0.97 IPD below
mouth width           ~0.80 IPD (48-52 mm)
stomion to menton     ~0.68 IPD; soft-tissue chin (pogonion) ~1.5 IPD
brows                 ~0.4 IPD above the pupils
face width            ~2.1 IPD (bizygomatic); gonial angles at ~±0.95
ears                  centred ~±1.2 IPD, from brow level to the nose base
head height           ~3.6 IPD (vertex to menton)
====================  =================================================

Body regions are placed from the head height with the classical
"eight heads" figure canon (nipples one head below the chin, navel two, crotch
three); without a face they fall back to a torso-framed guess.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

GrayImage = npt.NDArray[np.uint8]
ColourImage = npt.NDArray[np.uint8]

DETECTION_MAX_SIDE = 640
"""Detection runs on a copy no larger than this; Haar boxes need no more."""

MIN_FACE_FRACTION = 0.08
"""Faces smaller than this share of the shorter side are too small to treat."""

FACE_MIN_NEIGHBOURS = 5
"""Overlapping raw hits a face needs; fewer is mostly texture."""

HEAD_HEIGHT_IN_IPD = 3.6
SUBNASALE_BELOW_PUPILS = 0.65
STOMION_BELOW_PUPILS = 0.97
MENTON_BELOW_PUPILS = 1.65
ALAR_WIDTH_IN_IPD = 0.55
MOUTH_WIDTH_IN_IPD = 0.80

# Where the eyes of a frontal face sit inside a ``haarcascade_frontalface``
# box, as fractions of its side; used when the eye cascade finds no pair.
_EYE_X_IN_BOX = (0.26, 0.74)
_EYE_Y_IN_BOX = 0.37
_IPD_TO_FACE_BOX = (0.30, 0.70)
_MAX_ROLL_DEGREES = 25.0

Point = tuple[float, float]
Box = tuple[int, int, int, int]
"""A rectangle as (x, y, width, height) in pixels of the full-size photo."""


# -- cascades ------------------------------------------------------------------

_CASCADE_FILES = {
    "face": "haarcascade_frontalface_default.xml",
    "face_alt2": "haarcascade_frontalface_alt2.xml",
    "eye": "haarcascade_eye.xml",
    "smile": "haarcascade_smile.xml",
}
Cascades = dict[str, cv2.CascadeClassifier]


def _load_cascades() -> Cascades:
    cascades: Cascades = {}
    for kind, filename in _CASCADE_FILES.items():
        # cv2.data exists at run time but not in OpenCV's type stubs.
        path = cv2.data.haarcascades + filename  # type: ignore[attr-defined]
        classifier = cv2.CascadeClassifier(path)
        if classifier.empty():
            raise RuntimeError(f"OpenCV could not load its cascade {path}")
        cascades[kind] = classifier
    return cascades


class _CascadePool:
    """Loaded cascade sets, lent to one thread at a time.

    ``detectMultiScale`` keeps scratch buffers inside the classifier, so two
    threads must not share one. A set is borrowed for a whole detection and
    returned, so sets are loaded only when more detections run at once than
    ever before, not once per worker thread.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[Cascades] = []

    @contextmanager
    def borrow(self) -> Iterator[Cascades]:
        with self._lock:
            cascades = self._idle.pop() if self._idle else None
        if cascades is None:
            cascades = _load_cascades()
        try:
            yield cascades
        finally:
            with self._lock:
                self._idle.append(cascades)


_POOL = _CascadePool()


def _detect(
    cascade: cv2.CascadeClassifier,
    gray: GrayImage,
    min_neighbours: int,
    min_size: tuple[int, int],
    max_size: tuple[int, int] = (0, 0),
) -> list[tuple[Box, int]]:
    """Run one cascade; hits sorted so the order never depends on threads."""
    boxes, neighbours = cascade.detectMultiScale2(
        gray,
        scaleFactor=1.1,
        minNeighbors=min_neighbours,
        minSize=min_size,
        maxSize=max_size,
    )
    hits = [
        ((int(x), int(y), int(w), int(h)), int(n))
        for (x, y, w, h), n in zip(boxes, neighbours, strict=True)
    ]
    return sorted(hits, key=lambda hit: (-hit[1], -hit[0][2], hit[0][1], hit[0][0]))


# -- the face frame ------------------------------------------------------------


@dataclass(frozen=True)
class FaceFrame:
    """Coordinates anchored on the eyes: the origin lies between the pupils,
    ``u`` points from the photo's left eye to its right eye, ``v`` points down
    the face, and one unit is the interpupillary distance."""

    origin: Point
    ipd: float
    roll: float
    """Angle of the eye line in radians, positive when it runs down to the right."""

    @property
    def u(self) -> Point:
        return (math.cos(self.roll), math.sin(self.roll))

    @property
    def v(self) -> Point:
        return (-math.sin(self.roll), math.cos(self.roll))

    def to_image(self, across: float, down: float) -> Point:
        """The photo's pixel for a point given in IPD units of this frame."""
        (ux, uy), (vx, vy) = self.u, self.v
        return (
            self.origin[0] + self.ipd * (across * ux + down * vx),
            self.origin[1] + self.ipd * (across * uy + down * vy),
        )


@dataclass(frozen=True)
class FaceDetection:
    """The face a photo was judged to show, and how sure the detectors were."""

    box: Box
    neighbours: int
    confirmed_by_alt2: bool
    eyes: tuple[Point, ...]
    """Centres of the eyes the eye cascade found (0, 1 or 2), left to right."""
    eye_width: float | None
    """Mean width of the detected eye boxes, in pixels."""
    smile_centre: Point | None
    frame: FaceFrame
    confidence: float

    def as_details(self) -> dict[str, object]:
        """A JSON-ready summary for ``GenerationResult.details``."""
        return {
            "face_box": list(self.box),
            "face_neighbours": self.neighbours,
            "confirmed_by_second_cascade": self.confirmed_by_alt2,
            "eyes_detected": len(self.eyes),
            "smile_detected": self.smile_centre is not None,
            "interpupillary_px": round(self.frame.ipd, 2),
            "roll_degrees": round(math.degrees(self.frame.roll), 2),
            "face_confidence": round(self.confidence, 4),
        }


def detect_face(image: ColourImage) -> FaceDetection | None:
    """Find the best-evidenced frontal face, or ``None`` when there is none.

    A face counts only when the default cascade finds it with
    :data:`FACE_MIN_NEIGHBOURS` overlapping hits *and* either the stricter
    ``alt2`` cascade agrees or the eye cascade finds an eye inside it; a lone
    cascade hit on textured backgrounds is common and must not be treated.
    TODO(generator): profile views find no face; OpenCV's profile cascade
    could find them, but no nose or chin geometry is placed on a profile yet.
    """
    gray, scale = _detection_copy(image)
    side = min(gray.shape[:2])
    min_face = max(24, int(side * MIN_FACE_FRACTION))

    with _POOL.borrow() as cascades:
        face_hits = _detect(
            cascades["face"], gray, FACE_MIN_NEIGHBOURS, (min_face, min_face)
        )
        for box, neighbours in face_hits:  # best evidenced first
            confirmed = _confirmed_by_alt2(cascades, gray, box)
            eyes, eye_width = _find_eyes(cascades, gray, box)
            if confirmed or eyes:
                smile = _find_smile(cascades, gray, box, _frame_from(box, eyes))
                return _described_face(
                    scale, box, neighbours, confirmed, eyes, eye_width, smile
                )
    return None


def _described_face(
    scale: float,
    box: Box,
    neighbours: int,
    confirmed: bool,
    eyes: list[Point],
    eye_width: float | None,
    smile: Point | None,
) -> FaceDetection:
    """Build the detection from hits on the detection copy, at full size."""
    frame = _frame_from(box, eyes)
    confidence = _face_confidence(neighbours, confirmed, len(eyes), frame, box)
    return FaceDetection(
        box=(
            round(box[0] / scale),
            round(box[1] / scale),
            round(box[2] / scale),
            round(box[3] / scale),
        ),
        neighbours=neighbours,
        confirmed_by_alt2=confirmed,
        eyes=tuple((x / scale, y / scale) for x, y in eyes),
        eye_width=None if eye_width is None else eye_width / scale,
        smile_centre=None if smile is None else (smile[0] / scale, smile[1] / scale),
        frame=FaceFrame(
            origin=(frame.origin[0] / scale, frame.origin[1] / scale),
            ipd=frame.ipd / scale,
            roll=frame.roll,
        ),
        confidence=confidence,
    )


def _detection_copy(image: ColourImage) -> tuple[GrayImage, float]:
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    scale = min(1.0, DETECTION_MAX_SIDE / max(gray.shape[:2]))
    if scale < 1.0:
        gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return np.asarray(cv2.equalizeHist(gray), dtype=np.uint8), scale


def _confirmed_by_alt2(cascades: Cascades, gray: GrayImage, box: Box) -> bool:
    x, y, w, h = box
    x0, y0 = max(0, x - w // 2), max(0, y - h // 2)
    x1, y1 = min(gray.shape[1], x + w + w // 2), min(gray.shape[0], y + h + h // 2)
    min_side = int(w * 0.6)
    hits = _detect(cascades["face_alt2"], gray[y0:y1, x0:x1], 3, (min_side, min_side))
    return any(
        _overlap((hx + x0, hy + y0, hw, hh), box) >= 0.4 for (hx, hy, hw, hh), _ in hits
    )


def _overlap(a: Box, b: Box) -> float:
    """Intersection over union of two boxes."""
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / float(a[2] * a[3] + b[2] * b[3] - inter)


def _find_eyes(
    cascades: Cascades, gray: GrayImage, box: Box
) -> tuple[list[Point], float | None]:
    """The best eye on each half of the face's upper part, left to right."""
    x, y, w, h = box
    top, bottom = y + int(0.15 * h), y + int(0.60 * h)
    size = (max(8, int(0.12 * w)), max(8, int(0.12 * w)))
    largest = (int(0.40 * w), int(0.40 * w))
    hits = _detect(cascades["eye"], gray[top:bottom, x : x + w], 3, size, largest)

    centre_x = x + w / 2.0
    best: dict[int, tuple[Point, int]] = {}
    for (ex, ey, ew, eh), _ in hits:
        point = (x + ex + ew / 2.0, top + ey + eh / 2.0)
        side = 0 if point[0] < centre_x else 1
        if side not in best:  # hits arrive best first
            best[side] = (point, ew)
    if len(best) == 2 and not _plausible_pair(best[0][0], best[1][0], w):
        best = {side: best[side] for side in (min(best),)}
    if not best:
        return [], None
    ordered = [best[side] for side in sorted(best)]
    return [point for point, _ in ordered], float(np.mean([ew for _, ew in ordered]))


def _plausible_pair(left: Point, right: Point, face_width: int) -> bool:
    ipd = math.dist(left, right)
    roll = math.degrees(math.atan2(right[1] - left[1], right[0] - left[0]))
    low, high = _IPD_TO_FACE_BOX
    return low <= ipd / face_width <= high and abs(roll) <= _MAX_ROLL_DEGREES


def _frame_from(box: Box, eyes: list[Point]) -> FaceFrame:
    """The eye frame: from both eyes, one eye mirrored, or the box alone."""
    x, y, w, h = box
    if len(eyes) == 2:
        (lx, ly), (rx, ry) = eyes
        return FaceFrame(
            origin=((lx + rx) / 2, (ly + ry) / 2),
            ipd=math.dist(eyes[0], eyes[1]),
            roll=math.atan2(ry - ly, rx - lx),
        )
    if len(eyes) == 1:
        ex, ey = eyes[0]
        ipd = 2 * abs(ex - (x + w / 2.0))
        if _IPD_TO_FACE_BOX[0] <= ipd / w <= _IPD_TO_FACE_BOX[1]:
            return FaceFrame(origin=(x + w / 2.0, ey), ipd=ipd, roll=0.0)
    ipd = (_EYE_X_IN_BOX[1] - _EYE_X_IN_BOX[0]) * w
    return FaceFrame(origin=(x + w / 2.0, y + _EYE_Y_IN_BOX * h), ipd=ipd, roll=0.0)


def _find_smile(
    cascades: Cascades, gray: GrayImage, box: Box, frame: FaceFrame
) -> Point | None:
    """The mouth's centre from the smile cascade, if it lies where a mouth can.

    The smile cascade fires on many dark horizontal bands, so it needs many
    neighbours and its hit must sit near the anthropometric mouth line.
    """
    x, y, w, h = box
    top = y + int(0.55 * h)
    bottom = min(gray.shape[0], y + int(1.05 * h))
    left, right = x + int(0.1 * w), x + int(0.9 * w)
    min_size = (max(12, int(0.25 * w)), max(6, int(0.1 * w)))
    hits = _detect(cascades["smile"], gray[top:bottom, left:right], 20, min_size)
    for (sx, sy, sw, sh), _ in hits:
        centre = (left + sx + sw / 2.0, top + sy + sh / 2.0)
        across, down = to_frame(frame, centre)
        if abs(across) <= 0.3 and 0.7 <= down <= 1.3:
            return centre
    return None


def to_frame(frame: FaceFrame, point: Point) -> Point:
    """A pixel of the photo in IPD units of the face frame."""
    dx, dy = point[0] - frame.origin[0], point[1] - frame.origin[1]
    (ux, uy), (vx, vy) = frame.u, frame.v
    return ((dx * ux + dy * uy) / frame.ipd, (dx * vx + dy * vy) / frame.ipd)


def _face_confidence(
    neighbours: int, confirmed: bool, eyes_found: int, frame: FaceFrame, box: Box
) -> float:
    """How sure the detectors are, from independent pieces of evidence.

    Overlapping cascade hits saturate (a dozen or more is a clear face); a
    second cascade's agreement and each eye found add certainty; an eye line
    out of proportion with the box lowers it.
    """
    from_hits = 1.0 - math.exp(-neighbours / 12.0)
    agreement = 1.0 if confirmed else 0.85
    from_eyes = (0.7, 0.85, 1.0)[eyes_found]
    ratio = frame.ipd / box[2]
    geometry = 1.0 if 0.38 <= ratio <= 0.62 else 0.8
    return float(min(1.0, max(0.0, from_hits * agreement * from_eyes * geometry)))


# -- measurements on a normalised face chip -------------------------------------

CHIP_SCALE = 64
"""Pixels per IPD in the upright face chip that measurements run on."""
_CHIP_LEFT, _CHIP_TOP = 1.5, 1.0
_CHIP_SIZE = (int(3.0 * CHIP_SCALE), int(3.5 * CHIP_SCALE))


def face_chip(image: ColourImage, frame: FaceFrame) -> ColourImage:
    """The face rotated upright and scaled so the IPD is :data:`CHIP_SCALE`.

    Chip pixel (c, r) shows frame point ``(c / S - 1.5, r / S - 1.0)``.
    """
    k = CHIP_SCALE / frame.ipd
    (ux, uy), (vx, vy) = frame.u, frame.v
    ox, oy = frame.origin
    matrix = np.array(
        [
            [k * ux, k * uy, -k * (ox * ux + oy * uy) + _CHIP_LEFT * CHIP_SCALE],
            [k * vx, k * vy, -k * (ox * vx + oy * vy) + _CHIP_TOP * CHIP_SCALE],
        ],
        dtype=np.float64,
    )
    chip = cv2.warpAffine(
        image,
        matrix,
        _CHIP_SIZE,
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return np.asarray(chip, dtype=np.uint8)


def _chip_col(across: float) -> int:
    return round((across + _CHIP_LEFT) * CHIP_SCALE)


def _chip_row(down: float) -> int:
    return round((down + _CHIP_TOP) * CHIP_SCALE)


def mouth_width(chip: ColourImage, stomion_down: float) -> float | None:
    """The mouth's width in IPD units from the lips' redness, or ``None``.

    Lips carry more red (YCrCb ``Cr``) than the surrounding skin; Otsu's
    threshold splits the two, and the widest run of lip columns crossing the
    midline is the mouth.
    """
    rows = slice(_chip_row(stomion_down - 0.18), _chip_row(stomion_down + 0.18))
    cols = slice(_chip_col(-0.75), _chip_col(0.75))
    red = cv2.cvtColor(chip[rows, cols], cv2.COLOR_BGR2YCrCb)[:, :, 1]
    _, lips = cv2.threshold(red, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    columns = lips.mean(axis=0) >= 0.15

    middle = columns.size // 2
    if not columns[middle - 4 : middle + 5].any():
        return None
    left = middle
    while left > 0 and columns[left - 1 : left + 1].any():
        left -= 1
    right = middle
    while right < columns.size - 1 and columns[right : right + 2].any():
        right += 1
    width = (right - left) / CHIP_SCALE
    return width if 0.5 <= width <= 1.3 else None


def texture_roughness(image: ColourImage) -> float:
    """Mean Laplacian magnitude of the area at a fixed 64x64 size, in [0, 1]."""
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    small = cv2.resize(gray, (64, 64), interpolation=cv2.INTER_AREA)
    laplacian = cv2.Laplacian(small.astype(np.float32), cv2.CV_32F)
    return float(min(1.0, np.abs(laplacian).mean() / 255.0))
