"""Synthetic images of two object classes, for the multi-class tests and benchmark."""

from __future__ import annotations

import numpy as np


def two_class_image(size: int = 128, n: int = 14, seed: int = 0, rod_brightness=(0.4, 0.55)):
    """A synthetic image of two object classes: bright round blobs (class 1) and dimmer
    elongated rods (class 2); ``rod_brightness=(0.7, 1.0)`` makes them as bright as the
    blobs, so that only their shape tells them apart.

    Returns the image, the instance mask and the class map (0 background, 1 blob,
    2 rod).
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    mask = np.zeros((size, size), np.uint16)
    classes = np.zeros((size, size), np.uint8)
    image = np.zeros((size, size), np.float32)
    placed = 0
    for _ in range(n * 40):
        if placed == n:
            break
        kind = 1 + placed % 2
        cy, cx = rng.uniform(10, size - 10, 2)
        if kind == 1:
            r = rng.uniform(5, 7)
            shape = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        else:
            angle = rng.uniform(0, np.pi)
            u = (yy - cy) * np.cos(angle) + (xx - cx) * np.sin(angle)
            v = -(yy - cy) * np.sin(angle) + (xx - cx) * np.cos(angle)
            shape = (u / 13.0) ** 2 + (v / 3.0) ** 2 <= 1.0
        grown = np.zeros_like(shape)
        grown[1:-1, 1:-1] = shape[1:-1, 1:-1]
        if not grown.any() or grown.sum() < shape.sum() or (mask[shape] > 0).any():
            continue
        # keep a gap of 2 px to other objects: these are classes, not touching tests
        near = (mask > 0) & ((yy - cy) ** 2 + (xx - cx) ** 2 <= (15 if kind == 2 else 9) ** 2)
        if near.any():
            continue
        placed += 1
        mask[shape] = placed
        classes[shape] = kind
        image[shape] = rng.uniform(0.7, 1.0) if kind == 1 else rng.uniform(*rod_brightness)
    image = image + rng.normal(0, 0.05, image.shape).astype(np.float32)
    return np.clip(image * 1000 + 200, 0, 65535).astype(np.uint16), mask, classes
