"""Training data: image/label pairs, the validation split, patch sampling and
augmentation (numpy + scipy only; the TensorFlow pipeline lives in loop.py)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

from ..arrays import read_region, reflect_indices  # noqa: F401 - read_region: re-exported
from ..errors import UserInputError
from ..normalize import Normalizer
from .targets import (
    WEIGHT_UNIT,
    annotated_pixel_counts,
    annotation_targets,
    check_mask,
    mask_targets,
    resize_annotation_keeping_contacts,
)


@dataclass
class TrainingPair:
    """One image with either a sparse annotation or a dense instance mask.

    ``image`` is ``(Y, X)`` or ``(Y, X, C)``; a ``(Z, Y, X)`` stack with a label stack of
    the same shape is split into planes (planes with no label are skipped). Image and
    labels may be chunked arrays (dask, zarr): a huge 2D image then trains from the
    regions around its labels, read region by region (:mod:`.regions`), never whole.
    """

    image: np.ndarray
    annotation: np.ndarray | None = None
    mask: np.ndarray | None = None
    name: str = "image"
    weight: float = 1.0  # relative share of training patches, per labelled pixel
    #: pixels a person painted (bool, the labels' shape): they weigh more in the loss
    #: than pixels copied from a prediction, and patches are centred on them more often
    painted: np.ndarray | None = None
    #: typical object width (px) in this image, when known; else measured
    diameter: float | None = None
    #: class probabilities ``(Y, X, K)`` of the model before training: confident ones
    #: teach unannotated pixels at a low weight (set by ``UNet.train``)
    pseudo: np.ndarray | None = None
    #: per-channel ``(low, high)`` values to normalise with instead of this image's own
    #: percentiles: the regions of one huge image share its scaling (see :mod:`.regions`)
    intensity: tuple[np.ndarray, np.ndarray] | None = None
    #: a volume ``(Z, Y, X)``: its z-step over the XY pixel size. Its annotated YX planes
    #: train, scaled alike (the whole volume's percentiles, as it is segmented), and a
    #: dense annotated block (:data:`SIDE_VIEW_PLANES` planes or more in a row) also
    #: gives ZY and ZX planes, resampled to square pixels (:func:`side_planes`).
    #: ``None``: a stack of unrelated planes or frames (each scaled on its own).
    z_scale: float | None = None

    def __post_init__(self) -> None:
        if (self.annotation is None) == (self.mask is None):
            raise UserInputError(f"{self.name}: give exactly one of an annotation or a mask")
        if not self.weight > 0:
            raise UserInputError(f"{self.name}: weight must be positive")
        if self.painted is not None and np.shape(self.painted) != np.shape(self.labels):
            raise UserInputError(
                f"{self.name}: the painted-pixel map {np.shape(self.painted)} and the "
                f"{self.kind} {np.shape(self.labels)} differ in shape"
            )

    @property
    def labels(self) -> np.ndarray:
        return self.annotation if self.annotation is not None else self.mask

    @property
    def kind(self) -> str:
        return "annotation" if self.annotation is not None else "mask"


@dataclass
class PreparedImage:
    """A normalised channels-last image with its multi-hot target."""

    image: np.ndarray  # (Y, X, C) float32
    target: np.ndarray  # (Y, X, n_outputs) uint8
    name: str
    summary: dict = field(default_factory=dict)
    sampling_weight: float = 1.0

    @property
    def labelled(self) -> np.ndarray:
        """Pixels that carry a label of their own (pseudo-labels excluded)."""
        return self.target.max(axis=-1) >= WEIGHT_UNIT


def weighted_target(
    target: np.ndarray,
    painted: np.ndarray | None,
    painted_weight: float,
    pseudo: np.ndarray | None,
    pseudo_weight: float,
    confidence: float = 0.9,
) -> np.ndarray:
    """A 0/1 multi-hot target scaled to loss weights (see :data:`WEIGHT_UNIT`)."""
    out = target.astype(np.uint8) * np.uint8(WEIGHT_UNIT)
    if painted is not None and painted_weight != 1.0:
        value = np.uint8(min(255, round(WEIGHT_UNIT * painted_weight)))
        sel = np.asarray(painted, bool) & (target.max(axis=-1) > 0)
        out[sel] = target[sel] * value
    if pseudo is not None and pseudo_weight > 0:
        value = np.uint8(max(1, round(WEIGHT_UNIT * pseudo_weight)))
        n_out = target.shape[-1]
        if pseudo.shape[-1] == n_out:
            best = np.argmax(pseudo, axis=-1)
            sure = (np.max(pseudo, axis=-1) >= confidence) & (target.max(axis=-1) == 0)
            ys, xs = np.nonzero(sure)
            out[ys, xs, best[ys, xs]] = value
        else:
            # a teacher with fewer object classes (the model before its output was
            # widened) knows object from background and boundary, not the new classes:
            # its confident "object" allows every object class
            three = np.stack(
                [pseudo[..., 0], pseudo[..., 1:-1].sum(axis=-1), pseudo[..., -1]], axis=-1
            )
            best = np.argmax(three, axis=-1)
            sure = (np.max(three, axis=-1) >= confidence) & (target.max(axis=-1) == 0)
            ys, xs = np.nonzero(sure & (best == 0))
            out[ys, xs, 0] = value
            ys, xs = np.nonzero(sure & (best == 2))
            out[ys, xs, n_out - 1] = value
            ys, xs = np.nonzero(sure & (best == 1))
            out[ys, xs, 1 : n_out - 1] = value
    return out


def pair_layout(pair: TrainingPair, channels: int, stains: bool = False):
    """Where ``pair.image`` keeps its channels (the one rule of :mod:`.axes`), checked
    against the labels, which must cover the image's planes pixel for pixel.
    ``stains``: the model reads a stained slide as its haematoxylin (decided here on
    the whole image, as prediction decides it)."""
    from ..axes import channel_layout

    img_shape, lab_shape = tuple(np.shape(pair.image)), tuple(np.shape(pair.labels))
    layout = channel_layout(
        img_shape, channels, name=pair.name, image=pair.image if stains else None
    )
    spatial = layout.spatial_shape
    if spatial != lab_shape:
        seen = "" if layout.axis is None else f" (read as {layout.axes})"
        dims = f" ({len(spatial)}D and {len(lab_shape)}D)" if len(spatial) != len(lab_shape) else ""
        raise UserInputError(
            f"{pair.name}: image shape {img_shape}{seen} and {pair.kind} shape {lab_shape} "
            f"differ{dims}; the {pair.kind} must cover the image pixel for pixel"
        )
    return layout


def _channels_last(image: np.ndarray, channels: int, name: str) -> np.ndarray:
    """A 2D plane ``(Y, X)`` or ``(Y, X, C)`` as ``(Y, X, channels)``."""
    from ..axes import channel_layout

    a = np.asarray(image)
    layout = channel_layout(a.shape, channels, name=name)
    if layout.stack_shape:
        raise UserInputError(
            f"{name}: image of shape {a.shape} does not fit a model with {channels} input "
            f"channel(s); expected (Y, X) or (Y, X, {channels})"
        )
    return layout.channels_last(a)


def sampling_margin(patch_size: int, elastic_sigma: float = 10.0) -> int:
    """How far beyond a labelled pixel a training patch centred on it may read: half a
    patch zoomed out by :data:`ZOOM_JITTER`, plus the elastic deformation's reach."""
    half = math.ceil(patch_size / 2 * math.exp(ZOOM_JITTER))
    return half + math.ceil(3 * elastic_sigma) + 1


