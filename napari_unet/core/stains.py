"""Stained slides (H&E, IHC) read as their haematoxylin: the grey a one-channel model sees.

A one-channel model takes a colour picture as one grey channel. For a brightfield slide
the mean of red, green and blue mixes the stains: haematoxylin (nuclei, blue-purple)
with eosin (pink tissue) or DAB (brown antibody stain). Where eosin is dense or DAB
darker than the nuclei, the mean finds tissue or stained glands rather than nuclei, and
it moves with every lab's stain colours. Read by Beer–Lambert's law instead (optical
density unmixed into its two stains), the haematoxylin channel shows nuclei bright on a
dark ground, like the fluorescent nuclei every bundled model knows best
(benchmarks/RESULTS.md, "Stained slides read as haematoxylin").

Each lab's stains have their own colours, so the two stains are estimated on each slide
(Macenko et al., 2009: the extreme directions of its optical densities in their main
plane), with Ruifrok and Johnston's vectors (:data:`skimage.color.hed_from_rgb`) where
a slide does not show two stains apart (:func:`haematoxylin_row`; RESULTS, "Each slide's
own stain colours").

:func:`read_stains` decides, once per image, whether a colour picture is such a slide,
and returns how to read it (:class:`StainReading`: its white, the light level each
channel is divided by, and the direction its haematoxylin is read along); the decision
and the reading are the image's, so every block and every plane of it is read alike.
Fluorescence composites (a dark ground: some
channel near zero on most pixels), grey pictures stored as RGB, tinted or not (every
pixel's optical density along grey), and slides whose objects are no haematoxylin (a blood
smear's pink cells, Gram-negative rods) keep the mean.
"""

from __future__ import annotations

import dataclasses

import numpy as np

#: A slide is light: on at least half its pixels every channel passes this share of
#: that channel's white. Synthetic H&E with dense eosin: 0.25–0.53, the scikit-image
#: IHC slide 0.53; fluorescence composites 0 (a channel stays dark on the ground).
STAINED_LIGHT = 0.15
#: A slide is coloured: the median angle (degrees) between a stained pixel's optical
#: density and grey's. Synthetic H&E 10.8–27 (7.1–26 with stain colours jittered as
#: between labs), IHC 14; grey pictures stored as RGB 0, tinted by a lamp or a camera's
#: white balance 0 too (each channel's own white).
STAINED_ANGLE = 6.0
#: A slide holds haematoxylin: at least this share of its stained pixels lies within
#: :data:`HAEMATOXYLIN_ANGLE` of haematoxylin's optical density. Synthetic H&E 0.39–0.80,
#: the IHC slide 0.22, sparse nuclei (9 % of the pixels) in dense eosin 0.087; a blood
#: smear of pink cells with one white cell's nucleus 0.034, pink (Gram-negative) rods 0:
#: where haematoxylin is that rare the objects are something else, and the mean keeps
#: them, as before.
STAINED_HAEMATOXYLIN = 0.05
HAEMATOXYLIN_ANGLE = 20.0
#: Pixels whose optical density (summed over the channels) passes this are stained.
STAINED_DENSITY = 0.3
#: A stained pixel's transmitted light is at least this share of the white (optical
#: density at most ~6.9): a black pixel stays finite.
DARKEST = 1e-3
#: Pixels :func:`sample_colours` reads at most (a regular subsample beyond).
SAMPLE_PIXELS = 1_000_000
#: A slide's two stains are the directions of its stained pixels' optical densities at
#: this percentile and its complement, by angle in their main plane (Macenko's 1 %),
#: each pixel weighed by its optical density.
STAIN_PERCENTILE = 1.0
#: The estimate stands only if its two stains lie at least this far apart (degrees) and
#: its haematoxylin within :data:`STAIN_DRIFT` of Ruifrok and Johnston's; otherwise the
#: slide is read along theirs. Synthetic H&E with stain colours jittered as between labs
#: (σ 0.25 per channel): stains 35–62° apart, haematoxylin up to 47° from theirs; the
#: scikit-image IHC slide: 38° apart, 6° from theirs.
STAIN_SEPARATION = 10.0
STAIN_DRIFT = 60.0
#: Stained pixels the estimate needs at least, and reads at most (a regular subsample
#: beyond: the percentiles hold, and a huge slide's estimate stays under 0.1 s).
STAIN_PIXELS = 200
STAIN_SAMPLE = 100_000


