"""Synthetic rod-shaped bacteria in a phase-contrast-like look, with instance masks.

Capsules (a rod with round caps) of one width and various lengths and angles, packed so
that many touch end to end or side by side; dark cells with a bright halo on a grey,
uneven, noisy background. Unlike the default model's round, bright nuclei in shape and
in contrast, for the adaptation benchmarks and tests.

    python scripts/synthetic_rods.py --n 4 --out rods/
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def _capsule(h: int, w: int, cy: float, cx: float, length: float, width: float, angle: float):
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dy, dx = np.sin(angle), np.cos(angle)
    t = np.clip((yy - cy) * dy + (xx - cx) * dx, -length / 2, length / 2)
    py, px = cy + t * dy, cx + t * dx
    return (yy - py) ** 2 + (xx - px) ** 2 <= (width / 2) ** 2


def synth_rods(
    size: int = 256,
    seed: int | None = None,
    width: float = 8.0,
    n: int | None = None,
    contact: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """One image (float32, 0–1) and its instance mask (uint16).

    ``contact`` (0–1) is how visible the line where two cells touch is: 0 draws
    touching cells as one dark region, so only their shape tells them apart; 1 leaves
    the two pixels of the line as light as the background, as the cell walls of
    touching bacteria look in phase contrast. The mask is the same either way.
    """
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    h = w = size
    mask = np.zeros((h, w), np.uint16)
    n = n or int(size * size / 900)
    nid = 0
    for _ in range(n * 20):
        if nid >= n:
            break
        length = rng.uniform(2.5, 6.0) * width
        angle = rng.uniform(0, np.pi)
        if nid and rng.random() < 0.6:
            # next to an existing cell: end to end or side by side, touching
            ys, xs = np.nonzero(mask)
            k = rng.integers(len(ys))
            cy, cx = ys[k] + rng.normal(0, width), xs[k] + rng.normal(0, width)
        else:
            cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        cap = _capsule(h, w, cy, cx, length, width * rng.uniform(0.9, 1.1), angle)
        overlap = (mask[cap] > 0).mean() if cap.any() else 1.0
        if cap.sum() < 20 or overlap > 0.08:
            continue
        nid += 1
        mask[cap & (mask == 0)] = nid
    cells = mask > 0
    bg = 0.55 + 0.08 * ndi.gaussian_filter(rng.normal(size=(h, w)), size / 8) * size / 8
    body = cells.astype(np.float32)
    if contact:
        # cell pixels with a 4-neighbour of another cell: the line where two touch
        p = np.pad(mask, 1, mode="edge")
        c = p[1:-1, 1:-1]
        line = np.zeros((h, w), bool)
        for nb in (p[:-2, 1:-1], p[2:, 1:-1], p[1:-1, :-2], p[1:-1, 2:]):
            line |= (c > 0) & (nb > 0) & (nb != c)
        body[line] = 1.0 - float(contact)
    inside = ndi.gaussian_filter(body, 1.0)
    halo = ndi.gaussian_filter(cells.astype(np.float32), 3.0) - inside
    image = bg - 0.35 * inside + 0.25 * np.clip(halo, 0, None)
    image = image + rng.normal(0, 0.03, size=(h, w))
    return np.clip(image, 0, 1).astype(np.float32), mask


def main() -> None:
    import tifffile

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--contact", type=float, default=0.0, help="visibility of touching lines")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for i in range(args.n):
        img, mask = synth_rods(args.size, args.seed * 1000 + i, contact=args.contact)
        tifffile.imwrite(args.out / f"rods_{i:02d}.tif", img)
        tifffile.imwrite(args.out / f"rods_{i:02d}_mask.tif", mask)


if __name__ == "__main__":
    main()
