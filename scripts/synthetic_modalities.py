"""Domain-randomised synthetic microscopy images with instance masks, of every kind users bring.

Each image is drawn from parameters, never from a real data set: a layout of objects (an
instance mask) and a look rendered from it, then the optics and the camera.

Modalities (:data:`MODALITIES`):

- ``fluo_nuclei``: bright nuclei on a dark background, round to oval, textured, 6–60 px;
- ``fluo_cytoplasm``: whole cells, irregular and elongated, brighter or darker nucleus
  inside, often packed into touching colonies, 20–150 px;
- ``fluo_membrane``: only the cell outlines are bright; the mask holds the whole cells;
- ``brightfield``: slightly dark, textured objects with a dark rim on a light, textured
  background with debris (not objects);
- ``phase``: dark cells with bright halos on a grey, uneven background;
- ``he``: RGB, haematoxylin-blue nuclei on pink/purple tissue with fibres and gaps;
- ``rods``: rod-shaped bacteria, straight or bent, crowded and touching end to end and side
  by side, phase-like (dark, halo) or fluorescent.

Every image also draws: object size, density, clustering (touching objects), shape
(elongation, irregular outlines, bending), uneven illumination, blur, noise from a few
photons to almost none, and how it is stored (uint8, uint16 with an offset, float32 of
any range; H&E: uint8 or float RGB).

Seeds from :data:`BENCHMARK_SEEDS` on are reserved for benchmarks (held out): a training
script draws its images from seeds below it.

    python scripts/synthetic_modalities.py --modality he --n 4 --out /tmp/he
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

MODALITIES = (
    "fluo_nuclei",
    "fluo_cytoplasm",
    "fluo_membrane",
    "brightfield",
    "phase",
    "he",
    "rods",
)
#: seeds from here on are for benchmarks only; training draws below
BENCHMARK_SEEDS = 1_000_000
#: range of the objects' equivalent diameter (px) drawn per modality (log-uniform)
DIAMETERS = {
    "fluo_nuclei": (6.0, 60.0),
    "fluo_cytoplasm": (20.0, 150.0),
    "fluo_membrane": (16.0, 120.0),
    "brightfield": (12.0, 120.0),
    "phase": (12.0, 100.0),
    "he": (8.0, 40.0),
    "rods": (8.0, 40.0),  # the rods' own width is 5–14 px, their length 2–6 widths
}
DTYPES = ("uint8", "uint16", "float32")


# ---------------------------------------------------------------------------- parameters
def _log_uniform(rng, lo, hi):
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def draw_params(modality: str, size: int = 256, seed: int = 0, **fixed) -> dict:
    """The parameters of one image, reproducible from ``seed``; ``fixed`` overrides any
    of them (``diameter``, ``dtype``, ``coverage``, ``layout``, …)."""
    if modality not in MODALITIES:
        raise ValueError(f"unknown modality {modality!r}; choose one of {', '.join(MODALITIES)}")
    rng = np.random.default_rng([seed, MODALITIES.index(modality), 22])
    p: dict = {"modality": modality, "size": int(size), "seed": int(seed)}
    if modality == "rods":
        width = _log_uniform(rng, 5.0, 14.0)
        aspect = rng.uniform(2.0, 6.0)
        p.update(width=width, aspect=aspect, bend=rng.choice([0.0, rng.uniform(0.0, 0.25)]))
        p["look"] = "phase" if rng.random() < 0.65 else "fluorescence"
        p["contact"] = float(rng.choice([0.0, rng.uniform(0.3, 1.0)]))
    else:
        p["diameter"] = _log_uniform(rng, *DIAMETERS[modality])
    round_ = modality in ("fluo_nuclei", "he")
    p["aspect"] = p.get("aspect", rng.uniform(1.0, 1.6) if round_ else _log_uniform(rng, 1.0, 3.5))
    p["irregular"] = rng.uniform(0.01, 0.08) if round_ else rng.uniform(0.03, 0.25)
    p.setdefault("bend", rng.uniform(0.0, 0.15) if not round_ else 0.0)
    tessellate = {"fluo_cytoplasm": 0.5, "fluo_membrane": 0.85, "brightfield": 0.3}
    p["layout"] = "tessellate" if rng.random() < tessellate.get(modality, 0.0) else "scatter"
    p["coverage"] = rng.uniform(0.08, 0.55)
    p["cluster"] = rng.uniform(0.0, 0.9) if modality != "rods" else rng.uniform(0.4, 0.95)
    p["max_overlap"] = float(rng.choice([0.0, 0.05, 0.15]))
    p["blur"] = rng.uniform(0.0, 2.2)
    p["illumination"] = rng.uniform(0.0, 0.6)  # strength of the uneven illumination
    # photons per unit of signal: the noise level (transmitted light is never as dim)
    p["photons"] = _log_uniform(
        rng, 40.0 if modality in ("he", "brightfield", "phase") else 4.0, 5000.0
    )
    p["read_noise"] = rng.uniform(0.0, 0.04)
    if modality == "he":
        p["dtype"] = "uint8" if rng.random() < 0.75 else "float32"
    else:
        p["dtype"] = str(rng.choice(DTYPES, p=[0.35, 0.4, 0.25]))
    p["look_seed"] = int(rng.integers(2**31))  # the look: contrast, colours, halo, …
    p["render_seed"] = int(rng.integers(2**31))  # this field of view: layout, textures, noise
    p.update(fixed)
    if modality == "rods" and "diameter" not in fixed:
        # equivalent diameter of a capsule: its area is w²·(aspect − 1) + π w²/4
        area = p["width"] ** 2 * (p["aspect"] - 1 + np.pi / 4)
        p["diameter"] = float(np.sqrt(4 * area / np.pi))
    return p


#: what the images of one experiment share (same sample, same instrument)
SERIES_KEYS = (
    "diameter",
    "width",
    "aspect",
    "irregular",
    "bend",
    "layout",
    "look",
    "contact",
    "blur",
    "illumination",
    "photons",
    "read_noise",
    "dtype",
    "look_seed",
)


class _Draws:
    """Random draws split in two streams: single numbers (the look of an experiment,
    ``look_seed``) and arrays (this field of view, ``render_seed``), so that the images of
    one series share their look while their objects, textures and noise differ."""

    def __init__(self, look_seed: int, render_seed: int):
        self.scalar = np.random.default_rng([look_seed, 7])
        self.field = np.random.default_rng([render_seed, 8])

    def _pick(self, kwargs, args, n_scalar):
        sized = kwargs.get("size") is not None or len(args) > n_scalar
        return self.field if sized else self.scalar

    def uniform(self, *args, **kw):
        return self._pick(kw, args, 2).uniform(*args, **kw)

    def normal(self, *args, **kw):
        return self._pick(kw, args, 2).normal(*args, **kw)

    def integers(self, *args, **kw):
        return self._pick(kw, args, 2).integers(*args, **kw)

    def random(self, *args, **kw):
        return self._pick(kw, args, 0).random(*args, **kw)

    def choice(self, *args, **kw):
        return self._pick(kw, args, 1).choice(*args, **kw)

    def poisson(self, *args, **kw):
        return self.field.poisson(*args, **kw)


# ---------------------------------------------------------------------------- shapes
def _smooth_noise(shape, sigma, rng) -> np.ndarray:
    n = ndi.gaussian_filter(rng.normal(size=shape), sigma)
    return (n - n.mean()) / (n.std() + 1e-9)


def _blob(d: float, aspect: float, irregular: float, bend: float, rng) -> np.ndarray:
    """A boolean footprint of about ``d`` px equivalent diameter: an ellipse of ``aspect``,
    its outline waved by ``irregular`` and bent by ``bend`` (tip offset / half length)."""
    a, b = d / 2 * np.sqrt(aspect), d / 2 / np.sqrt(aspect)
    half = int(np.ceil(a * (1 + 3 * irregular) + abs(bend) * a)) + 2
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1].astype(np.float32)
    t = rng.uniform(0, np.pi)
    u = xx * np.cos(t) + yy * np.sin(t)
    v = -xx * np.sin(t) + yy * np.cos(t)
    v = v - bend * u * u / max(a, 1.0)
    theta = np.arctan2(v / b, u / a)
    wobble = np.ones_like(theta)
    for k in range(2, 7):
        amp = rng.normal(0, irregular / np.sqrt(k - 1))
        wobble = wobble + amp * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    return np.sqrt((u / a) ** 2 + (v / b) ** 2) <= np.clip(wobble, 0.4, None)


def _capsule(width: float, aspect: float, bend: float, rng) -> np.ndarray:
    """A rod with round caps, ``aspect`` widths long, bent by ``bend``."""
    length = width * aspect
    half = int(np.ceil(length / 2 + width)) + 2
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1].astype(np.float32)
    t = rng.uniform(0, np.pi)
    u = xx * np.cos(t) + yy * np.sin(t)
    v = -xx * np.sin(t) + yy * np.cos(t)
    v = v - bend * u * u / max(length / 2, 1.0)
    core = (length - width) / 2
    s = np.clip(u, -core, core)
    return (u - s) ** 2 + v**2 <= (width / 2) ** 2


def _scatter(p: dict, rng) -> np.ndarray:
    """Objects placed one by one, many next to an earlier one (touching clusters); a later
    object lies on top of an earlier one where they overlap."""
    h = w = p["size"]
    mask = np.zeros((h, w), np.int32)
    target = p["coverage"] * h * w
    covered = 0
    nid = 0
    centres: list[tuple[float, float, float]] = []
    rods = p["modality"] == "rods"
    for _ in range(6000):
        if covered >= target:
            break
        scale = float(np.exp(rng.normal(0, 0.2)))
        if rods:
            width = p["width"] * float(np.exp(rng.normal(0, 0.08)))
            aspect = p["aspect"] * float(np.exp(rng.normal(0, 0.25)))
            fp = _capsule(width, max(aspect, 1.2), p["bend"] * rng.uniform(-1, 1), rng)
        else:
            aspect = 1 + (p["aspect"] - 1) * rng.uniform(0.5, 1.3)
            fp = _blob(
                p["diameter"] * scale, aspect, p["irregular"], p["bend"] * rng.uniform(-1, 1), rng
            )
        fh, fw = fp.shape
        r = p["diameter"] * scale / 2
        if centres and rng.random() < p["cluster"]:
            cy, cx, cr = centres[rng.integers(len(centres))]
            ang = rng.uniform(0, 2 * np.pi)
            dist = (cr + r) * rng.uniform(0.6, 1.05)
            y, x = cy + dist * np.sin(ang), cx + dist * np.cos(ang)
        else:
            y, x = rng.uniform(-fh / 4, h + fh / 4), rng.uniform(-fw / 4, w + fw / 4)
        y0, x0 = int(round(y)) - fh // 2, int(round(x)) - fw // 2
        ya, xa, yb, xb = max(0, y0), max(0, x0), min(h, y0 + fh), min(w, x0 + fw)
        if ya >= yb or xa >= xb:
            continue
        sub = fp[ya - y0 : yb - y0, xa - x0 : xb - x0]
        if sub.sum() < 6:
            continue
        region = mask[ya:yb, xa:xb]
        if (region[sub] > 0).mean() > p["max_overlap"]:
            continue
        nid += 1
        covered += int((region[sub] == 0).sum())
        region[sub] = nid
        centres.append((y, x, r))
    return mask


def _tessellate(p: dict, rng) -> np.ndarray:
    """Cells packed edge to edge (an epithelium, a colony): warped Voronoi cells of about
    the drawn diameter, some shrunk away from their neighbours, holes between colonies."""
    size, d = p["size"], p["diameter"]
    step = d * np.sqrt(np.pi) / 2  # one seed per π d²/4 px
    pad = int(np.ceil(1.5 * step))
    n = int(np.ceil((size + 2 * pad) / step)) + 1
    gy, gx = np.mgrid[0:n, 0:n].astype(np.float64) * step
    gy += rng.uniform(-0.35, 0.35, gy.shape) * step
    gx += rng.uniform(-0.35, 0.35, gx.shape) * step
    big = size + 2 * pad
    keep = (gy >= 0) & (gy < big) & (gx >= 0) & (gx < big)
    py, px = gy[keep].astype(int), gx[keep].astype(int)
    seeds = np.zeros((big, big), np.int32)
    seeds[py, px] = np.arange(1, len(py) + 1)
    dist, (iy, ix) = ndi.distance_transform_edt(seeds == 0, return_indices=True)
    lab = seeds[iy, ix]
    # wavy borders: read the cells through a smooth warp
    amp = step * rng.uniform(0.05, 0.25)
    yy, xx = np.mgrid[0:big, 0:big].astype(np.float32)
    wy = yy + amp * _smooth_noise((big, big), step / 3, rng)
    wx = xx + amp * _smooth_noise((big, big), step / 3, rng)
    lab = ndi.map_coordinates(lab, [wy, wx], order=0, mode="nearest")
    dist = ndi.map_coordinates(dist, [wy, wx], order=1, mode="nearest")
    # some cells round off before they meet their neighbours
    reach = np.full(lab.max() + 1, np.inf)
    loose = rng.random(len(reach)) < rng.uniform(0.0, 0.6)
    reach[loose] = step * rng.uniform(0.45, 0.75, int(loose.sum()))
    lab = np.where(dist < reach[lab], lab, 0)
    # colonies: cells where a smooth field is high (coverage of the whole field)
    field = _smooth_noise((big, big), step * rng.uniform(1.5, 4.0), rng)
    frac = np.clip(p["coverage"] * 1.6, 0.3, 1.0)
    level = np.quantile(field, 1 - frac)
    ids, counts = np.unique(lab, return_counts=True)
    inside = ndi.sum_labels(field > level, lab, ids) / np.maximum(counts, 1)
    drop = ids[(inside < 0.5) & (ids > 0)]
    lab = np.where(np.isin(lab, drop), 0, lab)
    return lab[pad:-pad, pad:-pad].astype(np.int32)


def _clean(mask: np.ndarray, min_px: int) -> np.ndarray:
    """Keep each object's largest piece (an occluded one may be cut in two), drop those
    under ``min_px`` pixels, number them 1..n."""
    from skimage.measure import label

    pieces = label(mask, background=0, connectivity=1)
    n = int(pieces.max())
    if n == 0:
        return mask.astype(np.uint16)
    sizes = np.bincount(pieces.ravel(), minlength=n + 1)
    owner = np.zeros(n + 1, np.int64)
    owner[pieces.ravel()] = mask.ravel()
    best = {}
    for pid in range(1, n + 1):
        o = owner[pid]
        if o and (o not in best or sizes[pid] > sizes[best[o]]):
            best[o] = pid
    keep = np.zeros(n + 1, bool)
    for pid in best.values():
        keep[pid] = sizes[pid] >= min_px
    new = np.zeros(n + 1, np.int64)
    new[np.nonzero(keep)[0]] = np.arange(1, int(keep.sum()) + 1)
    return new[pieces].astype(np.uint16)


def layout(p: dict, rng) -> np.ndarray:
    """The instance mask (uint16) of the parameters ``p``."""
    mask = _tessellate(p, rng) if p["layout"] == "tessellate" else _scatter(p, rng)
    min_px = max(8, int(0.1 * np.pi * p["diameter"] ** 2 / 4))
    return _clean(mask, min_px)


# ---------------------------------------------------------------------------- looks
def _inner_distance(mask: np.ndarray) -> np.ndarray:
    """Distance (px) of each object pixel to the edge of its own object; 0 outside."""
    from skimage.segmentation import find_boundaries

    edge = find_boundaries(mask, mode="inner") | (mask == 0)
    return np.where(mask > 0, ndi.distance_transform_edt(~edge) + 1.0, 0.0).astype(np.float32)


def _per_object(mask, rng, lo, hi) -> np.ndarray:
    vals = rng.uniform(lo, hi, int(mask.max()) + 1).astype(np.float32)
    vals[0] = 0
    return vals[mask]


def _fluo_nuclei(mask, p, rng):
    d = p["diameter"]
    dist = _inner_distance(mask)
    spread = rng.uniform(0.0, 0.6)
    level = np.clip(1 + _per_object(mask, rng, -spread, spread), 0.15, None)
    rim = 1 - rng.uniform(0, 0.5) * np.exp(-dist / max(0.15 * d, 1.0))
    tex = 1 + rng.uniform(0, 0.4) * _smooth_noise(mask.shape, rng.uniform(0.6, 0.08 * d + 0.8), rng)
    spots = 1 + rng.uniform(0, 0.6) * np.clip(
        _smooth_noise(mask.shape, 0.05 * d + 0.7, rng) - 1.5, 0, None
    )
    return (mask > 0) * level * rim * np.clip(tex, 0.2, None) * spots


def _fluo_cytoplasm(mask, p, rng):
    d = p["diameter"]
    dist = _inner_distance(mask)
    level = _per_object(mask, rng, 0.35, 1.0)
    thick = np.clip(dist / (rng.uniform(0.05, 0.2) * d), 0.5, 1.0)  # thin, dimmer cell edges
    nucleus = dist > rng.uniform(0.2, 0.35) * d
    inside = rng.choice([rng.uniform(1.3, 2.0), rng.uniform(0.3, 0.7), 1.0])
    tex = 1 + rng.uniform(0.1, 0.5) * _smooth_noise(mask.shape, rng.uniform(1.0, 0.1 * d + 1), rng)
    return (mask > 0) * level * thick * np.where(nucleus, inside, 1.0) * np.clip(tex, 0.1, None)


def _fluo_membrane(mask, p, rng):
    from skimage.segmentation import find_boundaries

    d = p["diameter"]
    width = rng.uniform(1.0, max(1.5, 0.06 * d))
    edge = find_boundaries(mask, mode="inner")
    near = ndi.distance_transform_edt(~edge) < width
    level = _per_object(mask, rng, 0.5, 1.0)
    beads = 1 + rng.uniform(0, 0.6) * _smooth_noise(mask.shape, 1.0, rng)
    interior = rng.uniform(0.0, 0.25)
    return (mask > 0) * level * np.where(near, np.clip(beads, 0.2, None), interior)


def _halo(cells: np.ndarray, p, rng, depth, halo, contact: float = 0.0):
    """Dark bodies with a bright halo around them (phase contrast); 1 = background."""
    body = cells.astype(np.float32)
    if contact:
        # light line where two objects touch (cell walls in phase contrast)
        m = p["_mask"]
        pad = np.pad(m, 1, mode="edge")
        c = pad[1:-1, 1:-1]
        line = np.zeros(m.shape, bool)
        for nb in (pad[:-2, 1:-1], pad[2:, 1:-1], pad[1:-1, :-2], pad[1:-1, 2:]):
            line |= (c > 0) & (nb > 0) & (nb != c)
        body[line] = 1.0 - contact
    inside = ndi.gaussian_filter(body, 0.8)
    sigma = rng.uniform(1.5, 1.5 + 0.08 * p["diameter"])
    glow = np.clip(ndi.gaussian_filter(cells.astype(np.float32), sigma) - inside, 0, None)
    return 1.0 - depth * inside + halo * glow


def _background_texture(shape, rng, strength):
    coarse = _smooth_noise(shape, rng.uniform(8, 40), rng)
    fine = _smooth_noise(shape, rng.uniform(0.8, 3.0), rng)
    return 1 + strength * (0.7 * coarse + 0.3 * fine)


def _debris(shape, rng, n):
    """Small dark specks that are no object."""
    out = np.zeros(shape, np.float32)
    ys, xs = rng.integers(0, shape[0], n), rng.integers(0, shape[1], n)
    out[ys, xs] = rng.uniform(0.5, 3.0, n)
    return ndi.gaussian_filter(out, rng.uniform(0.7, 1.5))


def _brightfield(mask, p, rng):
    d = p["diameter"]
    dist = _inner_distance(mask)
    contrast = _per_object(mask, rng, 0.05, 0.4)
    tex = np.clip(1 + 0.5 * _smooth_noise(mask.shape, rng.uniform(0.8, 0.06 * d + 1), rng), 0, None)
    rim = rng.uniform(0.0, 0.4) * np.exp(-dist / rng.uniform(0.8, 2.5)) * (mask > 0)
    outer = rng.uniform(0.0, 0.15) * np.clip(
        ndi.gaussian_filter((mask > 0).astype(np.float32), 2.0) - (mask > 0), 0, None
    )
    bg = _background_texture(mask.shape, rng, rng.uniform(0.01, 0.06))
    spots = _debris(mask.shape, rng, int(rng.integers(0, 40))) * rng.uniform(0.05, 0.3)
    return bg * (1 - contrast * (0.6 + 0.4 * tex) - rim + outer) - spots


def _phase(mask, p, rng):
    cells = mask > 0
    depth = _per_object(mask, rng, 0.2, 0.6)
    img = _halo(cells, p, rng, depth, rng.uniform(0.5, 1.4), float(rng.choice([0.0, 0.5, 1.0])))
    tex = 1 + rng.uniform(0, 0.3) * _smooth_noise(mask.shape, 1.5, rng) * cells
    bg = _background_texture(mask.shape, rng, rng.uniform(0.01, 0.05))
    return bg * img * tex


def _rods(mask, p, rng):
    cells = mask > 0
    if p["look"] == "fluorescence":
        level = _per_object(mask, rng, 0.5, 1.0)
        if p["contact"]:
            pad = np.pad(mask, 1, mode="edge")
            c = pad[1:-1, 1:-1]
            line = np.zeros(mask.shape, bool)
            for nb in (pad[:-2, 1:-1], pad[2:, 1:-1], pad[1:-1, :-2], pad[1:-1, 2:]):
                line |= (c > 0) & (nb > 0) & (nb != c)
            level = np.where(line, level * (1 - 0.7 * p["contact"]), level)
        return level * cells
    depth = _per_object(mask, rng, 0.25, 0.5)
    img = _halo(cells, p, rng, depth, rng.uniform(0.3, 1.0), p["contact"])
    return img * _background_texture(mask.shape, rng, rng.uniform(0.01, 0.05))


def _he(mask, p, rng):
    """Haematoxylin and eosin densities turned into RGB by Beer–Lambert's law, with
    stain colours jittered around a blue-purple and a pink."""
    d = p["diameter"]
    shape = mask.shape
    # tissue: eosin everywhere but gaps, with fibres along a random direction
    gaps = _smooth_noise(shape, rng.uniform(10, 40), rng) < rng.uniform(-2.5, -0.3)
    fibre = ndi.gaussian_filter(rng.normal(size=shape), (rng.uniform(0.5, 1.5), rng.uniform(4, 12)))
    fibre = ndi.rotate(
        fibre / (fibre.std() + 1e-9), rng.uniform(0, 180), reshape=False, mode="reflect"
    )
    eosin = rng.uniform(0.3, 1.4) * np.clip(
        1 + 0.35 * _smooth_noise(shape, rng.uniform(3, 15), rng) + rng.uniform(0.1, 0.4) * fibre,
        0.05,
        None,
    )
    eosin = np.where(gaps, eosin * 0.05, eosin)
    # nuclei in a gap would float in empty space: they go
    in_gap = ndi.mean(gaps, mask, np.arange(1, mask.max() + 1)) if mask.max() else []
    mask[np.isin(mask, np.nonzero(np.asarray(in_gap) > 0.3)[0] + 1)] = 0
    dist = _inner_distance(mask)
    level = _per_object(mask, rng, 0.3, 1.4)
    chromatin = np.clip(
        1 + rng.uniform(0.1, 0.5) * _smooth_noise(shape, rng.uniform(0.7, 0.06 * d + 1), rng),
        0.2,
        None,
    )
    pale = rng.uniform(0.0, 0.6)  # vesicular nuclei: lighter inside, dark rim
    rim = 1 - pale * (1 - np.exp(-dist / max(0.12 * d, 1.0)))
    haem = (mask > 0) * level * chromatin * rim + rng.uniform(0.0, 0.15) * np.where(gaps, 0, 1)
    eosin = eosin * np.where(mask > 0, rng.uniform(0.2, 0.7), 1.0)
    # red blood cells: small eosin-dense discs about a nucleus wide, which are no nuclei
    n_red = int(rng.integers(0, 40))
    if n_red:
        red = np.zeros(shape, np.float32)
        ys, xs = rng.integers(0, shape[0], size=n_red), rng.integers(0, shape[1], size=n_red)
        red[ys, xs] = 1
        red = ndi.binary_dilation(red, iterations=max(2, int(0.3 * d))) & (mask == 0) & ~gaps
        eosin = eosin + rng.uniform(0.8, 2.0) * ndi.gaussian_filter(red.astype(np.float32), 1.0)
    # one colour per experiment (single draws: the look's stream)
    h_vec = np.array([0.65, 0.70, 0.29]) + [rng.normal(0, 0.06) for _ in range(3)]
    e_vec = np.array([0.07, 0.99, 0.11]) + [rng.normal(0, 0.06) for _ in range(3)]
    h_vec, e_vec = np.abs(h_vec) / np.linalg.norm(h_vec), np.abs(e_vec) / np.linalg.norm(e_vec)
    od = haem[..., None] * h_vec * rng.uniform(0.8, 1.6) + eosin[..., None] * e_vec * rng.uniform(
        0.4, 1.0
    )
    return np.exp(-od).astype(np.float32)  # transmitted light, 1 = white


# ---------------------------------------------------------------------------- camera
def _illumination(shape, rng, strength):
    h, w = shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) / max(h, w)
    field = 1 + strength * (
        rng.normal(0, 0.5) * (yy - 0.5)
        + rng.normal(0, 0.5) * (xx - 0.5)
        - rng.uniform(0, 1.0) * ((yy - 0.5) ** 2 + (xx - 0.5) ** 2)  # vignetting
        + 0.3 * _smooth_noise((h, w), max(h, w) / 5, rng)
    )
    return np.clip(field, 0.2, None).astype(np.float32)


def _digitise(img: np.ndarray, dtype: str, rng) -> np.ndarray:
    top = max(float(img.max()), 1e-6)
    if img.ndim == 3:  # a colour picture: white stays near white
        if dtype == "uint8":
            return np.clip(img / top * rng.uniform(200, 255), 0, 255).astype(np.uint8)
        return (img / top * rng.uniform(0.8, 1.0)).astype(np.float32)
    if dtype == "uint8":
        return np.clip(img / top * rng.uniform(80, 255), 0, 255).astype(np.uint8)
    if dtype == "uint16":
        scale = _log_uniform(rng, 300, 60000)
        return np.clip(img / top * scale + rng.uniform(0, 500), 0, 65535).astype(np.uint16)
    scale = _log_uniform(rng, 0.01, 5000)
    return (img / top * scale + rng.uniform(-0.05, 0.3) * scale).astype(np.float32)


def render(p: dict, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The image of ``mask`` in the look of ``p``; returns image and the final mask (H&E
    drops nuclei that fall into gaps of the tissue)."""
    rng = _Draws(p["look_seed"], p["render_seed"])
    mask = mask.copy()
    p = {**p, "_mask": mask}
    modality = p["modality"]
    fluorescent = modality.startswith("fluo") or (
        modality == "rods" and p["look"] == "fluorescence"
    )
    look = {
        "fluo_nuclei": _fluo_nuclei,
        "fluo_cytoplasm": _fluo_cytoplasm,
        "fluo_membrane": _fluo_membrane,
        "brightfield": _brightfield,
        "phase": _phase,
        "he": _he,
        "rods": _rods,
    }[modality]
    signal = look(mask, p, rng).astype(np.float32)
    blur = min(p["blur"], 0.12 * p["diameter"])
    sig = (blur, blur, 0) if signal.ndim == 3 else blur
    signal = ndi.gaussian_filter(signal, sig) if blur > 0 else signal
    light = _illumination(signal.shape, rng, p["illumination"])
    if signal.ndim == 3:
        light = light[..., None]
    if fluorescent:
        background = rng.uniform(0.0, 0.3) * (1 + 0.5 * _smooth_noise(signal.shape, 30, rng))
        img = (signal * rng.uniform(0.4, 1.0) + np.clip(background, 0, None)) * light
    else:
        img = np.clip(signal, 0, None) * light
    photons = p["photons"]
    img = rng.poisson(np.clip(img, 0, None) * photons).astype(np.float32) / photons
    img = img + rng.normal(0, p["read_noise"], img.shape).astype(np.float32)
    img = np.clip(img, 0, None)
    from skimage.segmentation import relabel_sequential

    return _digitise(img, p["dtype"], rng), relabel_sequential(mask)[0].astype(np.uint16)