@dataclasses.dataclass(frozen=True)
class StainReading:
    """How one slide's colours become its haematoxylin density.

    Attributes
    ----------
    white
        The light level of each colour channel on bare glass (one neutral white).
    row
        The haematoxylin density is the optical densities' dot product with this row
        (the first row of the slide's unmixing matrix).
    """

    white: tuple[float, float, float]
    row: tuple[float, float, float]

    @property
    def estimated(self) -> bool:
        """The row comes from the slide's own stain colours, not from Ruifrok and
        Johnston's."""
        return not np.allclose(self.row, _ruifrok_row())


def read_stains(colours: np.ndarray) -> StainReading | None:
    """How to read a stained brightfield slide that holds haematoxylin, from its colours
    ``(N, 3)`` (:func:`stain_white`, :func:`haematoxylin_row`); ``None`` for any other
    picture (read as the mean of its channels)."""
    found = _slide(colours)
    if found is None:
        return None
    white, stained = found
    row = _estimate(stained)
    return StainReading(white, row or tuple(float(v) for v in _ruifrok_row()))


def sample_colours(image, axis: int) -> np.ndarray:
    """Up to about :data:`SAMPLE_PIXELS` colours ``(N, 3)`` of ``image`` (channel axis
    ``axis``, alpha dropped): a regular subsample of every plane of a small stack, of a
    few evenly spread planes of a long one; a lazy image is read there only."""
    shape = tuple(np.shape(image))
    nd = len(shape)
    spatial = [i for i in range(nd) if i != axis]
    lead = spatial[:-2]
    planes = list(np.ndindex(*[shape[i] for i in lead]))
    if len(planes) > 8:
        planes = [planes[int(i)] for i in np.linspace(0, len(planes) - 1, 8).round()]
    per_plane = max(1, SAMPLE_PIXELS // len(planes))
    step = max(1, int(np.ceil(np.sqrt(shape[spatial[-2]] * shape[spatial[-1]] / per_plane))))
    out = []
    for index in planes:
        key: list = [slice(None)] * nd
        for i, j in zip(lead, index):
            key[i] = j
        key[spatial[-2]] = key[spatial[-1]] = slice(None, None, step)
        plane = np.asarray(image[tuple(key)])  # (Y, X) and the channels, in their order
        kept = [i for i in range(nd) if isinstance(key[i], slice)]
        out.append(np.moveaxis(plane, kept.index(axis), -1)[..., :3].reshape(-1, 3))
    return np.concatenate(out).astype(np.float32, copy=False)


def stain_white(colours: np.ndarray) -> tuple[float, float, float] | None:
    """The white of a stained brightfield slide that holds haematoxylin (light, coloured
    and with haematoxylin: :data:`STAINED_LIGHT`, :data:`STAINED_ANGLE`,
    :data:`STAINED_HAEMATOXYLIN`), from its colours ``(N, 3)``; ``None`` for any other
    picture (read as the mean of its channels).

    Whether it is coloured is judged against each channel's own white (its 99.8th
    percentile), so a lamp's or a camera's tint is no colour. Its stains are read against
    a neutral white, the brightest channel's: a patch all tissue has no glass to measure
    the lamp's colour on, and its lightest pink is no white."""
    found = _slide(colours)
    return None if found is None else found[0]


def _slide(colours: np.ndarray):
    """:func:`stain_white`'s decision, with the optical densities of the slide's stained
    pixels against that white (what :func:`read_stains` estimates the stains on)."""
    c = np.asarray(colours, np.float32).reshape(-1, 3)
    c = c[np.isfinite(c).all(axis=1)]
    if len(c) < 16:
        return None
    own = np.percentile(c, 99.8, axis=0)
    if not (own > 0).all():
        return None
    if np.median((c / own).min(axis=1)) < STAINED_LIGHT:
        return None
    stained = _stained(c, own)
    if len(stained) < 16 or np.median(_angle(stained, np.ones(3))) < STAINED_ANGLE:
        return None
    white = (float(own.max()),) * 3
    stained = _stained(c, white)
    if len(stained) < 16:
        return None
    near = _angle(stained, _haematoxylin_vector()) < HAEMATOXYLIN_ANGLE
    if np.mean(near) < STAINED_HAEMATOXYLIN:
        return None
    return white, stained


def haematoxylin_row(colours: np.ndarray, white) -> tuple[float, float, float] | None:
    """The row that reads haematoxylin out of this slide's optical densities, from its
    own two stains (Macenko's estimate), or ``None`` where the slide does not show two
    stains apart (:data:`STAIN_SEPARATION`, :data:`STAIN_DRIFT`, :data:`STAIN_PIXELS`).

    The stained pixels' optical densities span a plane; the two stains are its extreme
    directions (:data:`STAIN_PERCENTILE`). Haematoxylin is the one that absorbs more
    red (blue-purple; eosin is pink, DAB brown). Unmixed by least squares, the other
    stain, however dense, adds no haematoxylin."""
    return _estimate(_stained(np.asarray(colours, np.float32).reshape(-1, 3), white))


def _estimate(stained: np.ndarray) -> tuple[float, float, float] | None:
    """:func:`haematoxylin_row` from the stained pixels' optical densities ``(N, 3)``."""
    od = np.asarray(stained, np.float64)
    if len(od) < STAIN_PIXELS:
        return None
    od = od[:: max(1, len(od) // STAIN_SAMPLE)]
    _, vectors = np.linalg.eigh(np.cov(od.T))
    plane = vectors[:, ::-1][:, :2]
    plane = plane * np.where(plane.sum(axis=0) < 0, -1.0, 1.0)
    projected = od @ plane
    angles = np.arctan2(projected[:, 1], projected[:, 0])
    # each pixel counts by its density: a faint pixel's colour is bent by the thin stain
    # every pixel holds (tissue's pale haematoxylin, the nuclei's eosin), a dense one
    # points along its stain (RESULTS, "Each slide's own stain colours")
    order = np.argsort(angles)
    weight = np.cumsum(np.linalg.norm(od, axis=1)[order])
    weight /= weight[-1]
    stains = []
    for q in (STAIN_PERCENTILE, 100 - STAIN_PERCENTILE):
        a = angles[order][min(int(np.searchsorted(weight, q / 100)), len(order) - 1)]
        v = plane @ np.array([np.cos(a), np.sin(a)])
        stains.append(v / max(np.linalg.norm(v), 1e-12) * (1.0 if v.sum() >= 0 else -1.0))
    h, other = sorted(stains, key=lambda v: -v[0])
    if (
        _angle(h[None], other)[0] < STAIN_SEPARATION
        or _angle(h[None], _haematoxylin_vector())[0] > STAIN_DRIFT
    ):
        return None
    row = np.linalg.pinv(np.stack([h, other], axis=1))[0]
    return tuple(float(v) for v in row)


def _ruifrok_row() -> np.ndarray:
    """Ruifrok and Johnston's haematoxylin row (:data:`skimage.color.hed_from_rgb`)."""
    from skimage.color import hed_from_rgb

    return np.asarray(hed_from_rgb[:, 0], np.float32)


def _stained(colours: np.ndarray, white) -> np.ndarray:
    """The optical densities of the stained pixels (:data:`STAINED_DENSITY`)."""
    od = _density(colours, white)
    return od[od.sum(axis=1) > STAINED_DENSITY]


def _angle(od: np.ndarray, direction) -> np.ndarray:
    """Degrees between each optical density ``(N, 3)`` and ``direction``."""
    d = np.asarray(direction, np.float32)
    cos = od @ (d / np.linalg.norm(d)) / np.maximum(np.linalg.norm(od, axis=1), 1e-12)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def _haematoxylin_vector() -> np.ndarray:
    """Haematoxylin's optical density per R, G, B (Ruifrok and Johnston)."""
    from skimage.color import rgb_from_hed

    return np.asarray(rgb_from_hed[0], np.float32)


def _density(colours: np.ndarray, white) -> np.ndarray:
    """Optical density ``-log(I / white)`` per channel, light above the white as 0."""
    share = np.clip(np.asarray(colours, np.float32) / np.asarray(white, np.float32), DARKEST, 1.0)
    return -np.log(share)


def haematoxylin(colours, reading: StainReading) -> np.ndarray:
    """The haematoxylin density of colours ``(..., 3)`` (or RGBA, alpha dropped) of a
    slide read as ``reading``, as ``(..., 1)`` float32: nuclei bright, unstained glass
    and eosin or DAB alone near zero."""
    od = _density(np.asarray(colours)[..., :3], reading.white)
    row = np.asarray(reading.row, np.float32)[:, None]
    return (od @ row).astype(np.float32, copy=False)
