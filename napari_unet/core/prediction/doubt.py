"""When the model does not know: a prediction judged by its own cheap figures.

A model shown an image unlike anything it learned does not fail: it returns hundreds of
objects, and nothing says they are wrong. The figures a prediction already has tell
it, though:

- how unsure the network is (the share of the object-like pixels in the uncertain band
  of probability, and the mean probability of the objects kept);
- whether the object size was found (:func:`~napari_unet.core.prediction.object_size.estimate_scale`);
- how many objects there are for the room they would take at the expected size;
- whether the image's contrast is the other way round (objects darker than a bright
  background, for a model that learned bright objects on a dark one).

The figures are sums (:class:`Tally`) that add up over the planes of a stack and the
blocks of a large image, so both prediction paths judge alike: :func:`judge` turns the
figures (:class:`Signs`) into a :class:`Doubt` (a reason and one plain line that says
what to do), or ``None`` when the result looks like one the model is sure of.
The thresholds were measured on the sample, the cells3d planes, the Cell Tracking
Challenge images and synthetic images of other kinds (``benchmarks/doubt.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Bins of the probability and intensity histograms (over 0–1).
BINS = 50
#: A pixel is object-like above this foreground probability, and sure below
#: :data:`SURE` … above 1 − the first (the uncertain band is 0.3–0.7).
LIKELY, SURE = 0.3, 0.7
#: Pixels above this many are summed over a regular subsample for the intensities.
INTENSITY_PIXELS = 1 << 20

# What a doubtful prediction looks like, with the bundled model (benchmarks/doubt.py;
# figures in benchmarks/RESULTS.md, "Says when it does not know"): on the images it
# handles the median brightness is 0.01–0.43, the crowding 0.07–0.93, the uncertain
# share 0.06–0.32 and the confidence 0.77–0.96; on inverted, brightfield-, phase- and
# H&E-like images the median is 0.63–0.83 and the crowding 1.2–4.2.
#: An image whose median pixel is this bright (normalised, 0–1) is mostly light: dark
#: objects on a light background, when the model's objects are the brighter parts.
BRIGHT_IMAGE = 0.55
#: Objects that would cover this many times the image at the expected size are too many
#: (1 is already more than fit).
MAX_CROWDING = 1.5
#: The share of object-like pixels in the uncertain band above which the network is unsure.
MAX_UNCERTAIN = 0.5
#: The mean probability of the objects kept below which they are not confident.
MIN_CONFIDENCE = 0.65

#: A few words per reason (a notification), and the line that says what to do (the
#: front ends name where a diameter is given, ``{where}``).
HEADLINES = {
    "inverted": "dark objects on light, likely wrong",
    "size": "object size not found, likely wrong",
    "read": "size read from the image, check it",
    "edge": "object size out of range, likely wrong",
    "unsure": "the model is unsure, likely wrong",
    "crowded": "too many objects, likely false",
}
REASONS = {
    "inverted": "the objects look darker than the background, unlike the bright objects this "
    "model learned, so the result is likely wrong; do not invert the image: correct a few "
    "objects and Train, so that it learns your images",
    "size": "the object size could not be found in this image, so the result is likely "
    "wrong; give the typical object diameter in pixels{where}, or correct a few objects "
    "and Train",
    "read": "the model was unsure of the objects at every scale it looked at, so their size "
    "(about {diameter:.0f} px) was read from the look of the whole image instead; if the "
    "outlines are too small or too large, give the typical object diameter in pixels{where}, "
    "or correct a few objects and Train",
    "edge": "the objects look about {diameter:.0f} px wide, too small or too large for this "
    "model to see well, so the result is likely wrong; correct a few objects and Train, "
    "so that it learns them",
    "unsure": "the model is unsure of most of what it found (objects {confidence:.0%} sure "
    "on average), so the result is likely wrong; correct a few objects and Train, or give "
    "the object diameter{where} if the size is off",
    "crowded": "the model found far more objects than fit at their size ({objects} objects "
    "about {diameter:.0f} px wide), so most are likely false; give the object "
    "diameter{where}, or correct a few objects and Train",
}


@dataclass
class Tally:
    """Sums of one prediction's figures (a plane, a stack, a block of a large image);
    ``a + b`` is the tally of both."""

    #: Histogram of the foreground probability over every pixel (:data:`BINS` bins).
    probability: np.ndarray
    #: Objects, the sum of their mean probabilities, and the pixels they cover.
    objects: int = 0
    confidence: float = 0.0
    object_pixels: int = 0
    pixels: int = 0
    #: Histogram of the normalised intensity of the background (probability below
    #: :data:`LIKELY`, channels averaged, clipped to 0–1), and the sum and count of the
    #: normalised intensity of the object pixels (a subsample of a large image).
    background: np.ndarray | None = None
    object_intensity: float = 0.0
    object_samples: int = 0
    #: Histogram of the normalised intensity of every pixel (the same subsample).
    brightness: np.ndarray | None = None
    #: Of the objects, those cut by the image's border, and the pixels they cover: only
    #: their part inside the image takes room in it (see :attr:`Signs.crowding`).
    edge_objects: int = 0
    edge_pixels: int = 0

    @classmethod
    def empty(cls) -> Tally:
        zeros = np.zeros(BINS, np.int64)
        return cls(zeros.copy(), background=zeros.copy(), brightness=zeros.copy())

    @classmethod
    def of(
        cls,
        probability: np.ndarray,
        labels: np.ndarray,
        image=None,
        intensity=None,
        edges: tuple[bool, bool, bool, bool] = (True, True, True, True),
    ) -> Tally:
        """The tally of a foreground ``probability`` map, its instance ``labels`` (ids
        ``1..N`` at most, 0 = background; ids missing are not counted) and, when given,
        the image (same spatial shape, channels last or none) normalised by
        ``intensity`` (``(low, high)``, as the network saw it; ``None``: as it is).
        ``edges``: which of the plane's sides (top, bottom, left, right) are the image's
        border (a block of a large image: those it shares with the image)."""
        p = np.asarray(probability, np.float32)
        lab = np.asarray(labels)
        t = cls.empty()
        t.probability += _histogram(p)
        t.pixels = int(p.size)
        if lab.size and lab.max(initial=0) > 0:
            flat = lab.ravel().astype(np.intp)
            count = np.bincount(flat)
            sums = np.bincount(flat, weights=p.ravel())
            present = count[1:] > 0
            t.objects = int(present.sum())
            t.confidence = float((sums[1:][present] / count[1:][present]).sum())
            t.object_pixels = int(count[1:].sum())
            cut = np.zeros(count.size, bool)
            sides = (lab[0], lab[-1], lab[:, 0], lab[:, -1])
            for side, on_border in zip(sides, edges):
                if on_border:
                    cut[side.ravel().astype(np.intp)] = True
            cut = cut[1:] & present
            t.edge_objects = int(cut.sum())
            t.edge_pixels = int(count[1:][cut].sum())
        if image is not None:
            step = max(1, int(np.ceil(np.sqrt(p.size / INTENSITY_PIXELS))))
            index = (slice(None, None, step), slice(None, None, step))
            a = np.asarray(image[index], np.float32)
            if intensity is not None:
                from ..normalize import normalize

                a = normalize(a if a.ndim == p.ndim + 1 else a[..., None], *intensity)
            if a.ndim == p.ndim + 1:
                a = a.mean(axis=-1)
            ps, ls = p[index], lab[index]
            ok = np.isfinite(a)
            t.background += _histogram(np.clip(a[ok & (ps < LIKELY)], 0.0, 1.0))
            t.brightness += _histogram(np.clip(a[ok], 0.0, 1.0))
            inside = ok & (ls > 0)
            t.object_intensity = float(a[inside].sum())
            t.object_samples = int(inside.sum())
        return t

    def __add__(self, other: Tally) -> Tally:
        return Tally(
            self.probability + other.probability,
            self.objects + other.objects,
            self.confidence + other.confidence,
            self.object_pixels + other.object_pixels,
            self.pixels + other.pixels,
            self.background + other.background,
            self.object_intensity + other.object_intensity,
            self.object_samples + other.object_samples,
            self.brightness + other.brightness,
            self.edge_objects + other.edge_objects,
            self.edge_pixels + other.edge_pixels,
        )

    def to_array(self) -> np.ndarray:
        """The tally as one float64 vector (what a block task saves); :meth:`from_array`."""
        head = [self.objects, self.confidence, self.object_pixels, self.pixels]
        head += [self.object_intensity, self.object_samples]
        hists = [self.probability, self.background, self.brightness]
        tail = [self.edge_objects, self.edge_pixels]
        return np.concatenate([head, *hists, tail]).astype(np.float64)

    @classmethod
    def from_array(cls, a) -> Tally:
        a = np.asarray(a, np.float64)
        n = 6
        hist = a[n : n + BINS].astype(np.int64)
        return cls(
            hist,
            int(a[0]),
            float(a[1]),
            int(a[2]),
            int(a[3]),
            a[n + BINS : n + 2 * BINS].astype(np.int64),
            float(a[4]),
            int(a[5]),
            a[n + 2 * BINS : n + 3 * BINS].astype(np.int64),
            int(a[n + 3 * BINS]),
            int(a[n + 3 * BINS + 1]),
        )


def _histogram(values: np.ndarray) -> np.ndarray:
    return np.histogram(values, bins=BINS, range=(0.0, 1.0))[0].astype(np.int64)


def _median(hist: np.ndarray | None) -> float | None:
    """The median of a histogram over 0–1 (the middle of its bin), ``None`` if empty."""
    if hist is None or hist.sum() == 0:
        return None
    cum = np.cumsum(hist)
    return (int(np.searchsorted(cum, cum[-1] / 2.0)) + 0.5) / BINS


@dataclass(frozen=True)
class Signs:
    """The figures a prediction is judged by (:meth:`of` a :class:`Tally`)."""

    #: Share of the object-like pixels (probability above 0.3) that lie below 0.7.
    uncertain: float
    #: Mean over the objects kept of their mean probability (1 with no object).
    confidence: float
    objects: int
    #: Share of the image's pixels in objects.
    coverage: float
    #: How many times the objects would cover the image at the expected size (the
    #: objects' count × the area of a disc of ``diameter``, over the image's area; the
    #: objects cut by the image's border count by their pixels inside, together at most a
    #: disc each: an image that holds one or two large cells also holds parts of others).
    crowding: float
    #: Object width (px, in the image) the prediction expected: measured, given, or
    #: the model's own; ``None`` when unknown.
    diameter: float | None
    #: How the object size was found: ``"measured"``, ``"given"``, ``"as is"`` (the
    #: image taken as it is), ``"read"`` (from the image's look), ``"unclear"``,
    #: ``"edge"`` or ``"none"`` (see
    #: :func:`~napari_unet.core.prediction.object_size.estimate_scale`).
    size: str
    #: Median normalised intensity of the background, and the mean intensity of the
    #: objects minus it (``None`` without the image, or with no background or object).
    background: float | None
    contrast: float | None
    #: Median normalised intensity of the whole image (``None`` without it).
    median: float | None = None

    @classmethod
    def of(cls, tally: Tally, size: str, diameter: float | None) -> Signs:
        hist = tally.probability
        likely = int(hist[int(LIKELY * BINS) :].sum())
        unsure = int(hist[int(LIKELY * BINS) : int(SURE * BINS)].sum())
        n = tally.objects
        area = np.pi / 4.0 * float(diameter) ** 2 if diameter else 0.0
        contrast = None
        background = _median(tally.background)
        if background is not None and tally.object_samples:
            contrast = tally.object_intensity / tally.object_samples - background
        return cls(
            uncertain=unsure / likely if likely else 0.0,
            confidence=tally.confidence / n if n else 1.0,
            objects=n,
            coverage=tally.object_pixels / max(tally.pixels, 1),
            crowding=(
                (n - tally.edge_objects) * area + min(tally.edge_objects * area, tally.edge_pixels)
            )
            / max(tally.pixels, 1),
            diameter=None if diameter is None else float(diameter),
            size=size,
            background=background,
            contrast=contrast,
            median=_median(tally.brightness),
        )

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class Doubt:
    """Why a prediction is likely wrong, and what to do: ``reason`` (a key of
    :data:`REASONS`), ``message`` (one plain line), and the figures that said so."""

    reason: str
    message: str
    signs: Signs

    @property
    def headline(self) -> str:
        """A few words: what is wrong (a notification's length)."""
        return HEADLINES[self.reason]

    def say(self, where: str = "") -> str:
        """The line, ``where`` naming the place to give a diameter (``" (--diameter
        PX)"``)."""
        return self.message.replace("{where}", where)

    def __str__(self) -> str:
        return self.say()


def width_words(diameter: float, doubt: Doubt | None) -> str:
    """The objects' width as a result states it: "objects ~15 px wide", or, where the
    size was not found, "size unclear, objects read as ~15 px", and where it was read
    from the look of the image, "size read from the image, objects ~15 px" (the line
    that follows says what to do)."""
    if doubt is not None and doubt.reason == "size":
        return f"size unclear, objects read as ~{diameter:.0f} px"
    if doubt is not None and doubt.reason == "read":
        return f"size read from the image, objects ~{diameter:.0f} px"
    return f"objects ~{diameter:.0f} px wide"


def judge(signs: Signs) -> Doubt | None:
    """A :class:`Doubt` when the figures say the result is likely wrong, else ``None``.

    One reason is given, the one a person can act on best: an inverted contrast first
    (a diameter would not help), then a size not found, or read from the look of the
    image rather than its objects (a caveat: check it), then an overcrowded or unsure
    result. A prediction with no object at all is not doubted (it says so itself).

    Inverted: most of the image is light (:data:`BRIGHT_IMAGE`) and what the model
    calls objects is brighter than the rest — a model that looks for bright objects
    found the light background or the halos. (A model that learned dark objects finds
    the dark parts of such an image, and is not doubted for it.)"""
    if signs.objects == 0:
        return None
    reason = None
    if (
        signs.median is not None
        and signs.median > BRIGHT_IMAGE
        and signs.contrast is not None
        and signs.contrast > 0
    ):
        reason = "inverted"
    elif signs.size == "edge" and signs.diameter:
        reason = "edge"  # the size was found: beyond what a diameter can bring the model to
    elif signs.size in ("unclear", "edge", "none"):
        reason = "size"
    elif signs.size == "read":
        reason = "read"  # a caveat: the size came from the look of the image, not its objects
    elif signs.crowding > MAX_CROWDING:
        reason = "crowded"
    elif signs.uncertain > MAX_UNCERTAIN or signs.confidence < MIN_CONFIDENCE:
        reason = "unsure"
    if reason is None:
        return None
    text = REASONS[reason].format(
        confidence=signs.confidence,
        objects=signs.objects,
        diameter=signs.diameter or 0.0,
        where="{where}",
    )
    return Doubt(reason, text, signs)


def size_found(found: list[str], fixed: bool, given: bool) -> str:
    """How the object size of a prediction was found, from its planes' (``found``:
    each plane's ``found["size"]`` of the estimate): ``fixed`` when a diameter was
    given (``given``) or the image was taken as it is. A stack is measured when one
    of its planes was (planes with no object do not say the size)."""
    if fixed:
        return "given" if given else "as is"
    for status in ("measured", "read", "edge", "unclear"):
        if status in found:
            return status
    return "none" if found else "as is"