def split_planes(
    pair: TrainingPair,
    channels: int,
    margin: int = 0,
    normalization: dict | None = None,
    stains: bool = False,
) -> list[TrainingPair]:
    """Split a pair into 2D pairs with channels-last images ``(Y, X, channels)``,
    keeping the planes of a stack that carry labels. A 2D pair of chunked (lazy) arrays
    becomes the regions around its labels, ``margin`` pixels wider
    (:func:`~napari_unet.core.training.huge_annotations.region_pairs`); a stack is read plane by plane."""
    from .huge_annotations import is_lazy, region_pairs

    if (is_lazy(pair.labels) or is_lazy(pair.image)) and len(np.shape(pair.labels)) == 2:
        return region_pairs(_lazy_labels(pair), channels, margin, normalization, stains)
    layout = pair_layout(pair, channels, stains)
    lab = np.asarray(pair.labels)
    if lab.ndim == 2:
        return [dataclasses.replace(pair, image=layout.read(pair.image))]
    if lab.ndim > 4:
        raise UserInputError(f"{pair.name}: {lab.ndim}D labels are not supported")
    lead = lab.shape[:-2]
    painted = None if pair.painted is None else np.asarray(pair.painted)
    volume = pair.z_scale is not None and lab.ndim == 3
    intensity = pair.intensity
    if volume and intensity is None and normalization is not None:
        # the volume is segmented with its own percentiles: its planes train so too
        stack = np.stack([layout.read(pair.image, (z,)) for z in range(lab.shape[0])])
        intensity = Normalizer.of(normalization).intensity(stack)
    out = []
    for i, index in enumerate(np.ndindex(*lead)):
        lb = lab[index]
        if pair.kind == "annotation" and not lb.any():
            continue
        kw = {pair.kind: lb}
        out.append(
            TrainingPair(
                layout.read(pair.image, index),
                name=f"{pair.name}[{i}]",
                weight=pair.weight,
                painted=None if painted is None else painted[index],
                diameter=pair.diameter,
                intensity=intensity,
                **kw,
            )
        )
    if not out:
        raise UserInputError(f"{pair.name}: no plane of the stack is annotated")
    if volume:
        out += side_planes(pair, layout, intensity)
    return out


