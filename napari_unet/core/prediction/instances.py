"""From class probabilities to instance labels (scikit-image seeded watershed), and the
search for the post-processing settings that suit a user's own objects.

Two ways to place one seed per object, both grown by a watershed over the foreground:

``"distance"``
    Seeds are the maxima of the smoothed distance transform of the confident *cores*
    (object class confident and above the boundary class; holes that the core encloses
    in the foreground filled, so a textured object is not cut at its dark spots). Round
    objects whose cores touch through a thin neck are still told apart. The maxima must
    stand ``h`` px above their surroundings, ``h = max(0.5, split · r − 2)`` with ``r``
    the typical core radius, so large objects are not cut into pieces. Where a bundled
    model splits more readily than its own ``split`` (an enlarged image), the cuts its
    own split would not make are undone where the network sees one object across them
    (:func:`join_unsupported`: an enlarged rod stays one object).
``"boundary"``
    Seeds are the connected cores themselves — what the network calls object minus
    what it calls boundary — grown over the boundary probability. Nothing assumes a
    shape, so rods, bent and branched objects stay whole.

Both work in 2-D (``(Y, X, C)`` probabilities) and on a volume (``(Z, Y, X, C)``): then the
cores are 6-connected through z, the distance transform counts a z step as ``z_scale``
pixels, and the watershed grows the seeds in 3-D, so an object is one id through its planes
and objects touching in 3-D are split as in a plane.

Which one, and with which thresholds, depends on the objects: :func:`search_postprocessing`
picks the setting that maximises instance F1 on the user's own annotation after each
training run, and the model file keeps it (as StarDist optimises its thresholds).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np

from ..errors import UserInputError

SEED_MODES = ("distance", "boundary")


@dataclass(frozen=True)
class PostprocessParams:
    """Settings that turn class probabilities into instances.

    Parameters
    ----------
    threshold
        Foreground probability ``1 - P(background)`` above which a pixel is object.
    core_threshold
        Object-class probability above which a pixel is a confident core.
    seed_mode
        ``"distance"`` (round objects) or ``"boundary"`` (any shape); see the module.
    split
        How readily the distance mode splits touching objects (smaller: more splits).
    min_size
        Instances smaller than this (pixels) are dropped.
    join_split
        ``None``, or a ``split`` above ``split``: in a plane, the distance mode's cuts
        that this ``split`` would not make are undone where the network sees one object
        across them (:func:`join_unsupported`). Set by
        :meth:`~napari_unet.core.prediction.predictor.Predictor.params_at` for an enlarged
        image; never stored with a model.
    min_share
        ``None``, or a share of the median instance's area (a volume's: volume): the
        instances smaller than that are specks (:func:`absorb_specks`; 0: none are).
        Prediction makes ``None`` :data:`SPECK_SHARE` (:func:`with_specks`).
    """

    threshold: float = 0.5
    core_threshold: float = 0.7
    seed_mode: str = "distance"
    split: float = 0.3
    min_size: int = 10
    join_split: float | None = None
    min_share: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 < float(self.threshold) < 1.0:
            raise UserInputError(f"threshold must be between 0 and 1, got {self.threshold}")
        if not 0.0 <= float(self.core_threshold) < 1.0:
            raise UserInputError(f"core threshold must be in [0, 1), got {self.core_threshold}")
        if self.seed_mode not in SEED_MODES:
            raise UserInputError(f"seed mode must be one of {SEED_MODES}, got {self.seed_mode!r}")
        if int(self.min_size) < 0:
            raise UserInputError(f"min size must be 0 or more, got {self.min_size}")
        if self.join_split is not None and not 0.0 < float(self.join_split) <= 1.0:
            raise UserInputError(f"join split must be in (0, 1], got {self.join_split}")
        if self.min_share is not None and not 0.0 <= float(self.min_share) < 1.0:
            raise UserInputError(f"min share must be in [0, 1), got {self.min_share}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> PostprocessParams:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (d or {}).items() if k in names})


#: A model that learned many sizes (a bundled one, never fine-tuned at a user's scale)
#: splits as its ``split`` says on images seen at their own size or shrunk, and at most
#: by :data:`SPLIT_ENLARGED_TO` on images enlarged :data:`SPLIT_ENLARGED` times or more
#: (log-linear between): an enlarged image has no detail finer than its old pixels, so
#: two small touching objects meet in a smooth, shallow neck; an image seen at its size
#: (or shrunk) keeps the texture of large objects, whose dark spots make shallow dips
#: the watershed must not cut at (benchmarks/RESULTS.md, "Widths per cell: … splits by
#: the scale"). The bundled generalist keeps split 0.8 for that reason.
SPLIT_ENLARGED = 3.0
#: The ``split`` of :func:`split_at` for images enlarged :data:`SPLIT_ENLARGED` times.
SPLIT_ENLARGED_TO = 0.3


def split_at(split: float, factor: float) -> float:
    """The ``split`` a model that learned many sizes uses in a plane seen at ``factor``
    (see :data:`SPLIT_ENLARGED`); never more than its own."""
    if split <= SPLIT_ENLARGED_TO or factor <= 1.0:
        return split
    if factor >= SPLIT_ENLARGED:
        return SPLIT_ENLARGED_TO
    u = math.log(factor) / math.log(SPLIT_ENLARGED)
    return split - (split - SPLIT_ENLARGED_TO) * u


def foreground_probability(prob: np.ndarray) -> np.ndarray:
    """``1 - P(background)``: the probability that a pixel belongs to any object."""
    return (1.0 - prob[..., 0]).astype(np.float32, copy=False)


def interior_and_boundary(prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The probability of any object class (inside an object) and of the boundary class,
    of ``(…, C)`` probabilities ``[bg, classes…, boundary]``."""
    # one object class: its own channel (a view; the sum of one value is that value)
    interior = prob[..., 1] if prob.shape[-1] == 3 else prob[..., 1:-1].sum(-1)
    return interior, prob[..., -1]


