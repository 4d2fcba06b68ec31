"""Synthetic fluorescence nuclei images with instance masks, with real variety.

Size, shape (perturbed ellipses), density, touching and overlapping nuclei (the upper one
occludes), uneven brightness and texture, blur, Poisson + read noise, background offsets
and gradients, 8- and 16-bit ranges. Used to pretrain the bundled default model and in
benchmarks; never shipped as data.

    python scripts/synthetic_nuclei.py --n 4 --out /tmp/synth    # writes TIFF pairs
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi


def _smooth_noise(shape, sigma, rng):
    n = ndi.gaussian_filter(rng.normal(size=shape), sigma)
    return n / (n.std() + 1e-9)


def _nucleus(radius: float, rng) -> np.ndarray:
    """A boolean footprint: a rotated ellipse with a wavy outline."""
    ratio = rng.uniform(0.55, 1.0)
    a, b = radius / np.sqrt(ratio), radius * np.sqrt(ratio)
    half = int(np.ceil(max(a, b) * 1.35)) + 1
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1].astype(np.float32)
    t = rng.uniform(0, np.pi)
    u = xx * np.cos(t) + yy * np.sin(t)
    v = -xx * np.sin(t) + yy * np.cos(t)
    theta = np.arctan2(v, u)
    wobble = 1.0
    for k in (2, 3, 4, 5):
        wobble = wobble + rng.normal(0, 0.05) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    r = np.sqrt((u / a) ** 2 + (v / b) ** 2)
    return r <= wobble


def synth_image(size: int = 256, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic image (uint8 or uint16) and its instance mask (uint16)."""
    rng = np.random.default_rng(seed)
    h = w = size
    mask = np.zeros((h, w), np.uint16)
    signal = np.zeros((h, w), np.float32)
    r_mean = float(np.exp(rng.uniform(np.log(4.0), np.log(22.0))))
    coverage = rng.uniform(0.05, 0.5)
    max_overlap = rng.choice([0.0, 0.05, 0.2])
    cluster_prob = rng.uniform(0.0, 0.7)
    target_px = coverage * h * w
    centers: list[tuple[float, float, float]] = []
    nid = 0
    brightness_spread = rng.uniform(0.0, 0.6)
    for _ in range(4000):
        if (mask > 0).sum() >= target_px:
            break
        r = r_mean * float(np.exp(rng.normal(0, 0.25)))
        fp = _nucleus(r, rng)
        fh, fw = fp.shape
        if centers and rng.random() < cluster_prob:
            cy, cx, cr = centers[rng.integers(len(centers))]
            ang = rng.uniform(0, 2 * np.pi)
            d = (cr + r) * rng.uniform(0.85, 1.05)
            y, x = cy + d * np.sin(ang), cx + d * np.cos(ang)
        else:
            y, x = rng.uniform(-fh / 3, h + fh / 3), rng.uniform(-fw / 3, w + fw / 3)
        y0, x0 = int(round(y)) - fh // 2, int(round(x)) - fw // 2
        ya, xa = max(0, y0), max(0, x0)
        yb, xb = min(h, y0 + fh), min(w, x0 + fw)
        if ya >= yb or xa >= xb:
            continue
        sub = fp[ya - y0 : yb - y0, xa - x0 : xb - x0]
        if not sub.any():
            continue
        overlap = (mask[ya:yb, xa:xb][sub] > 0).mean()
        if overlap > max_overlap:
            continue
        nid += 1
        region = mask[ya:yb, xa:xb]
        region[sub] = nid  # a later nucleus lies on top of an earlier one
        level = float(np.clip(1.0 + rng.normal(0, brightness_spread), 0.2, 2.0))
        # texture inside the nucleus, and a soft fall-off toward its rim
        dist = ndi.distance_transform_edt(np.pad(sub, 1))[1:-1, 1:-1]
        profile = 1.0 - rng.uniform(0.0, 0.5) * np.exp(-dist / max(r * 0.3, 1.0))
        tex = 1.0 + rng.uniform(0.0, 0.35) * _smooth_noise(sub.shape, rng.uniform(0.8, 2.5), rng)
        val = np.clip(level * profile * tex, 0.05, None).astype(np.float32)
        signal[ya:yb, xa:xb][sub] = val[sub]
        centers.append((y, x, r))
    if nid == 0:
        return synth_image(size, None if seed is None else seed + 10_000)
    # optics and background
    signal = ndi.gaussian_filter(signal, rng.uniform(0.3, 2.2))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) / size
    bg = rng.uniform(0.0, 0.25) + rng.normal(0, 0.12) * yy + rng.normal(0, 0.12) * xx
    bg = bg + rng.uniform(0.0, 0.08) * _smooth_noise((h, w), size / 6, rng)
    img = signal * rng.uniform(0.4, 1.0) + np.clip(bg, 0, None)
    photons = float(np.exp(rng.uniform(np.log(15), np.log(2000))))
    img = rng.poisson(np.clip(img, 0, None) * photons).astype(np.float32) / photons
    img = img + rng.normal(0, rng.uniform(0.0, 0.03), img.shape)
    if rng.random() < 0.4:  # 8-bit camera / export
        top = rng.uniform(60, 255)
        out = np.clip(img / max(img.max(), 1e-6) * top, 0, 255).astype(np.uint8)
    else:  # 16-bit with an offset
        top = float(np.exp(rng.uniform(np.log(300), np.log(60000))))
        offset = rng.uniform(0, 500)
        out = np.clip(img / max(img.max(), 1e-6) * top + offset, 0, 65535).astype(np.uint16)
    return out, mask


def synth_set(n: int, size: int = 256, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` image/mask pairs, reproducible from ``seed``."""
    return [synth_image(size, seed * 100_003 + i) for i in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    import tifffile

    args.out.mkdir(parents=True, exist_ok=True)
    for i, (img, mask) in enumerate(synth_set(args.n, args.size, args.seed)):
        tifffile.imwrite(args.out / f"synth_{i:03d}.tif", img)
        tifffile.imwrite(args.out / f"synth_{i:03d}_mask.tif", mask)


if __name__ == "__main__":
    main()