#: A run of at least this many annotated YX planes in a row is a dense block: its ZY and
#: ZX planes train too. Fewer (a few corrected planes spread through z) train as YX
#: planes only: across them a side view would hold a few annotated rows between wide
#: unannotated gaps, which teach the side views little.
SIDE_VIEW_PLANES = 5
#: At most this many ZY and as many ZX planes per dense block (evenly spaced): side
#: views add to the YX planes, they do not outnumber them.
MAX_SIDE_PLANES = 12


def annotated_runs(labels: np.ndarray, min_planes: int = SIDE_VIEW_PLANES) -> list[tuple]:
    """``(z0, z1)`` of each run of at least ``min_planes`` consecutive planes of a
    ``(Z, Y, X)`` label stack that carry labels."""
    has = np.asarray([np.asarray(p).any() for p in labels] + [False])
    runs, start = [], None
    for z, h in enumerate(has):
        if h and start is None:
            start = z
        elif not h and start is not None:
            if z - start >= min_planes:
                runs.append((start, z))
            start = None
    return runs


def resample_z(a: np.ndarray, z_scale: float, labels: bool) -> np.ndarray:
    """``a`` (axis 0 = Z) resampled to ``round(Z × z_scale)`` planes, square voxels:
    linear between planes for an image, the nearest plane for labels."""
    n = a.shape[0]
    m = max(1, int(round(n * z_scale)))
    pos = np.clip((np.arange(m) + 0.5) / z_scale - 0.5, 0, n - 1)
    if labels:
        return a[np.rint(pos).astype(int)]
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, n - 1)
    w = (pos - lo).astype(np.float32).reshape((-1,) + (1,) * (a.ndim - 1))
    return (a[lo] * (1 - w) + a[hi] * w).astype(np.float32)


def side_planes(pair: TrainingPair, layout, intensity) -> list[TrainingPair]:
    """The ZY and ZX planes of each dense annotated block of a volume pair
    (:func:`annotated_runs`), resampled along z by ``pair.z_scale`` (an annotation's
    lines where two objects touch kept two pixels wide:
    :func:`~napari_unet.core.training.targets.resize_annotation_keeping_contacts`); planes
    without labels, or thinner than 16 pixels once resampled, are left out."""
    from ..prediction.instances import touching_lines

    lab = np.asarray(pair.labels)
    z_scale = float(pair.z_scale)
    painted = None if pair.painted is None else np.asarray(pair.painted)
    out = []
    for z0, z1 in annotated_runs(lab):
        if round((z1 - z0) * z_scale) < 16:
            continue
        image = np.stack([layout.read(pair.image, (z,)) for z in range(z0, z1)])  # ZYXC
        image = resample_z(image, z_scale, labels=False)
        block = resample_z(lab[z0:z1], z_scale, labels=True)
        pblock = None if painted is None else resample_z(painted[z0:z1], z_scale, True)
        for axis, view in ((2, "ZY"), (1, "ZX")):
            n = block.shape[axis]
            keep = [i for i in range(n) if np.take(block, i, axis=axis).any()]
            if len(keep) > MAX_SIDE_PLANES:
                keep = [keep[int(j)] for j in np.linspace(0, len(keep) - 1, MAX_SIDE_PLANES)]
            for i in keep:
                lb = np.take(block, i, axis=axis)
                if min(lb.shape) < 8:
                    continue
                native = np.take(lab[z0:z1], i, axis=axis)
                if pair.kind == "annotation" and touching_lines(native).any():
                    # stretched as they are, the lines where two objects touch across z
                    # would widen past a contact's width and be ignored: the plane is
                    # stretched keeping them, as a mask's contacts are
                    lb = resize_annotation_keeping_contacts(native, lb.shape)
                out.append(
                    TrainingPair(
                        np.take(image, i, axis=axis),
                        name=f"{pair.name}[{view} {i}, planes {z0}–{z1 - 1}]",
                        weight=pair.weight,
                        painted=None if pblock is None else np.take(pblock, i, axis=axis),
                        diameter=pair.diameter,
                        intensity=intensity,
                        **{pair.kind: lb},
                    )
                )
    return out