def instances_from_probabilities(
    prob: np.ndarray,
    threshold: float = 0.5,
    min_size: int = 10,
    core_threshold: float = 0.7,
    seed_mode: str = "distance",
    split: float = 0.3,
    z_scale: float = 1.0,
    join_split: float | None = None,
    min_share: float | None = None,
) -> np.ndarray:
    """Instance labels from ``(Y, X, C)`` probabilities ``[bg, classes…, boundary]``, or
    from a volume's ``(Z, Y, X, C)`` (3-D instances).

    Foreground regions with no seed become one instance each (nothing predicted as
    object disappears), and instances smaller than ``min_size`` pixels (voxels) are
    dropped. ``z_scale``: a volume's z step over its pixel size (anisotropy).

    Returns
    -------
    numpy.ndarray
        ``int32`` labels, 0 = background, ids 1..N.
    """
    return _Instances(prob, keep=False, z_scale=z_scale).labels(
        PostprocessParams(
            threshold, core_threshold, seed_mode, split, min_size, join_split, min_share
        )
    )


class _Instances:
    """Post-processing of one probability map, caching what several settings share.

    The steps are those of scikit-image's ``h_maxima``, ``ndi.label`` and ``watershed``
    on SciPy's distance transform, with the same results to the bit and the same ids;
    the slow ones are computed another way (see :func:`_h_maxima`,
    :func:`_distance_transform`, :func:`relabel_and_filter`).
    """

    def __init__(self, prob: np.ndarray, keep: bool = True, z_scale: float = 1.0) -> None:
        if prob.ndim not in (3, 4):
            raise UserInputError(
                f"class probabilities must be (Y, X, C) or (Z, Y, X, C), got {prob.shape}"
            )
        z_scale = float(z_scale)
        if not (np.isfinite(z_scale) and z_scale > 0):
            raise UserInputError(f"z scale must be a positive number, got {z_scale}")
        #: a volume's voxel size in pixels ``(z_scale, 1, 1)``; ``None`` for a plane
        self.sampling = (z_scale, 1.0, 1.0) if prob.ndim == 4 else None
        self.fg_prob = foreground_probability(prob)
        self.interior, self.boundary = interior_and_boundary(prob)
        self._cache: dict = {}
        #: ``False``: one setting only (:func:`instances_from_probabilities`); each map is
        #: let go as soon as the steps after it no longer need it, so one block's
        #: post-processing holds a few maps at a time, not all of them.
        self.keep = keep
        self._used = False

    def _cached(self, key, make):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def _drop(self, *kinds: str) -> None:
        """Forget the cached maps of these kinds (one-setting use only)."""
        if not self.keep:
            for key in [k for k in self._cache if k[0] in kinds]:
                del self._cache[key]

    def _foreground(self, threshold: float) -> np.ndarray:
        """The foreground mask."""
        return self._cached(("fg", threshold), lambda: self.fg_prob > threshold)

    def _blobs(self, threshold: float):
        """The foreground's 4-connected blobs ``(blobs, n)``."""
        from scipy import ndimage as ndi

        return self._cached(("blobs", threshold), lambda: ndi.label(self._foreground(threshold)))

    def _core(self, threshold: float, core_threshold: float):
        """The foreground and the confident cores ``(fg, core)``."""

        def make():
            fg = self._foreground(threshold)
            core = fg & (self.interior > core_threshold) & (self.interior > self.boundary)
            return fg, _fill_holes(core, fg)

        return self._cached(("core", threshold, core_threshold), make)

    def _distances(self, threshold: float, core_threshold: float):
        """The cores' distance transform and its smoothed version ``(edt, dist)`` (only
        the distance seeds need them)."""

        def make():
            from scipy import ndimage as ndi

            core = self._core(threshold, core_threshold)[1]
            if self.sampling is not None:  # a volume: distances and smoothing in pixels
                edt = _distance_transform_nd(core, self.sampling)
                sigma = tuple(1.0 / s for s in self.sampling)
                return edt, ndi.gaussian_filter(edt, sigma, mode="nearest", truncate=4.0)
            edt = _distance_transform(core)
            # what skimage.filters.gaussian(edt, 1.0) computes for a float64 image
            return edt, ndi.gaussian_filter(edt, 1.0, mode="nearest", truncate=4.0)

        return self._cached(("distances", threshold, core_threshold), make)

    def _core_regions(self, threshold: float, core_threshold: float):
        """The 4-connected core regions ``(labels, n)``."""
        from scipy import ndimage as ndi

        return self._cached(
            ("regions", threshold, core_threshold),
            lambda: ndi.label(self._core(threshold, core_threshold)[1]),
        )

    def labels(self, p: PostprocessParams) -> np.ndarray:
        from scipy import ndimage as ndi
        from skimage.segmentation import watershed

        if not self.keep:
            if self._used:
                raise RuntimeError("a one-setting post-processing runs once")  # a bug
            self._used = True
        fg, core = self._core(p.threshold, p.core_threshold)
        if not self.keep:
            self.fg_prob = None  # the foreground mask is made
        dist = None
        radius = 0.0
        if p.seed_mode != "boundary":
            edt, dist = self._distances(p.threshold, p.core_threshold)
        if not core.any():
            seeds = np.zeros(fg.shape, np.int32)
        elif p.seed_mode == "boundary":
            seeds = self._core_regions(p.threshold, p.core_threshold)[0]
        else:
            regions, n = self._core_regions(p.threshold, p.core_threshold)
            radius = _typical_radius(regions, n, edt)
            h = max(0.5, p.split * radius - 2.0)
            bulk = _typical_radius(regions, n, edt, by_volume=True) if dist.ndim == 3 else 0.0
            del regions, edt
            self._drop("regions", "distances")  # ``dist`` stays (below), the transform goes
            if dist.ndim == 2:
                maxima = _h_maxima(dist, h)
            else:
                maxima = _h_maxima_volume(dist, h, bulk, self.sampling)
            seeds, _ = ndi.label(maxima & core)
        del core
        self._drop("regions", "distances", "core")
        blobs, nb = self._blobs(p.threshold)
        if nb:
            # foreground blobs that hold no seed (tiny or unsure objects) keep a seed of
            # their own so that nothing predicted as object disappears
            seeded = np.zeros(nb + 1, bool)
            seeded[blobs[seeds > 0]] = True
            seeded[0] = True
            orphan = ~seeded[blobs]
            if orphan.any():
                top = int(seeds.max())
                # int32 ids as long as they fit (the watershed copies ids, whatever type)
                kind = np.int32 if top + nb < 2**31 else np.int64
                if (p.seed_mode == "boundary" and self.keep) or seeds.dtype != kind:
                    seeds = seeds.astype(kind)  # a copy: the core regions stay cached
                seeds[orphan] = blobs[orphan] + top
            del orphan
        del blobs
        self._drop("blobs")
        if p.seed_mode == "boundary":
            landscape = self.boundary - self.interior
        elif self.keep:
            landscape = -(dist + self.interior)
        else:  # the same values, in the smoothed distances' own memory
            landscape = dist
            np.add(landscape, self.interior, out=landscape)
            np.negative(landscape, out=landscape)
        del dist
        joining = p.seed_mode != "boundary" and fg.ndim == 2 and (p.join_split or 0) > p.split
        interior, boundary = (self.interior, self.boundary) if joining else (None, None)
        if not self.keep:  # only the join (below) still reads them
            self.interior = self.boundary = None
        labels = watershed(landscape, markers=seeds, mask=fg)
        del seeds, fg
        if joining:
            depth = max(0.5, p.join_split * radius - 2.0)
            labels = join_unsupported(labels, -landscape, interior, boundary, depth)
        del landscape, interior, boundary
        if p.min_share:
            labels = absorb_specks(labels, p.min_share, p.min_size)
        return relabel_and_filter(labels, p.min_size)


