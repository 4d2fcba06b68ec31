"""Helpers every test may use: the sample data's paths, seeds of learned-result tests,
small synthetic images, model files with edited metadata."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


SAMPLE_IMAGE = ROOT / "sample_data" / "img2d.tif"


SAMPLE_MASK = ROOT / "sample_data" / "mask2d.tif"


# ---------------------------------------------------------------------- learned results
# A test of a learned result (accuracy, F1, a loss going down) must hold on any x86-64 CPU:
# oneDNN picks other float32 kernels on AMD than on Intel, so training takes another path.
# Such tests are marked `learned`, take their seeds through `seeded` and assert through
# `margin`; scripts/learned_margins.py reruns them with other seeds and prints the margins.
SEED_OFFSET = int(os.environ.get("NAPARI_UNET_TEST_SEED", "0"))


def seeded(seed: int) -> int:
    """A seed of a learned-result test, shifted by ``NAPARI_UNET_TEST_SEED``."""
    return seed + SEED_OFFSET


def make_blobs(size: int = 128, n: int = 12, seed: int = 0, radius=(5, 10)):
    """A synthetic fluorescence image of round blobs and its instance mask."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    mask = np.zeros((size, size), np.uint16)
    image = np.zeros((size, size), np.float32)
    placed = 0
    for _ in range(n * 20):
        if placed == n:
            break
        r = rng.uniform(*radius)
        cy, cx = rng.uniform(r, size - r, 2)
        disk = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        if (mask[disk] > 0).any():
            continue
        placed += 1
        mask[disk] = placed
        image[disk] = rng.uniform(0.6, 1.0)
    image = image + rng.normal(0, 0.05, image.shape).astype(np.float32)
    return np.clip(image * 1000 + 200, 0, 65535).astype(np.uint16), mask


def make_two_classes(size: int = 128, n: int = 14, seed: int = 0, **kwargs):
    """Bright round blobs (class 1) and dim rods (class 2): see
    ``scripts/synthetic_classes.py``. Returns image, instance mask, class map."""
    import sys

    sys.path.insert(0, str(ROOT / "scripts"))
    from synthetic_classes import two_class_image

    return two_class_image(size, n, seed, **kwargs)


def with_metadata(path: Path, out: Path, edit) -> Path:
    """A copy of the model file ``path`` at ``out`` whose napari-unet metadata ``edit``
    (a function of the metadata dict) has changed in place: a file that lies."""

    with zipfile.ZipFile(path) as z:
        items = {n: z.read(n) for n in z.namelist()}
    meta = json.loads(items["napari_unet.json"])
    edit(meta)
    items["napari_unet.json"] = json.dumps(meta).encode()
    with zipfile.ZipFile(out, "w") as z:
        for name, data in items.items():
            z.writestr(name, data)
    return out


# ---------------------------------------------------------------------- volumes
def balls(shape, centres, radii, z_scale=1.0) -> np.ndarray:
    """Instance mask of ellipsoids ``radii`` ``(rz, ry, rx)`` in pixels (``rz`` in
    pixels of the xy grid: ``rz / z_scale`` planes); a later one wins where they meet."""
    zz, yy, xx = np.indices(shape, dtype=np.float32)
    zz *= z_scale
    mask = np.zeros(shape, np.int32)
    for i, ((cz, cy, cx), (rz, ry, rx)) in enumerate(zip(centres, radii), start=1):
        inside = ((zz - cz * z_scale) / rz) ** 2 + ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2
        mask[inside <= 1.0] = i
    return mask


def nuclei_volume(seed: int = 0):
    """Bright blurred balls (about the bundled nuclei model's object width, 21 px), two
    touching side by side and one lying across the planes of another."""
    shape = (24, 64, 64)
    truth = balls(
        shape,
        [(12, 20, 18), (12, 20, 38), (12, 46, 30)],
        [(10, 10, 10), (10, 10, 10), (10, 10, 12)],
    )
    rng = np.random.default_rng(seed)
    from scipy import ndimage as ndi

    image = ndi.gaussian_filter((truth > 0).astype(np.float32), 1.5) * 800 + 100
    image += rng.normal(0, 20, shape)
    return image.astype(np.float32), truth


def ball_volume(seed: int = 0, shape=(12, 64, 64), z_scale: float = 2.0):
    """Nine balls (radius 6–9 px of the xy grid) on a 3×3 grid at random depths, in a
    volume ``z_scale`` px per plane: an image and its instance mask."""
    rng = np.random.default_rng(seed)
    centres, radii = [], []
    for cy in (14, 32, 50):
        for cx in (14, 32, 50):
            centres.append((rng.uniform(3, 8), cy + rng.uniform(-3, 3), cx + rng.uniform(-3, 3)))
            r = rng.uniform(6, 9)
            radii.append((r, r, r))
    truth = balls(shape, centres, radii, z_scale=z_scale)
    from scipy import ndimage as ndi

    image = ndi.gaussian_filter((truth > 0).astype(np.float32), 1.0) * 800 + 100
    image += rng.normal(0, 30, shape)
    return image.astype(np.float32), truth


def ids_of(pred: np.ndarray, truth: np.ndarray, t: int) -> tuple[int, float]:
    """Predicted ids that hold at least 5 % of true object ``t``, and the share of its
    voxels in its largest id."""
    p = pred[truth == t]
    ids, counts = np.unique(p[p > 0], return_counts=True)
    if not ids.size:
        return 0, 0.0
    return int((counts >= 0.05 * p.size).sum()), float(counts.max() / p.size)


def assert_one_id_each(pred: np.ndarray, truth: np.ndarray, share: float = 0.9) -> None:
    for t in range(1, int(truth.max()) + 1):
        n, s = ids_of(pred, truth, t)
        assert n == 1 and s >= share, f"object {t}: {n} ids, {s:.2f} in the largest"
    # and no two true objects share an id
    owners = {}
    for t in range(1, int(truth.max()) + 1):
        p = pred[truth == t]
        top = int(np.bincount(p[p > 0]).argmax())
        assert top not in owners, f"objects {owners.get(top)} and {t} share id {top}"
        owners[top] = t


def write_aperio_slide(path: Path, rgb: np.ndarray, levels: int = 3) -> list[np.ndarray]:
    """An Aperio SVS-like slide: the full-resolution colours in 128 px JPEG tiles, a
    thumbnail, then ``levels - 1`` halvings (as a slide scanner writes it; tifffile reads
    it as Aperio's pyramid). Returns the levels as written, full resolution first."""
    import tifffile

    desc = "Aperio Image Library v12.0.0\r\n{w}x{h} (128x128) JPEG/RGB Q=95|AppMag = 20|MPP = 0.5"
    pyramid = [rgb]
    for _ in range(levels - 1):
        a = pyramid[-1]
        h, w = a.shape[0] // 2 * 2, a.shape[1] // 2 * 2
        half = a[:h, :w].reshape(h // 2, 2, w // 2, 2, 3).mean(axis=(1, 3))
        pyramid.append(half.astype(np.uint8))
    kw = {"photometric": "rgb", "compression": "jpeg", "metadata": None}
    with tifffile.TiffWriter(path) as tw:
        for i, a in enumerate(pyramid):
            text = desc.format(w=a.shape[1], h=a.shape[0])
            tw.write(a, tile=(128, 128), description=text, **kw)
            if i == 0:  # the thumbnail follows the full resolution, in strips
                tw.write(pyramid[-1][::2, ::2], description="Aperio thumbnail", **kw)
    return pyramid
