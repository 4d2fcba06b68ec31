"""Per-image percentile normalisation, recorded in the model so prediction repeats it:
the :class:`Normalizer` (the one place an image is normalised, for training and
prediction, small and huge images).

Pixels that are not finite (NaN, ±inf: a dead detector row, a failed stitch, a division
by zero upstream) are left out of the percentiles and set to 0 after normalisation (the
image's low percentile, i.e. background), so one bad pixel never turns the whole
probability map into NaN. :func:`nonfinite_pixels` counts them, so callers can say so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

#: How images are normalised unless a model file says otherwise: the low and high
#: percentiles (per image and channel) are mapped to 0 and 1. The one place these numbers
#: are written; everything else reads them from here or from the model's metadata.
DEFAULT_NORMALIZATION: dict[str, Any] = {"method": "percentile", "low": 1.0, "high": 99.8}


#: Above this many pixels, percentiles are taken on a regular subsample (lazy inputs).
_MAX_SAMPLE = 4_000_000


@dataclass(frozen=True)
class Normalizer:
    """The one way napari-unet maps an image's intensities to the network's 0–1 range,
    built from a model's ``normalization`` record (:meth:`of`) and used alike by
    training and prediction, in memory and block by block.

    Per channel, the ``low`` and ``high`` percentiles of the image go to 0 and 1. They
    are taken on :meth:`sample`: the image read every ``step`` pixels along y and x
    (``step`` 1 up to :data:`_MAX_SAMPLE` pixels), so a small image uses all its pixels
    and a huge (lazy) one a regular subsample of all of it, the same pixels whichever
    path reads it.
    """

    low: float = DEFAULT_NORMALIZATION["low"]
    high: float = DEFAULT_NORMALIZATION["high"]

    @classmethod
    def of(cls, method: dict[str, Any] | None = None) -> Normalizer:
        """The normaliser of a normalisation record (a model's ``normalization``
        metadata), with :data:`DEFAULT_NORMALIZATION`'s percentiles for what it lacks."""
        method = method or {}
        return cls(
            float(method.get("low", DEFAULT_NORMALIZATION["low"])),
            float(method.get("high", DEFAULT_NORMALIZATION["high"])),
        )

    @staticmethod
    def step(height: int, width: int) -> int:
        """Every how many pixels :meth:`sample` reads an image of this size."""
        return max(1, int(np.ceil(np.sqrt(height * width / _MAX_SAMPLE))))

    def sample(self, image) -> np.ndarray:
        """The pixels the percentiles of a channels-last image ``(Y, X, C)`` are taken
        on (a strided view; a lazy image is read there only)."""
        s = self.step(image.shape[0], image.shape[1])
        return np.asarray(image[::s, ::s])

    def intensity(self, image) -> tuple[np.ndarray, np.ndarray]:
        """``(low, high)`` per channel of a channels-last image ``(Y, X, C)``."""
        return self.of_sample(self.sample(image))

    def of_sample(self, sample) -> tuple[np.ndarray, np.ndarray]:
        """``(low, high)`` per channel of the pixels ``sample`` (``(..., C)``: a
        :meth:`sample`, or the pixels of several regions), all of them."""
        flat = np.asarray(sample).astype(np.float32, copy=False)
        flat = flat.reshape(-1, flat.shape[-1])
        if np.isfinite(flat).all():
            lo, hi = np.percentile(flat, [self.low, self.high], axis=0)
        else:
            lo, hi = _finite_percentiles(flat, self.low, self.high)
        return lo.astype(np.float32), hi.astype(np.float32)

    @staticmethod
    def apply(image, intensity: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """``image`` with ``intensity``'s ``(low, high)`` mapped to 0 and 1."""
        return normalize(image, *intensity)

    def __call__(self, image) -> np.ndarray:
        """A whole channels-last image normalised by its own :meth:`intensity`."""
        return normalize(image, *self.intensity(image))


def percentiles(
    image,
    low: float = DEFAULT_NORMALIZATION["low"],
    high: float = DEFAULT_NORMALIZATION["high"],
) -> tuple[np.ndarray, np.ndarray]:
    """Low and high percentiles per channel of a channels-last image ``(Y, X, C)``
    (:meth:`Normalizer.intensity`)."""
    return Normalizer(low, high).intensity(image)


def _finite_percentiles(flat: np.ndarray, low: float, high: float):
    """Percentiles per channel over the finite values only (0 and 1 for a channel
    with none)."""
    lo = np.zeros(flat.shape[-1], np.float32)
    hi = np.ones(flat.shape[-1], np.float32)
    for c in range(flat.shape[-1]):
        v = flat[:, c]
        v = v[np.isfinite(v)]
        if v.size:
            lo[c], hi[c] = np.percentile(v, [low, high])
    return lo, hi


def nonfinite_pixels(image) -> int:
    """How many values of ``image`` are NaN or infinite (0 for integer images)."""
    a = np.asarray(image)
    if a.dtype.kind not in "fc":
        return 0
    return int(a.size - np.count_nonzero(np.isfinite(a)))


def nonfinite_message(name: str, count: int) -> str:
    """The one wording, for every front end, of ``count`` NaN or infinite pixels in the
    image ``name`` (they are read as background)."""
    many = count != 1
    return (
        f"{name}: {count:,} pixel{'s are' if many else ' is'} NaN or infinite; "
        f"{'they were' if many else 'it was'} read as background"
    )


def normalize(image, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Map ``lo`` → 0 and ``hi`` → 1 per channel (float32, not clipped)."""
    x = np.asarray(image, dtype=np.float32)
    scale = np.where(hi - lo > 1e-12, hi - lo, 1.0).astype(np.float32)
    out = (x - lo) / scale
    if not np.isfinite(out).all():  # also catches overflow of huge finite values
        np.nan_to_num(out, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    return out


def normalize_image(image, method: dict[str, Any] | None = None) -> np.ndarray:
    """Percentile-normalise a whole channels-last image in memory (the
    :class:`Normalizer` of ``method``)."""
    return Normalizer.of(method)(image)