#: :func:`join_unsupported` undoes a cut only where the network's mean boundary
#: probability along it is below this, its mean object probability above
#: :data:`JOIN_INTERIOR`, the saddle stands at least :data:`JOIN_RIDGE` of the lower of the
#: two maxima (a ridge, not a neck: touching round objects keep their cut) and the two
#: pieces fill :data:`JOIN_SOLIDITY` of their convex hull (a rod, not a V or an X of two).
#: Chosen on development images (benchmarks/RESULTS.md, "Cuts the network does not see").
JOIN_BOUNDARY = 0.10
JOIN_INTERIOR = 0.75
JOIN_RIDGE = 0.7
JOIN_SOLIDITY = 0.8


def join_unsupported(
    labels: np.ndarray,
    height: np.ndarray,
    interior: np.ndarray,
    boundary: np.ndarray,
    depth: float,
) -> np.ndarray:
    """``labels`` with the cuts the network does not see undone.

    A distance-mode watershed cuts where the distance ``height`` it flooded has a saddle
    between two maxima. Along a rod, or any long object enlarged, the ridge is nearly
    flat, and a split that readily parts small round objects cuts it into pieces. Two
    touching instances are joined when all of these hold:

    - the shallower of their maxima stands less than ``depth`` above the saddle between
      them (the cut the model's own split would not make), and the saddle is at least
      :data:`JOIN_RIDGE` of that maximum (a ridge, not the neck of two round objects);
    - the network saw one object across the cut: along it (the pixel pairs of the two
      instances that are 4-neighbours, away from the outline and from third objects) its
      mean boundary probability is below :data:`JOIN_BOUNDARY` and its mean object
      probability above :data:`JOIN_INTERIOR`;
    - the two together are about convex (:data:`JOIN_SOLIDITY`): two rods that cross or
      meet at an angle stay two.

    Two objects that touch keep the boundary the network learned between them, so they
    stay two. Joins chain (a rod cut in three becomes one). 2-D ``labels``; the ids that
    remain are not renumbered.
    """
    from scipy import ndimage as ndi

    n = int(labels.max(initial=0))
    if n < 2:
        return labels
    # the ends of a cut meet the objects' outline or a third object, where the network
    # sees boundary whatever the cut: the cut is judged by its pixels with nothing but
    # the two instances within 2 px (all of its pixels where it has none such)
    lo5, hi5 = ndi.minimum_filter(labels, 5), ndi.maximum_filter(labels, 5)
    parts: dict[str, list] = {k: [] for k in ("a", "b", "h", "bnd", "int", "inside")}
    for one, two, cut, a, b in _contacts(labels):
        if not cut.any():
            continue
        low, high = np.minimum(a, b), np.maximum(a, b)
        parts["a"].append(low)
        parts["b"].append(high)
        parts["h"].append(np.minimum(height[one][cut], height[two][cut]))
        parts["bnd"].append(np.maximum(boundary[one][cut], boundary[two][cut]))
        parts["int"].append(np.minimum(interior[one][cut], interior[two][cut]))
        parts["inside"].append(
            (lo5[one][cut] == low)
            & (lo5[two][cut] == low)
            & (hi5[one][cut] == high)
            & (hi5[two][cut] == high)
        )
    if not parts["a"]:
        return labels
    a, b = (np.concatenate(parts[k]).astype(np.int64) for k in ("a", "b"))
    pairs, inverse = np.unique(a * (n + 1) + b, return_inverse=True)
    saddle = np.full(len(pairs), -np.inf)
    np.maximum.at(saddle, inverse, np.concatenate(parts["h"]))
    inside = np.concatenate(parts["inside"])
    judged = np.bincount(inverse, inside, len(pairs)) > 0
    weight = np.where(judged[inverse], inside, True).astype(np.float64)
    count = np.bincount(inverse, weight, len(pairs))
    mean_bnd = np.bincount(inverse, weight * np.concatenate(parts["bnd"]), len(pairs)) / count
    mean_int = np.bincount(inverse, weight * np.concatenate(parts["int"]), len(pairs)) / count
    peak = np.full(n + 1, -np.inf)
    np.maximum.at(peak, labels.ravel(), height.ravel())
    pa, pb = pairs // (n + 1), pairs % (n + 1)
    lower = np.minimum(peak[pa], peak[pb])
    shallow = (lower - saddle < depth) & (saddle >= JOIN_RIDGE * lower)
    join = shallow & (mean_bnd < JOIN_BOUNDARY) & (mean_int > JOIN_INTERIOR)
    if not join.any():
        return labels
    boxes = ndi.find_objects(labels)
    for k in np.flatnonzero(join):
        join[k] = _solidity(labels, boxes, int(pa[k]), int(pb[k])) >= JOIN_SOLIDITY
    # the pieces of one object are a connected component of the joins; each takes the
    # smallest id among them (the background, 0, joins nothing)
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    ones = np.ones(int(join.sum()))
    graph = coo_matrix((ones, (pa[join], pb[join])), shape=(n + 1, n + 1))
    component = connected_components(graph, directed=False)[1]
    smallest = np.full(component.max() + 1, n + 1)
    np.minimum.at(smallest, component, np.arange(n + 1))
    return smallest[component].astype(labels.dtype)[labels]


