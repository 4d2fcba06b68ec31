"""Per-image percentile normalisation, recorded in the model so prediction repeats it."""

from __future__ import annotations

from typing import Any

import numpy as np

DEFAULT_NORMALIZATION: dict[str, Any] = {"method": "percentile", "low": 1.0, "high": 99.8}

#: Above this many pixels, percentiles are taken on a regular subsample (lazy inputs).
_MAX_SAMPLE = 4_000_000


def _subsample(a, max_pixels: int = _MAX_SAMPLE) -> np.ndarray:
    """A strided view of a (Y, X, C) array with at most ``max_pixels`` pixels per channel."""
    h, w = a.shape[0], a.shape[1]
    step = max(1, int(np.ceil(np.sqrt(h * w / max_pixels))))
    return np.asarray(a[::step, ::step])


def percentiles(image, low: float = 1.0, high: float = 99.8) -> tuple[np.ndarray, np.ndarray]:
    """Low and high percentiles per channel of a channels-last image ``(Y, X, C)``.

    Works on a subsample for very large (possibly lazy) arrays.
    """
    s = _subsample(image).astype(np.float32, copy=False)
    flat = s.reshape(-1, s.shape[-1])
    lo, hi = np.percentile(flat, [low, high], axis=0)
    return lo.astype(np.float32), hi.astype(np.float32)


def normalize(image, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Map ``lo`` → 0 and ``hi`` → 1 per channel (float32, not clipped)."""
    x = np.asarray(image, dtype=np.float32)
    scale = np.where(hi - lo > 1e-12, hi - lo, 1.0).astype(np.float32)
    return (x - lo) / scale


def normalize_image(image, method: dict[str, Any] | None = None) -> np.ndarray:
    """Percentile-normalise a whole channels-last image in memory."""
    method = method or DEFAULT_NORMALIZATION
    lo, hi = percentiles(image, method.get("low", 1.0), method.get("high", 99.8))
    return normalize(image, lo, hi)