def synth(modality: str, size: int = 256, seed: int = 0, **fixed) -> tuple[np.ndarray, np.ndarray]:
    """One image and its instance mask (uint16, 0 = background), reproducible from
    ``seed``. The image is ``(size, size)`` (``(size, size, 3)`` for ``he``) of the drawn
    dtype; ``fixed`` overrides drawn parameters (see :func:`draw_params`)."""
    p = draw_params(modality, size, seed, **fixed)
    for attempt in range(50):  # a field of view with no object at all is drawn again
        mask = layout(p, np.random.default_rng([p["render_seed"], 1 + attempt]))
        if mask.any():
            break
    return render(p, mask)


def synth_set(modality: str, n: int, size: int = 256, seed: int = 0, **fixed):
    """``n`` image/mask pairs of one modality, seeds ``seed``, ``seed + 1``, … (each with
    its own sample and instrument)."""
    return [synth(modality, size, seed + i, **fixed) for i in range(n)]


def synth_series(modality: str, n: int, size: int = 256, seed: int = 0, **fixed):
    """``n`` fields of view of one experiment: the sample and the instrument of ``seed``
    (:data:`SERIES_KEYS`: object size and shape, look, optics, noise level, dtype) with
    other objects, textures and noise in each (seeds ``seed + 1`` … ``seed + n``)."""
    shared = {
        k: v for k, v in draw_params(modality, size, seed, **fixed).items() if k in SERIES_KEYS
    }
    return [synth(modality, size, seed + 1 + i, **{**shared, **fixed}) for i in range(n)]


def synth_mixture(n: int, size: int = 256, seed: int = 0):
    """``n`` pairs of modalities in turn (for training: keep ``seed + n`` below
    :data:`BENCHMARK_SEEDS`)."""
    return [synth(MODALITIES[i % len(MODALITIES)], size, seed + i) for i in range(n)]


def main() -> None:
    import tifffile

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--modality", choices=MODALITIES, default="fluo_nuclei")
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for i, (img, mask) in enumerate(synth_set(args.modality, args.n, args.size, args.seed)):
        tifffile.imwrite(args.out / f"{args.modality}_{i:03d}.tif", img)
        tifffile.imwrite(args.out / f"{args.modality}_{i:03d}_mask.tif", mask)


if __name__ == "__main__":
    main()