#: Instances smaller than this share of the median instance's area in their plane (or
#: volume in a volume) are specks (:func:`absorb_specks`): about 0.28 of its width (0.43 in
#: 3-D). Chosen on development images (benchmarks/RESULTS.md, "Specks").
SPECK_SHARE = 0.08


def with_specks(params: PostprocessParams) -> PostprocessParams:
    """``params`` with the specks rule where they name no share (:data:`SPECK_SHARE`);
    a share of their own, 0 included, is kept (what prediction applies:
    :meth:`~napari_unet.core.prediction.predictor.Predictor.params_at`)."""
    if params.min_share is not None:
        return params
    return replace(params, min_share=SPECK_SHARE)


def absorb_specks(labels: np.ndarray, share: float, min_size: int = 0) -> np.ndarray:
    """``labels`` (a plane or a volume) with its specks, the instances smaller than
    ``share`` of the median instance's area (volume), merged into the instance they share
    the longest border with (a piece the watershed cut off an object goes back to it), or
    dropped where they touch no instance but specks (a bright speck of debris among
    nuclei). The median is over the instances of at least ``min_size`` pixels (voxels);
    the ids that remain are not renumbered.
    """
    flat = labels.ravel()
    n = int(flat.max(initial=0))
    if n < 2:
        return labels
    area = np.bincount(flat, minlength=n + 1)
    counted = area[1:][area[1:] >= max(min_size, 1)]
    if counted.size < 2:
        return labels
    speck = (area > 0) & (area < share * float(np.median(counted)))
    speck[0] = False
    if not speck.any():
        return labels
    table = np.arange(n + 1, dtype=labels.dtype)
    table[speck] = 0
    small, other = [], []
    for _, _, _, a, b in _contacts(labels):
        for s, o in ((a, b), (b, a)):
            keep = speck[s] & ~speck[o]
            small.append(s[keep])
            other.append(o[keep])
    s, o = np.concatenate(small).astype(np.int64), np.concatenate(other).astype(np.int64)
    if s.size:
        pairs, contact = np.unique(s * (n + 1) + o, return_counts=True)
        ps, po = pairs // (n + 1), pairs % (n + 1)
        order = np.lexsort((contact, ps))  # by speck, its longest contact last
        ps, po = ps[order], po[order]
        last = np.append(ps[1:] != ps[:-1], True)
        table[ps[last]] = po[last]
    return table[labels]


def _contacts(labels: np.ndarray):
    """Where two instances touch, axis by axis: ``(one, two, cut, a, b)``, the slices of
    the first and second pixel of each pair of neighbours along the axis, the mask (of
    ``labels[one]``'s shape) of the pairs whose pixels are two different instances, and
    those instances' ids."""
    for axis in range(labels.ndim):
        one = [slice(None)] * labels.ndim
        two = [slice(None)] * labels.ndim
        one[axis], two[axis] = slice(0, -1), slice(1, None)
        one, two = tuple(one), tuple(two)
        la, lb = labels[one], labels[two]
        cut = (la != lb) & (la > 0) & (lb > 0)
        yield one, two, cut, la[cut], lb[cut]


def _solidity(labels: np.ndarray, boxes: list, i: int, j: int) -> float:
    """The area of instances ``i`` and ``j`` together over that of their convex hull
    (pixels as unit squares)."""
    from scipy import ndimage as ndi
    from scipy.spatial import ConvexHull, QhullError

    bi, bj = boxes[i - 1], boxes[j - 1]
    box = tuple(slice(min(u.start, v.start), max(u.stop, v.stop)) for u, v in zip(bi, bj))
    crop = labels[box]
    both = (crop == i) | (crop == j)
    area = int(both.sum())
    # the hull of the pixels' corners: those of the outline pixels make the same hull
    ys, xs = np.nonzero(both & ~ndi.binary_erosion(both))
    corners = np.concatenate(
        [np.stack([ys + dy, xs + dx], 1) for dy in (0, 1) for dx in (0, 1)]
    ).astype(np.float64)
    try:
        hull = ConvexHull(corners).volume
    except QhullError:
        return 1.0
    return area / hull if hull > 0 else 1.0