def _lazy_labels(pair: TrainingPair) -> TrainingPair:
    """``pair`` with chunked labels: in-memory labels of a lazy image are wrapped (as
    chunked views, no copy), so the regions are found the same way."""
    from .huge_annotations import is_lazy

    if is_lazy(pair.labels):
        return pair
    import dask.array as da

    kw = {pair.kind: da.from_array(np.asarray(pair.labels), chunks=512)}
    return dataclasses.replace(pair, **kw)


def planes_of(
    pairs: list[TrainingPair],
    channels: int,
    margin: int = 0,
    normalization: dict | None = None,
    stains: bool = False,
) -> list[TrainingPair]:
    """Every pair as 2D planes with channels-last images ``(Y, X, C)`` (pairs of
    chunked arrays: the regions around their labels, ``margin`` pixels wider,
    normalised alike by ``normalization``; ``stains``: a stained slide read as its
    haematoxylin, for a model that reads it so)."""
    if not pairs:
        raise UserInputError("no training data: add at least one image with labels")
    return [
        p for pair in pairs for p in split_planes(pair, channels, margin, normalization, stains)
    ]


def prepare_pairs(
    pairs: list[TrainingPair],
    channels: int,
    n_object_classes: int,
    normalization: dict,
    painted_weight: float = 1.0,
    pseudo_weight: float = 0.0,
    pseudo_confidence: float = 0.9,
    split: bool = True,
) -> list[PreparedImage]:
    """Check, normalise and turn pairs into weighted multi-hot targets.

    Targets hold ``WEIGHT_UNIT`` for an annotated class, ``painted_weight`` times that
    where a person painted, and ``pseudo_weight`` times that for the confident classes
    of ``pair.pseudo`` on pixels nobody annotated.

    Raises
    ------
    UserInputError
        Shape mismatch, wrong dimensionality, labels that cannot train.
    """
    if not pairs:
        raise UserInputError("no training data: add at least one image with labels")
    # ``split=False``: the pairs are planes_of() already (2D, channels last)
    planes = planes_of(pairs, channels, normalization=normalization) if split else list(pairs)
    prepared = []
    n_fg = n_bg = 0
    for p in planes:
        image = _channels_last(p.image, channels, p.name)
        if image.shape[:2] != np.shape(p.labels)[:2]:
            raise UserInputError(
                f"{p.name}: image shape {np.shape(p.image)} and {p.kind} shape "
                f"{np.shape(p.labels)} differ"
            )
        if min(image.shape[:2]) < 8:
            raise UserInputError(f"{p.name}: image {image.shape[:2]} is too small to train on")
        labels = np.asarray(p.labels)
        if p.kind == "annotation":
            if not np.issubdtype(labels.dtype, np.integer):
                raise UserInputError(f"{p.name}: annotation must hold integer labels")
            target = annotation_targets(labels, n_object_classes)
            counts = annotated_pixel_counts(labels)
        else:
            check_mask(labels, f"{p.name} mask")
            target = mask_targets(labels, n_object_classes)
            counts = {1: int((labels == 0).sum()), 2: int((labels > 0).sum())}
        target = weighted_target(
            target, p.painted, painted_weight, p.pseudo, pseudo_weight, pseudo_confidence
        )
        n_bg += counts.get(1, 0)
        n_fg += sum(v for k, v in counts.items() if k >= 2)
        normalizer = Normalizer.of(normalization)
        shared = p.intensity  # a huge image's regions share one
        norm = normalizer.apply(image, normalizer.intensity(image) if shared is None else shared)
        summary = {
            "name": p.name,
            "kind": p.kind,
            "shape": list(image.shape[:2]),
            "pixels_per_label": {str(k): v for k, v in sorted(counts.items())},
        }
        if p.kind == "mask":
            summary["instances"] = int(len(np.unique(labels)) - 1)
        prepared.append(PreparedImage(norm, target, p.name, summary, p.weight))
    if n_bg == 0:
        raise UserInputError(
            "the annotations have no background pixel (label 1): paint some background"
        )
    if n_fg == 0:
        raise UserInputError("the annotations have no object pixel (label 2): paint some objects")
    return prepared


