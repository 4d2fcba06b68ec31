"""Per-image percentile normalisation, recorded in the model so prediction repeats it.

Pixels that are not finite (NaN, ±inf: a dead detector row, a failed stitch, a division
by zero upstream) are left out of the percentiles and set to 0 after normalisation (the
image's low percentile, i.e. background), so one bad pixel never turns the whole
probability map into NaN. :func:`nonfinite_pixels` counts them, so callers can say so.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: How images are normalised unless a model file says otherwise: the low and high
#: percentiles (per image and channel) are mapped to 0 and 1. The one place these numbers
#: are written; everything else reads them from here or from the model's metadata.
DEFAULT_NORMALIZATION: dict[str, Any] = {"method": "percentile", "low": 1.0, "high": 99.8}


def percentile_range(method: dict[str, Any] | None = None) -> tuple[float, float]:
    """``(low, high)`` percentiles of a normalisation record (a model's
    ``normalization`` metadata), with :data:`DEFAULT_NORMALIZATION`'s for what it lacks."""
    method = method or {}
    return (
        float(method.get("low", DEFAULT_NORMALIZATION["low"])),
        float(method.get("high", DEFAULT_NORMALIZATION["high"])),
    )


#: Above this many pixels, percentiles are taken on a regular subsample (lazy inputs).
_MAX_SAMPLE = 4_000_000


def _subsample(a, max_pixels: int = _MAX_SAMPLE) -> np.ndarray:
    """A strided view of a (Y, X, C) array with at most ``max_pixels`` pixels per channel."""
    h, w = a.shape[0], a.shape[1]
    step = max(1, int(np.ceil(np.sqrt(h * w / max_pixels))))
    return np.asarray(a[::step, ::step])


def percentiles(
    image,
    low: float = DEFAULT_NORMALIZATION["low"],
    high: float = DEFAULT_NORMALIZATION["high"],
) -> tuple[np.ndarray, np.ndarray]:
    """Low and high percentiles per channel of a channels-last image ``(Y, X, C)``.

    Works on a subsample for very large (possibly lazy) arrays.
    """
    s = _subsample(image).astype(np.float32, copy=False)
    flat = s.reshape(-1, s.shape[-1])
    if np.isfinite(flat).all():
        lo, hi = np.percentile(flat, [low, high], axis=0)
    else:
        lo, hi = _finite_percentiles(flat, low, high)
    return lo.astype(np.float32), hi.astype(np.float32)


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
    """Percentile-normalise a whole channels-last image in memory."""
    lo, hi = percentiles(image, *percentile_range(method))
    return normalize(image, lo, hi)