def _fill_holes(core: np.ndarray, fg: np.ndarray) -> np.ndarray:
    """``core`` with its holes filled: the pieces of non-core that it encloses (touching
    no side of the array) and that lie wholly in the foreground ``fg``.

    A textured object (a nucleus with nucleoli, speckles, a dark spot) leaves holes in
    its core where the network is less sure; the distance transform then finds several
    maxima in one object and the watershed cuts it. A hole cannot part two objects: it is
    enclosed by one core (non-core pieces are taken fully connected, so the core around
    each is one connected region). Holes that hold background are kept: the lumen of a
    ring of cells must not join them into one seed."""
    from scipy import ndimage as ndi

    holes, n = ndi.label(~core, structure=np.ones((3,) * core.ndim, bool))
    if n == 0:
        return core
    fill = np.ones(n + 1, bool)
    fill[0] = False
    for axis in range(core.ndim):
        for end in (0, -1):
            fill[np.take(holes, end, axis=axis)] = False
    # a piece that holds any background pixel stays open
    fill[holes[~fg]] = False
    if not fill.any():
        return core
    return core | fill[holes]


def _distance_transform(mask: np.ndarray) -> np.ndarray:
    """``scipy.ndimage.distance_transform_edt(mask)`` for a 2-D mask, the same float64
    values.

    With the ``edt`` package (a faster exact transform; squared distances are whole
    numbers, exact in its float32 below 2**24) the square root is taken in float64
    as SciPy does; otherwise SciPy's feature transform, with the distances computed only
    inside the mask (0 elsewhere).
    """
    from scipy import ndimage as ndi

    mask = np.asarray(mask, bool)
    if mask.all() or not mask.any():  # no background, or nothing: SciPy's conventions
        return ndi.distance_transform_edt(mask)
    try:
        import edt
    except ImportError:
        edt = None
    if edt is not None:
        squared = edt.edtsq(mask, black_border=False, parallel=1)
        if float(squared.max()) < 2**24:
            return np.sqrt(squared, dtype=np.float64)
    ft = ndi.distance_transform_edt(mask, return_distances=False, return_indices=True)
    where = np.flatnonzero(mask)
    y, x = np.divmod(where, mask.shape[1])
    dy = ft[0].ravel()[where] - y
    dx = ft[1].ravel()[where] - x
    out = np.zeros(mask.shape, np.float64)
    # SciPy squares and adds the offsets in float64: exact for these integers
    out.ravel()[where] = np.sqrt((dy * dy + dx * dx).astype(np.float64))
    return out


def volume_min_size(min_size: int, factor: float = 1.0, z_scale: float = 1.0) -> int:
    """The smallest instance of a volume (voxels of the image) that matches a plane's
    ``min_size`` (pixels at the model's scale, the image resized by ``factor``): a ball
    as wide as the disc of that area, its z steps ``z_scale`` pixels long."""
    if int(min_size) <= 0:
        return 0
    radius = np.sqrt(float(min_size) / np.pi) / float(factor)
    return max(1, int(round(4.0 / 3.0 * np.pi * radius**3 / float(z_scale))))


def _distance_transform_nd(mask: np.ndarray, sampling: tuple[float, ...]) -> np.ndarray:
    """The Euclidean distance transform of a volume's ``mask`` with voxel size
    ``sampling`` (float64; the ``edt`` package when present, else SciPy's)."""
    from scipy import ndimage as ndi

    mask = np.asarray(mask, bool)
    if mask.all() or not mask.any():
        return ndi.distance_transform_edt(mask, sampling=sampling)
    try:
        import edt
    except ImportError:
        return ndi.distance_transform_edt(mask, sampling=sampling)
    squared = edt.edtsq(mask, anisotropy=sampling, black_border=False, parallel=1)
    return np.sqrt(squared, dtype=np.float64)


