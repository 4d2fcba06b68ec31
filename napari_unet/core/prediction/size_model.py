"""An object width read from what the network's encoder sees in an image.

The size estimate (:func:`~napari_unet.core.prediction.object_size.estimate_scale`)
measures the objects the network segments at a few scales. Where it is sure of none of
them (large textured cells: the network cuts each into pieces of its own size at the
fine looks and merges them at the coarse ones), the widths it measures do not say which
look to trust. What the encoder sees does: a ridge regression on its features (the
mean and spread of each channel of its deepest levels over a centre crop, at three
scales) reads the width of the objects from the image's look, as a person reads the
size of cells at a glance. It is fitted once on the model's own synthetic training
images (``scripts/fit_size_regression.py``) and kept in the model's metadata
(:attr:`~napari_unet.core.network.metadata.ModelMetadata.size_regression`); training
changes the features, so a fine-tuned model drops it (it has the user's own scale).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: The scales the encoder looks at the image at (each a centre crop, as the size
#: estimate's looks are).
FEATURE_SCALES = (0.25, 0.5, 1.0)
#: The encoder levels whose channels are summarised: the bottleneck and the deepest level
#: of the contracting path
#: (:func:`~napari_unet.core.network.architecture.encoder_layers`).
FEATURE_LEVELS = ("bottleneck", "deepest")
#: A crop is at least this many pixels per side once rescaled (mirrored up to it).
MIN_SIDE = 32


def encoder_features(net, plane: np.ndarray, intensity) -> np.ndarray:
    """The features of a channels-last ``plane`` (normalised by ``intensity``,
    ``(low, high)``): for each of :data:`FEATURE_SCALES` and :data:`FEATURE_LEVELS`, the
    mean and the standard deviation of every channel over a centre crop."""
    from ..normalize import normalize
    from .object_size import look_crop, rescale_image

    encode = net.encoder_function()
    lo, hi = intensity
    m = int(net.config.size_multiple)
    out = []
    for factor in FEATURE_SCALES:
        img = normalize(
            rescale_image(plane[look_crop(plane.shape, factor)], factor, quick=True), lo, hi
        )
        if img.ndim == 2:
            img = img[..., None]
        hh, ww = img.shape[:2]
        th, tw = max(hh, MIN_SIDE), max(ww, MIN_SIDE)
        th, tw = th + (-th) % m, tw + (-tw) % m
        img = np.pad(img, ((0, th - hh), (0, tw - ww), (0, 0)), mode="symmetric")
        for level in encode(img[None]):
            out += [level[0].mean((0, 1)), level[0].std((0, 1))]
    return np.concatenate(out).astype(np.float64)


@dataclass
class SizeRegression:
    """``log(width) = bias + weights · (features − mean) / std``: the objects' width (px,
    in the image's own pixels, as their masks measure it) from :func:`encoder_features`."""

    mean: np.ndarray
    std: np.ndarray
    weights: np.ndarray
    bias: float

    def diameter(self, features: np.ndarray) -> float | None:
        """The width the features read, or ``None`` where they do not fit the
        regression (another architecture) or give no finite width."""
        f = np.asarray(features, np.float64)
        if f.shape != self.mean.shape:
            return None
        v = self.bias + float(((f - self.mean) / self.std) @ self.weights)
        return math.exp(v) if math.isfinite(v) else None

    def to_dict(self) -> dict:
        return {
            "levels": list(FEATURE_LEVELS),
            "scales": list(FEATURE_SCALES),
            "mean": [round(float(v), 6) for v in self.mean],
            "std": [round(float(v), 6) for v in self.std],
            "weights": [round(float(v), 7) for v in self.weights],
            "bias": round(float(self.bias), 6),
        }

    @classmethod
    def from_dict(cls, d) -> SizeRegression | None:
        """The regression a model's metadata keeps, or ``None`` (absent, damaged, or
        made for other levels or scales)."""
        try:
            if list(d["levels"]) != list(FEATURE_LEVELS) or [float(s) for s in d["scales"]] != [
                float(s) for s in FEATURE_SCALES
            ]:
                return None
            mean, std, weights = (np.asarray(d[k], np.float64) for k in ("mean", "std", "weights"))
            bias = float(d["bias"])
        except (KeyError, TypeError, ValueError):
            return None
        ok = mean.ndim == 1 and mean.shape == std.shape == weights.shape
        if not ok or not (np.isfinite(mean).all() and np.isfinite(weights).all()):
            return None
        if not (np.isfinite(std).all() and (std > 0).all() and math.isfinite(bias)):
            return None
        return cls(mean, std, weights, bias)


def fit_size_regression(
    features: np.ndarray, widths: np.ndarray, ridge: float = 100.0
) -> SizeRegression:
    """A ridge regression of ``log(widths)`` on ``features`` (one row per image),
    standardised per feature."""
    x = np.asarray(features, np.float64)
    y = np.log(np.asarray(widths, np.float64))
    mean, std = x.mean(0), x.std(0) + 1e-6
    z = (x - mean) / std
    w = np.linalg.solve(z.T @ z + ridge * np.eye(z.shape[1]), z.T @ (y - y.mean()))
    return SizeRegression(mean, std, w, float(y.mean()))
