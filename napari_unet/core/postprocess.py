"""From class probabilities to instance labels (scikit-image seeded watershed)."""

from __future__ import annotations

import numpy as np


def foreground_probability(prob: np.ndarray) -> np.ndarray:
    """``1 - P(background)``: the probability that a pixel belongs to any object."""
    return (1.0 - prob[..., 0]).astype(np.float32)


def instances_from_probabilities(
    prob: np.ndarray,
    threshold: float = 0.5,
    min_size: int = 10,
    min_seed_size: int = 3,
) -> np.ndarray:
    """Instance labels from ``(Y, X, C)`` probabilities ``[bg, classes…, boundary]``.

    Seeds are connected regions where an object class beats the boundary class inside
    the foreground; a watershed on the interior probability grows them over the
    foreground (``1 - P(bg) > threshold``), so touching nuclei split along the
    predicted boundary. Foreground regions with no seed become one instance each;
    instances smaller than ``min_size`` pixels are dropped.

    Returns
    -------
    numpy.ndarray
        ``int32`` labels, 0 = background, ids 1..N.
    """
    from scipy import ndimage as ndi
    from skimage.segmentation import watershed

    fg = foreground_probability(prob) > threshold
    interior = prob[..., 1:-1].sum(-1)
    seeds_mask = fg & (interior > prob[..., -1])
    seeds, n = ndi.label(seeds_mask)
    if n and min_seed_size > 1:
        sizes = np.bincount(seeds.ravel())
        small = sizes < min_seed_size
        small[0] = False
        if small.any():
            seeds[small[seeds]] = 0
    # foreground blobs that hold no seed (tiny objects, all boundary) keep a seed of
    # their own so that nothing predicted as object disappears
    blobs, nb = ndi.label(fg)
    if nb:
        seeded = np.zeros(nb + 1, bool)
        seeded[np.unique(blobs[seeds > 0])] = True
        seeded[0] = True
        orphan = ~seeded[blobs]
        if orphan.any():
            seeds = seeds.astype(np.int64)
            seeds[orphan] = blobs[orphan] + seeds.max()
    labels = watershed(-interior, markers=seeds, mask=fg)
    return relabel_and_filter(labels, min_size)


def relabel_and_filter(labels: np.ndarray, min_size: int = 0) -> np.ndarray:
    """Drop instances below ``min_size`` pixels and renumber ids as 1..N (int32)."""
    labels = np.asarray(labels)
    ids, inverse, counts = np.unique(labels.ravel(), return_inverse=True, return_counts=True)
    keep = (ids != 0) & (counts >= max(min_size, 1))
    new_ids = np.zeros(len(ids), np.int32)
    new_ids[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    return new_ids[inverse].reshape(labels.shape)