def _h_maxima_volume(
    image: np.ndarray, h: float, radius: float, sampling: tuple[float, ...]
) -> np.ndarray:
    """``skimage.morphology.h_maxima(image, h) > 0`` of a volume's smoothed distances,
    on a grid halved along each axis where the ``radius`` of the objects most voxels are
    in (pixels) spans at least 8 steps of it (a maximum of each 2 × 2 (× 2) block, then each block's
    voxels): the reconstruction costs seconds per million voxels, and seeds of objects
    that many voxels across lose nothing at half resolution."""
    from skimage.morphology import h_maxima

    step = tuple(2 if radius / s >= 8 else 1 for s in sampling)
    if step == (1,) * image.ndim:
        return h_maxima(image, h) > 0
    pad = [(0, (-n) % k) for n, k in zip(image.shape, step)]
    a = np.pad(image, pad, mode="edge")
    shape = []
    for n, k in zip(a.shape, step):
        shape += [n // k, k]
    pooled = a.reshape(shape).max(axis=tuple(range(1, 2 * image.ndim, 2)))
    coarse = h_maxima(pooled, h) > 0
    for axis, k in enumerate(step):
        coarse = np.repeat(coarse, k, axis=axis)
    fine = coarse[tuple(slice(0, n) for n in image.shape)]
    # within each marked block, the voxels near the block's top (a seed, not a cube)
    top = pooled
    for axis, k in enumerate(step):
        top = np.repeat(top, k, axis=axis)
    top = top[tuple(slice(0, n) for n in image.shape)]
    return fine & (image >= top - 0.5 * h)


def _h_maxima(image: np.ndarray, h: float) -> np.ndarray:
    """``skimage.morphology.h_maxima(image, h) > 0`` for a 2-D float image (8-connected
    neighbours), the same pixels, without reconstructing the whole image.

    scikit-image marks ``p`` where ``image[p] - rec[p] >= h``, ``rec`` being the
    reconstruction by dilation of ``marker = image - h - resolution`` under ``image``:
    the largest over paths ending in ``p`` of the path's lowest pixel and its start's
    marker. So ``p`` is *not* marked exactly when a path of pixels ``x`` with
    ``image[p] - image[x] < h`` joins ``p`` to a pixel ``q`` with
    ``image[p] - marker[q] < h`` — a question about the connected region of such pixels
    around ``p``, asked here with the same floating-point subtractions as scikit-image.
    Only pixels that one geodesic dilation leaves at least ``h`` below ``image`` (about
    the local maxima) can be marked; each is decided on a window that grows until it
    holds the whole region or a higher pixel.
    """
    from scipy import ndimage as ndi

    lowest, highest = image.min(), image.max()
    if h > highest - lowest:
        return np.zeros(image.shape, bool)
    step = 2 * np.finfo(image.dtype).resolution

    def marker(values):
        """scikit-image's marker ``image - h - resolution``, the same operations."""
        return values - h - step * np.abs(values)

    if marker(highest) < lowest:  # h within rounding of the range: let skimage do it
        from skimage.morphology import h_maxima

        return h_maxima(image, h) > 0
    candidates = _h_candidates(image, h, lowest, max(abs(lowest), abs(highest)), marker)
    if candidates.size > max(20_000, image.size // 50):
        from skimage.morphology import h_maxima

        return h_maxima(image, h) > 0
    out = np.zeros(image.shape, bool)
    height, width = image.shape
    eight = np.ones((3, 3), bool)
    start = max(8, int(2 * h) + 2)
    for y, x in zip(*np.divmod(candidates, width)):
        top = image[y, x]
        r = start
        while True:
            y0, y1 = max(0, y - r), min(height, y + r + 1)
            x0, x1 = max(0, x - r), min(width, x + r + 1)
            near, _ = ndi.label((top - image[y0:y1, x0:x1]) < h, eight)
            region = near == near[y - y0, x - x0]
            if ((top - marker(image[y0:y1, x0:x1][region])) < h).any():
                break  # a path leads up to a marker within h: not a maximum
            if not (
                (y0 > 0 and region[0].any())
                or (y1 < height and region[-1].any())
                or (x0 > 0 and region[:, 0].any())
                or (x1 < width and region[:, -1].any())
            ):
                out[y, x] = True  # the whole region is in the window and none is higher
                break
            r *= 2
    return out


def _h_candidates(image: np.ndarray, h: float, lowest, largest, marker) -> np.ndarray:
    """Flat indices of the pixels that one geodesic dilation of the marker leaves at
    least ``h`` below ``image`` (``image - max over the 3×3 neighbourhood of marker
    >= h``, the neighbourhood clipped at the borders), leaving out pixels at the image's
    minimum: every path into them passes the minimum, so the reconstruction there is the
    minimum itself (the largest marker is above it).

    Such a pixel is no lower than its neighbours (to rounding), so a float32 maximum
    filter with a margin finds a few candidates first; the exact test runs on those.
    ``largest`` is the largest magnitude in ``image``.
    """
    height, width = image.shape
    rough = image.astype(np.float32)
    margin = np.float32(2.0**-20 * float(largest))  # float32 rounding, 4 times over
    top = _maximum_3x3(rough)
    top -= margin
    near_top = rough >= top
    del rough, top
    near_top &= image > lowest
    where = np.flatnonzero(near_top)
    del near_top
    y, x = np.divmod(where, width)
    highest_marker = np.full(where.size, -np.inf)
    for dy in (-1, 0, 1):
        yy = np.clip(y + dy, 0, height - 1)
        for dx in (-1, 0, 1):
            xx = np.clip(x + dx, 0, width - 1)
            np.maximum(highest_marker, marker(image[yy, xx]), out=highest_marker)
    return where[(image.ravel()[where] - highest_marker) >= h]


def _maximum_3x3(a: np.ndarray) -> np.ndarray:
    """``scipy.ndimage.maximum_filter(a, size=3, mode="nearest")`` of a 2-D array, by
    whole-array maxima of shifted views (several times faster than SciPy's filter)."""
    from scipy import ndimage as ndi

    if min(a.shape) < 3:
        return ndi.maximum_filter(a, size=3, mode="nearest")
    rows = np.empty_like(a)
    np.maximum(a[:, :-2], a[:, 2:], out=rows[:, 1:-1])
    np.maximum(rows[:, 1:-1], a[:, 1:-1], out=rows[:, 1:-1])
    np.maximum(a[:, 0], a[:, 1], out=rows[:, 0])
    np.maximum(a[:, -1], a[:, -2], out=rows[:, -1])
    out = np.empty_like(a)
    np.maximum(rows[:-2], rows[2:], out=out[1:-1])
    np.maximum(out[1:-1], rows[1:-1], out=out[1:-1])
    np.maximum(rows[0], rows[1], out=out[0])
    np.maximum(rows[-1], rows[-2], out=out[-1])
    return out


def instance_classes(prob: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The object class of every instance, by a vote of its pixels.

    Each instance takes the object class whose probability, summed over the
    instance's pixels, is largest (a soft majority vote: confident interior pixels
    count most, boundary pixels little).

    Parameters
    ----------
    prob
        Class probabilities ``(Y, X, C)`` over ``[background, classes 1..n, boundary]``.
    labels
        Instance ids ``(Y, X)``, 0 = background.

    Returns
    -------
    numpy.ndarray
        ``uint8`` class (1..n) indexed by instance id; entry 0 (background) is 0, as is
        any id that labels no pixel.
    """
    labels = np.asarray(labels)
    n_ids = int(labels.max(initial=0)) + 1
    flat = labels.ravel()
    n_classes = prob.shape[-1] - 2
    sums = np.stack(
        [
            np.bincount(flat, weights=prob[..., 1 + k].ravel(), minlength=n_ids)
            for k in range(n_classes)
        ],
        axis=-1,
    )
    present = np.bincount(flat, minlength=n_ids) > 0
    votes = (np.argmax(sums, axis=-1) + 1).astype(np.uint8)
    votes[~present] = 0
    votes[0] = 0
    return votes


def _typical_radius(regions: np.ndarray, n: int, edt: np.ndarray, by_volume: bool = False) -> float:
    """Median over the ``n`` labelled core ``regions`` of their largest inscribed radius
    (pixels; ``edt`` is the distance transform of the cores); ``by_volume``: over their
    pixels instead (the radius of the region most pixels are in, small fragments count
    little)."""
    if n == 0:
        return 0.0
    inside = regions > 0
    largest = np.zeros(n + 1, np.float64)
    np.maximum.at(largest, regions[inside], edt[inside])
    if not by_volume:
        return float(np.median(largest[1:]))
    size = np.bincount(regions[inside], minlength=n + 1)[1:]
    order = np.argsort(largest[1:])
    cumulative = np.cumsum(size[order])
    return float(largest[1:][order][np.searchsorted(cumulative, cumulative[-1] / 2)])


def relabel_and_filter(labels: np.ndarray, min_size: int = 0) -> np.ndarray:
    """Drop instances below ``min_size`` pixels and renumber ids as 1..N (int32),
    in the order of the old ids."""
    labels = np.asarray(labels)
    flat = labels.ravel()
    top = int(flat.max(initial=0))
    if flat.size == 0 or int(flat.min()) < 0 or top > 4 * flat.size + 1024:
        # negative or very sparse ids: sort them
        ids, inverse, counts = np.unique(flat, return_inverse=True, return_counts=True)
        keep = (ids != 0) & (counts >= max(min_size, 1))
        new_ids = np.zeros(len(ids), np.int32)
        new_ids[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
        return new_ids[inverse].reshape(labels.shape)
    if flat.dtype.kind == "b" or flat.dtype.itemsize == 8 and flat.dtype.kind == "u":
        flat = flat.astype(np.intp)  # what bincount cannot take as it is
    counts = np.bincount(flat, minlength=top + 1)
    keep = counts >= max(min_size, 1)
    keep[0] = False
    new_ids = np.cumsum(keep, dtype=np.int32)
    new_ids[~keep] = 0
    return new_ids[labels]


# ------------------------------------------------------------------ threshold search
def _object_regions(a: np.ndarray) -> tuple[np.ndarray, int]:
    """The 4-connected regions of each object label of an annotation (2D), numbered
    1..n over all labels, and n."""
    from scipy import ndimage as ndi

    regions = np.zeros(a.shape, np.int32)
    top = 0
    for value in np.unique(a[a >= 2]):
        found, n = ndi.label(a == value)
        regions[found > 0] = found[found > 0] + top
        top += n
    return regions, top


def _beside(regions: np.ndarray) -> np.ndarray:
    """For every pixel, the largest region id among its 4-neighbours (0 for none)."""
    p = np.pad(regions, 1)
    return np.max([p[:-2, 1:-1], p[2:, 1:-1], p[1:-1, :-2], p[1:-1, 2:]], axis=0)


def touching_lines(annotation: np.ndarray) -> np.ndarray:
    """The unannotated pixels that part two annotated objects (2D): the lines
    :func:`~napari_unet.core.training.targets.mask_to_annotation` leaves 0 where two
    instances touch, or a thin gap a person left between two objects they painted.

    A 0 pixel is on such a line when one of its 8 neighbours lies in an object (a
    4-connected region of one object label) and another object lies within two pixels
    (a 5 × 5 window): the line is then at most about two pixels wide, the width of the
    contact ``mask_to_annotation`` leaves open.
    """
    from scipy import ndimage as ndi

    a = np.asarray(annotation)
    if a.ndim != 2:
        raise UserInputError(f"annotation must be 2D here, got shape {a.shape}")
    regions, top = _object_regions(a)
    if top < 2:
        return np.zeros(a.shape, bool)
    # an object within a pixel (diagonals too: a contact drawn as a staircase), and
    # another one within two pixels: the window's largest id and its smallest positive
    # id differ
    near = ndi.maximum_filter(regions, size=3, mode="constant", cval=0) > 0
    high = ndi.maximum_filter(regions, size=5, mode="constant", cval=0)
    low = ndi.minimum_filter(
        np.where(regions > 0, regions, top + 1), size=5, mode="constant", cval=top + 1
    )
    return (a == 0) & near & (high > low) & (low <= top)


def annotation_instances(annotation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The instances an annotation (2D) names, as a mask would: each object region
    (:func:`annotated_objects`) with the pixels of its :func:`touching_lines` beside it
    given back to it, and the annotation with those pixels painted as their object's
    label (what it was before :func:`~napari_unet.core.training.targets.mask_to_annotation`
    left the contact open).

    Returns
    -------
    instances, filled
        ``int32`` instance ids (0 = none) and the filled annotation.
    """
    a = np.asarray(annotation)
    regions, top = _object_regions(a)
    filled = a.copy()
    lines = touching_lines(a)
    if lines.any():
        label_of = np.zeros(top + 1, a.dtype)  # each region's object label
        label_of[regions[regions > 0]] = a[regions > 0]
        # the region beside a line pixel (none where the line meets it diagonally only)
        owner = _beside(regions)[lines]
        filled[lines] = label_of[owner]
        regions[lines] = owner
    return regions, filled


def annotated_objects(labels: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """The objects a label image names, and which pixels it says anything about.

    A dense mask names its instances, and every pixel is known. An annotation names its
    4-connected object regions (label ≥ 2; a scribble is a region of its own), each with
    the unlabelled line where it touches another given back to it
    (:func:`annotation_instances`, as a mask holds them), and only painted pixels and
    those lines are known.

    Returns
    -------
    objects, known
        ``int32`` object ids (0 = none) and a boolean map of known pixels.
    """
    a = np.asarray(labels)
    if kind == "mask":
        return a.astype(np.int32, copy=False), np.ones(a.shape, bool)
    objects, _ = annotation_instances(a)
    return objects, (a > 0) | (objects > 0)


def annotated_f1(pred: np.ndarray, objects: np.ndarray, known: np.ndarray) -> tuple[int, int, int]:
    """Instances matched to annotated objects at IoU ≥ 0.5, counted on known pixels only.

    A predicted instance is judged only by its pixels that the annotation knows about:
    one that covers a scribble and no background stroke matches it; one that covers two
    scribbles (a merge) or half of one (a split) does not. Instances that touch no
    known pixel are neither right nor wrong. On a dense mask this is the usual
    instance F1 at IoU 0.5.

    Returns
    -------
    tp, n_pred, n_true
    """
    p = np.where(known, pred, 0).ravel().astype(np.int64)
    t = objects.ravel().astype(np.int64)
    n_p, n_t = int(p.max(initial=0)), int(t.max(initial=0))
    if n_t == 0:
        return 0, 0, 0
    size_p = np.bincount(p, minlength=n_p + 1)
    size_t = np.bincount(t, minlength=n_t + 1)
    both = (p > 0) & (t > 0)
    pair = p[both] * (n_t + 1) + t[both]
    keys, inter = np.unique(pair, return_counts=True)
    pi, ti = np.divmod(keys, n_t + 1)
    iou = inter / (size_p[pi] + size_t[ti] - inter)
    tp = int((iou > 0.5).sum())  # IoU > 0.5 pairs are unique on both sides
    n_pred = int((size_p[1:] > 0).sum())
    n_true = int((size_t[1:] > 0).sum())
    return tp, n_pred, n_true


def seed_variants(base: PostprocessParams) -> list[PostprocessParams]:
    """Seed settings tried at the base's foreground threshold (base first)."""
    out = [base]
    for ct in (0.5, 0.7, 0.9):
        for split in (0.3, 0.5, 0.8):
            out.append(replace(base, core_threshold=ct, seed_mode="distance", split=split))
        out.append(replace(base, core_threshold=ct, seed_mode="boundary"))
    return list(dict.fromkeys(out))


def threshold_variants(params: PostprocessParams) -> list[PostprocessParams]:
    return [replace(params, threshold=t) for t in (0.3, 0.4, 0.5, 0.6, 0.7)]


@dataclass
class SearchResult:
    """The chosen post-processing and how it scored on the annotation."""

    params: PostprocessParams
    f1: float
    base_f1: float
    n_objects: int
    tried: int

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.params.to_dict(),
            "annotation_f1": round(self.f1, 4),
            "annotation_f1_before": round(self.base_f1, 4),
            "annotated_objects": self.n_objects,
        }


#: A new setting must beat the current one by this much F1 to replace it.
MIN_GAIN = 0.005
#: At most this many pixels take part in a search (the largest images are cropped).
SEARCH_PIXELS = 1_500_000


def search_postprocessing(
    scores: list[np.ndarray],
    labels: list[np.ndarray],
    kinds: list[str],
    base: PostprocessParams | None = None,
) -> SearchResult:
    """The post-processing that maximises instance F1 on annotated objects.

    The seeds (mode, core threshold, split) are searched first at the current
    foreground threshold, then the threshold for the best seeds: about 20 settings.

    Parameters
    ----------
    scores
        Class probabilities ``(Y, X, C)`` of the annotated images.
    labels, kinds
        Their annotations or masks, and ``"annotation"`` / ``"mask"`` for each.
    base
        The current setting: it is kept unless another one scores at least
        ``MIN_GAIN`` better, so a search on data it already suits changes nothing.
    """
    base = base or PostprocessParams()
    prepared, pixels = [], 0
    for s, lab, kind in zip(scores, labels, kinds):
        objects, known = annotated_objects(lab, kind)
        if not objects.any() or pixels >= SEARCH_PIXELS:
            continue
        pixels += objects.size
        prepared.append((_Instances(s), objects, known))
    n_objects = sum(int(o.max()) for _, o, _ in prepared)
    tried: dict[PostprocessParams, float] = {}

    def f1_of(params: PostprocessParams) -> float:
        if params not in tried:
            tp = n_pred = n_true = 0
            for inst, objects, known in prepared:
                a, b, c = annotated_f1(inst.labels(params), objects, known)
                tp, n_pred, n_true = tp + a, n_pred + b, n_true + c
            tried[params] = 2 * tp / max(n_pred + n_true, 1)
        return tried[params]

    best = max(seed_variants(base), key=f1_of)
    best = max(threshold_variants(best), key=f1_of)
    base_f1 = f1_of(base)
    if f1_of(best) < base_f1 + MIN_GAIN:
        best = base
    return SearchResult(best, f1_of(best), base_f1, n_objects, len(tried))