def split_validation(
    prepared: list[PreparedImage], fraction: float, block: int, rng: np.random.Generator
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Hold out whole image blocks carrying about ``fraction`` of the labelled pixels.

    Returns per-image boolean masks (train, validation) of labelled pixels. Validation is
    empty when ``fraction`` is 0 or when either side would lose all background or all
    object labels.

    Pixels a person painted (weighted above :data:`WEIGHT_UNIT`: corrections of a copied
    prediction) are held out first, about ``fraction`` of them and never more than half,
    when they span several blocks: the before/after comparison measures on them (the
    rest of a copied annotation is the previous model's own prediction), and training
    keeps most of them.
    """
    train_masks = [p.labelled.astype(bool) for p in prepared]
    val_masks = [np.zeros_like(m) for m in train_masks]
    if fraction <= 0:
        return train_masks, val_masks
    blocks = []
    for i, p in enumerate(prepared):
        w = train_masks[i]
        painted = p.target.max(axis=-1) > WEIGHT_UNIT
        h, wd = w.shape
        for by in range(0, h, block):
            for bx in range(0, wd, block):
                n = int(w[by : by + block, bx : bx + block].sum())
                if n:
                    k = int(painted[by : by + block, bx : bx + block].sum())
                    blocks.append((i, by, bx, n, k))
    total = sum(b[3] for b in blocks)
    if len(blocks) < 2:
        return train_masks, val_masks
    order = rng.permutation(len(blocks))
    goal = fraction * total
    painted_total = sum(b[4] for b in blocks)
    taken = taken_painted = 0
    chosen = np.zeros(len(blocks), bool)
    if painted_total and sum(1 for b in blocks if b[4]) >= 2:
        painted_goal = fraction * painted_total
        for j in order:
            if taken_painted >= painted_goal:
                break
            n, k = blocks[j][3], blocks[j][4]
            if not k or taken_painted + k > 0.5 * painted_total:
                continue
            if taken + n > 2 * goal and taken > 0:
                continue
            chosen[j] = True
            taken += n
            taken_painted += k
    for j in order:
        if taken >= goal:
            break
        n, k = blocks[j][3], blocks[j][4]
        if chosen[j] or (taken + n > 2 * goal and taken > 0):
            continue
        if k and taken_painted + k > 0.5 * painted_total:
            continue  # training keeps most of the corrections
        chosen[j] = True
        taken += n
        taken_painted += k
    for j in np.flatnonzero(chosen):
        i, by, bx = blocks[j][:3]
        val_masks[i][by : by + block, bx : bx + block] = train_masks[i][
            by : by + block, bx : bx + block
        ]
    for i in range(len(prepared)):
        train_masks[i] &= ~val_masks[i]

    def has_both(masks):
        bg = any((p.target[..., 0][m] > 0).any() for p, m in zip(prepared, masks))
        fg = any((p.target[..., 0][m] == 0).any() for p, m in zip(prepared, masks))
        return bg and fg

    if not (has_both(val_masks) and has_both(train_masks)):
        return [p.labelled.astype(bool) for p in prepared], [np.zeros_like(m) for m in val_masks]
    return train_masks, val_masks


#: Patches are zoomed by up to this factor (log scale: e^0.2 ≈ ±22 %).
ZOOM_JITTER = 0.2


class PatchSampler:
    """Draws augmented training patches, weighted toward labelled pixels.

    Parameters
    ----------
    images, targets
        Normalised images ``(Y, X, C)`` and multi-hot targets restricted to the
        training pixels (other pixels all-zero, i.e. ignored).
    patch_size
        Edge of the square patches.
    annotated_fraction
        Share of patches centred on a labelled pixel; the others are uniform.
    augment, elastic
        Flips / rotations / intensity jitter; elastic deformation (3×3 grid of random
        displacements, σ = ``elastic_sigma`` px, bicubic interpolation, as in the paper).
    """

    def __init__(
        self,
        images: list[np.ndarray],
        targets: list[np.ndarray],
        patch_size: int,
        annotated_fraction: float = 0.8,
        augment: bool = True,
        elastic: bool = True,
        elastic_sigma: float = 10.0,
        seed: int = 0,
        weights: list[float] | None = None,
    ) -> None:
        self.images = images
        self.targets = targets
        self.p = int(patch_size)
        self.annotated_fraction = annotated_fraction
        self.augment = augment
        self.elastic = elastic and augment
        self.sigma = elastic_sigma
        self.rng = np.random.default_rng(seed)
        # patch centres: each class of labelled pixel gets an equal share (a few objects
        # in a large, fully labelled frame are not drowned by its background), and
        # pixels a person painted get a share of their own
        self.centres: list[list[np.ndarray]] = []
        counts = []
        for t in targets:
            top = t.max(axis=-1)
            real = top >= WEIGHT_UNIT
            groups = [np.flatnonzero(real & (t[..., 0] > 0))]
            fg = real & (t[..., 0] == 0)
            n_classes = t.shape[-1] - 2
            if n_classes > 1:
                # several object classes: each gets a share of its own, so a rare
                # class is not drowned by a common one
                obj = t[..., 1:-1] > 0
                only = obj.sum(axis=-1) == 1
                for k in range(n_classes):
                    groups.append(np.flatnonzero(fg & only & obj[..., k]))
                fg = fg & ~only  # boundaries and objects of unknown class
            groups += [np.flatnonzero(fg), np.flatnonzero(top > WEIGHT_UNIT)]
            self.centres.append([g.astype(np.int64) for g in groups])
            counts.append(float(real.sum()))
        counts = np.array(counts, np.float64)
        if weights is not None:
            counts = counts * np.asarray(weights, np.float64)
        if counts.sum() == 0:
            raise UserInputError("no labelled pixel left for training")
        self.image_weights = counts / counts.sum()

    def _centre(self, i: int) -> int | None:
        """A labelled pixel of image ``i`` (flat index), class-balanced."""
        groups = [g for g in self.centres[i] if len(g)]
        if not groups:
            return None
        g = groups[int(self.rng.integers(len(groups)))]
        return int(g[self.rng.integers(len(g))])

    class _TargetWindow:
        """A window of an in-memory target, mirrored at its borders like
        :func:`read_region`, indexed (``window[rows, cols]``) without copying it first:
        a warped patch takes one pixel in several of the window's."""

        def __init__(self, target: np.ndarray, y0: int, y1: int, x0: int, x1: int) -> None:
            self.target = target
            self.rows = reflect_indices(y0, y1, target.shape[0])
            self.cols = reflect_indices(x0, x1, target.shape[1])

        def __getitem__(self, key):
            ry, rx = key
            return self.target[self.rows[ry], self.cols[rx]]

    def _window(self, i: int, cy: int, cx: int, margin: int, gather: bool = False):
        """The image window and the target window (a :class:`_TargetWindow` with
        ``gather``, where the target is an in-memory array)."""
        half = self.p // 2
        y0, x0 = cy - half - margin, cx - half - margin
        size = self.p + 2 * margin
        img = read_region(self.images[i], y0, y0 + size, x0, x0 + size)
        if gather and isinstance(self.targets[i], np.ndarray):
            return img, self._TargetWindow(self.targets[i], y0, y0 + size, x0, x0 + size)
        tgt = read_region(self.targets[i], y0, y0 + size, x0, x0 + size)
        return img, tgt

    def sample(self) -> tuple[np.ndarray, np.ndarray]:
        """One ``(patch (P, P, C) float32, target (P, P, K) uint8)`` pair."""
        rng = self.rng
        i = int(rng.choice(len(self.images), p=self.image_weights))
        h, w = self.images[i].shape[:2]
        flat = self._centre(i) if rng.random() < self.annotated_fraction else None
        if flat is not None:
            cy, cx = divmod(flat, w)
        else:
            cy, cx = int(rng.integers(h)), int(rng.integers(w))
        elastic = self.elastic and rng.random() < 0.7
        # a little zoom, so the network tolerates objects somewhat off its scale (the
        # size estimate is never exact)
        zoom = float(np.exp(rng.uniform(-ZOOM_JITTER, ZOOM_JITTER))) if self.augment else 1.0
        if elastic or zoom != 1.0:
            margin = int(np.ceil(3 * self.sigma)) * elastic
            margin += int(np.ceil(max(0.0, self.p / zoom - self.p) / 2)) + 1
            img, tgt = self._window(i, cy, cx, margin, gather=True)
            img, tgt = self._warp(img, tgt, margin, zoom, elastic)
        else:
            img, tgt = self._window(i, cy, cx, 0)
        if self.augment:
            img, tgt = self._geometric(img, tgt)
            img = self._intensity(img)
        return np.ascontiguousarray(img, np.float32), np.ascontiguousarray(tgt)

    def batch(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = zip(*(self.sample() for _ in range(n)))
        return np.stack(xs), np.stack(ys)

    def _warp(self, img, tgt, margin: int, zoom: float = 1.0, elastic: bool = True):
        """Zoom about the patch centre and (optionally) deform elastically."""
        from scipy import ndimage as ndi

        p = self.p
        gy, gx = self._grid()
        c = (p - 1) / 2.0
        cy = (gy - c) / zoom + c + margin
        cx = (gx - c) / zoom + c + margin
        if elastic:
            coarse = self.rng.normal(0.0, self.sigma, size=(2, 3, 3))
            # bicubic up-sampling of the 3×3 grid, as ndi.zoom(order=3) does it, but as
            # two small matrix products with precomputed weights (the spline is separable)
            w = self._zoom_weights()
            cy = cy + w @ coarse[0] @ w.T
            cx = cx + w @ coarse[1] @ w.T
        cy = np.clip(cy, 0, img.shape[0] - 1)
        cx = np.clip(cx, 0, img.shape[1] - 1)
        out = np.empty((p, p, img.shape[-1]), np.float32)
        for c in range(img.shape[-1]):
            out[..., c] = ndi.map_coordinates(img[..., c], [cy, cx], order=1, mode="mirror")
        ry = np.rint(cy).astype(np.intp)
        rx = np.rint(cx).astype(np.intp)
        return out, tgt[ry, rx]

    def _zoom_weights(self) -> np.ndarray:
        """(P, 3) weights: column k is the cubic-spline zoom of the k-th unit impulse."""
        if getattr(self, "_w", None) is None:
            from scipy import ndimage as ndi

            p = self.p
            self._w = np.stack(
                [ndi.zoom(np.eye(3)[k], p / 3.0, order=3)[:p] for k in range(3)], axis=1
            )
        return self._w

    def _grid(self):
        if getattr(self, "_g", None) is None:
            self._g = np.mgrid[0 : self.p, 0 : self.p].astype(np.float32)
        return self._g

    def _geometric(self, img, tgt):
        k = int(self.rng.integers(4))
        if k:
            img, tgt = np.rot90(img, k), np.rot90(tgt, k)
        if self.rng.random() < 0.5:
            img, tgt = img[:, ::-1], tgt[:, ::-1]
        return img, tgt

    def _intensity(self, img):
        rng = self.rng
        img = img * rng.uniform(0.75, 1.3) + rng.normal(0.0, 0.05)
        if rng.random() < 0.3:
            img = img + rng.normal(0.0, rng.uniform(0.0, 0.04), size=img.shape)
        return img


def validation_patches(
    images: list[np.ndarray],
    targets: list[np.ndarray],
    patch_size: int,
    max_patches: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Fixed patches covering the validation pixels (targets outside them are zero)."""
    p = int(patch_size)
    xs, ys = [], []
    for img, tgt in zip(images, targets):
        w = tgt.max(axis=-1)
        if not w.any():
            continue
        h, wd = w.shape
        for y0 in range(0, h, p):
            for x0 in range(0, wd, p):
                if w[y0 : y0 + p, x0 : x0 + p].any():
                    yy = min(y0, max(0, h - p)) if h >= p else y0 - (p - h) // 2
                    xx = min(x0, max(0, wd - p)) if wd >= p else x0 - (p - wd) // 2
                    xs.append(read_region(img, yy, yy + p, xx, xx + p))
                    ys.append(read_region(tgt, yy, yy + p, xx, xx + p))
    if not xs:
        return None
    if len(xs) > max_patches:
        keep = rng.choice(len(xs), max_patches, replace=False)
        xs = [xs[k] for k in keep]
        ys = [ys[k] for k in keep]
    return np.stack(xs).astype(np.float32), np.stack(ys)
