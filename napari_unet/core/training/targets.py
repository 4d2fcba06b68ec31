"""Training targets from the two label kinds of napari-unet.

*Annotation* (sparse, painted): 0 = not annotated, 1 = background, 2 = object,
3, 4, … = further object classes. *Mask* (dense): 0 = background, each positive id one
instance.

A target is a multi-hot ``uint8`` array ``(Y, X, C)`` over the network's classes
``[background, object class 1..n, boundary]``: the set of classes a pixel may take.
One class is a plain label; several (an object pixel next to an unannotated one, which
may be interior or boundary) are a partial label; none means "ignored by the loss".
"""

from __future__ import annotations

import numpy as np

from ..errors import UserInputError

BACKGROUND = 1  # annotation value for background
FIRST_OBJECT = 2  # annotation value of the first object class
#: Training targets carry loss weights: an allowed class holds ``WEIGHT_UNIT`` × the
#: pixel's weight (1 for annotated pixels, more where a person painted, less for
#: pseudo-labels), so one ``uint8`` array says both what is allowed and how much it counts.
WEIGHT_UNIT = 4


def _neighbour_differs(labels: np.ndarray) -> np.ndarray:
    """True where any 4-neighbour has another value (image edges count as equal)."""
    p = np.pad(labels, 1, mode="edge")
    c = p[1:-1, 1:-1]
    return (p[:-2, 1:-1] != c) | (p[2:, 1:-1] != c) | (p[1:-1, :-2] != c) | (p[1:-1, 2:] != c)


def _neighbour_equals(labels: np.ndarray, value: int) -> np.ndarray:
    """True where any 4-neighbour has ``value``."""
    p = np.pad(labels == value, 1, mode="constant")
    return p[:-2, 1:-1] | p[2:, 1:-1] | p[1:-1, :-2] | p[1:-1, 2:]


def instance_boundaries(mask: np.ndarray) -> np.ndarray:
    """Inner boundary pixels of every instance: object pixels with a 4-neighbour of
    another id (background or a touching instance)."""
    mask = np.asarray(mask)
    return (mask > 0) & _neighbour_differs(mask)


def mask_to_annotation(
    mask: np.ndarray, classes: np.ndarray | None = None, axes: str | None = None
) -> np.ndarray:
    """Turn a dense instance mask (or a prediction) into an annotation to correct.

    1 where the mask is 0, 2 where it is positive, except the line where two different
    instances touch, which is left 0 (not annotated) so that training neither merges
    nor splits them until a person paints there.

    ``classes`` (a class map of the mask's shape, 1..n on objects, as
    :attr:`Prediction.classes <napari_unet.core.network.unet.Prediction>` holds) writes each
    object pixel as its class's annotation label, ``1 + class`` (class 1 → 2, class 2 →
    3, …), instead of 2 everywhere.

    ``axes`` (one letter per axis of the mask, such as ``"ZYX"`` or ``"TZYX"``) says
    which axes are space: where two instances touch across Z too (one lying on another
    in a volume) the contact surface is left 0 in 3D, each time point on its own. Without
    it every 2D plane is taken on its own (a time-lapse, a stack of unrelated planes).
    """
    mask = np.asarray(mask)
    if mask.ndim < 2:
        raise UserInputError("a mask must be at least 2D")
    if classes is not None:
        classes = np.asarray(classes)
        if classes.shape != mask.shape:
            raise UserInputError(
                f"the class map {classes.shape} and the mask {mask.shape} differ in shape"
            )
    if axes is not None and "Z" in axes.upper() and mask.ndim >= 3:
        return _volume_to_annotation(mask, classes, axes.upper())
    if mask.ndim > 2:
        if classes is None:
            return np.stack([mask_to_annotation(m) for m in mask])
        return np.stack([mask_to_annotation(m, c) for m, c in zip(mask, classes)])
    ann = np.where(mask > 0, FIRST_OBJECT, BACKGROUND).astype(np.uint8)
    if classes is not None:
        top = int(classes.max(initial=0))
        dtype = np.uint8 if top + 1 <= np.iinfo(np.uint8).max else np.uint16
        ann = np.where(mask > 0, np.maximum(classes.astype(np.int64), 1) + 1, BACKGROUND).astype(
            dtype
        )
    ann[_touching(mask)] = 0
    return ann


def _touching(mask: np.ndarray) -> np.ndarray:
    """Instance pixels (2D) with a 4-neighbour in another instance."""
    p = np.pad(mask, 1, mode="edge")
    c = p[1:-1, 1:-1]
    touching = np.zeros(mask.shape, bool)
    for nb in (p[:-2, 1:-1], p[2:, 1:-1], p[1:-1, :-2], p[1:-1, 2:]):
        touching |= (c > 0) & (nb > 0) & (nb != c)
    return touching


def _volume_to_annotation(mask: np.ndarray, classes, axes: str) -> np.ndarray:
    """:func:`mask_to_annotation` of a stack with a Z axis: each plane's labels, with
    the voxels where two instances touch across Y, X or Z left 0 (along the axes of
    space only: a T axis separates frames)."""
    if len(axes) != mask.ndim or not axes.endswith("YX"):
        raise UserInputError(f"axes {axes!r} do not name the {mask.ndim} axes of the mask")
    flat = mask.reshape((-1,) + mask.shape[-2:])
    flat_classes = None if classes is None else classes.reshape(flat.shape)
    ann = mask_to_annotation(flat, flat_classes).reshape(mask.shape)
    z = axes.index("Z")
    lo = [slice(None)] * mask.ndim
    hi = [slice(None)] * mask.ndim
    lo[z], hi[z] = slice(None, -1), slice(1, None)
    a, b = mask[tuple(lo)], mask[tuple(hi)]
    contact = (a > 0) & (b > 0) & (a != b)
    ann[tuple(lo)][contact] = 0
    ann[tuple(hi)][contact] = 0
    return ann


def check_annotation(annotations) -> None:
    """Refuse annotations (one array or several) that cannot train anything together:
    labels that are not non-negative integers, nothing painted, no background or no
    object painted."""
    arrays = [annotations] if isinstance(annotations, np.ndarray) else list(annotations)
    n_bg = n_obj = 0
    for a in map(np.asarray, arrays):
        if not np.issubdtype(a.dtype, np.integer):
            raise UserInputError(f"the annotation must hold integer labels, got {a.dtype}")
        if a.min(initial=0) < 0:
            raise UserInputError(
                "the annotation has negative labels; use 0, 1 (background), 2, 3, … (objects)"
            )
        n_bg += int(np.count_nonzero(a == BACKGROUND))
        n_obj += int(np.count_nonzero(a >= FIRST_OBJECT))
    if not n_obj and not n_bg:
        raise UserInputError(
            "the annotation is empty (every pixel is 0, not annotated); "
            "paint 1 = background and 2 = object"
        )
    if not n_obj:
        raise UserInputError(
            "the annotation has no object pixel (label 2): paint some objects before training"
        )
    if not n_bg:
        raise UserInputError(
            "the annotation has no background pixel (label 1): paint some background "
            "before training"
        )


def check_mask(mask: np.ndarray, name: str = "mask") -> None:
    m = np.asarray(mask)
    if not np.issubdtype(m.dtype, np.integer):
        raise UserInputError(f"{name} must hold integer instance ids, got {m.dtype}")
    if m.min(initial=0) < 0:
        raise UserInputError(f"{name} has negative ids")
    if not (m > 0).any():
        raise UserInputError(f"{name} has no object (every pixel is 0)")
    if (m > 0).all():
        raise UserInputError(f"{name} has no background pixel (no 0 anywhere)")


def resize_annotation_keeping_contacts(annotation: np.ndarray, shape: tuple) -> np.ndarray:
    """An annotation (2D) brought to ``shape`` with its touching lines
    (:func:`~napari_unet.core.prediction.instances.touching_lines`) as they would be at
    that size: each line pixel is given to the object beside it, the objects are resized
    as an instance mask is, and where two of them touch at the new size is left 0 again
    (:func:`mask_to_annotation`). Resized as it is
    (:func:`~napari_unet.core.prediction.object_size.resize_annotation`), a line two
    pixels wide would close when shrunk, merging the objects it parts, or widen past what
    ``touching_lines`` takes for a contact when enlarged."""
    from scipy import ndimage as ndi

    from ..prediction.instances import annotation_instances
    from ..prediction.object_size import resize_annotation, resize_to

    a = np.asarray(annotation)
    if tuple(a.shape[:2]) == tuple(shape[:2]):
        return a
    regions, filled = annotation_instances(a)
    if (filled == a).all():  # no touching line
        return resize_annotation(a, shape)
    out = resize_annotation(filled, shape)
    objects = resize_to(regions, shape, labels=True)
    painted = out >= FIRST_OBJECT
    if (painted & (objects == 0)).any():
        # an object pixel of the resized annotation that the nearest-pixel objects
        # miss (its coverage won) belongs to the nearest object, lest it join two
        nearest = ndi.distance_transform_edt(
            objects == 0, return_distances=False, return_indices=True
        )
        objects = objects[tuple(nearest)]
    out[_touching(np.where(painted, objects, 0))] = 0
    return out


def annotation_targets(annotation: np.ndarray, n_object_classes: int = 1) -> np.ndarray:
    """Multi-hot targets from a sparse annotation (2D).

    Object pixels with a background neighbour are boundary; object pixels whose four
    neighbours all carry the same object label are interior; object pixels next to an
    unannotated pixel may be either (partial label). The unannotated lines where two
    objects touch (:func:`~napari_unet.core.prediction.instances.touching_lines`) are
    boundary, as a mask's contact is, and an object pixel beside one is interior. Labels
    above the model's classes are an error.
    """
    from ..prediction.instances import touching_lines

    a = np.asarray(annotation)
    if a.ndim != 2:
        raise UserInputError(f"annotation must be 2D here, got shape {a.shape}")
    top = int(a.max(initial=0))
    if top > n_object_classes + 1:
        raise UserInputError(
            f"annotation uses label {top} but the model has {n_object_classes} object "
            f"class(es) (labels 2..{n_object_classes + 1})"
        )
    n_out = n_object_classes + 2
    bnd = n_out - 1
    t = np.zeros(a.shape + (n_out,), np.uint8)
    t[..., 0] = a == BACKGROUND
    lines = touching_lines(a)
    t[..., bnd] = lines
    near_bg = _neighbour_equals(a, BACKGROUND)
    near_unknown = _neighbour_equals(np.where(lines, -1, a), 0)
    for k in range(FIRST_OBJECT, n_object_classes + 2):
        obj = a == k
        cls = k - 1
        edge = obj & near_bg
        # a pixel beside a touching line is inside its object, as in a mask
        interior = obj & ~_neighbour_differs(np.where(lines, k, a))
        partial = obj & ~edge & ~interior
        t[..., bnd] |= edge | partial
        t[..., cls] |= interior | partial
        # an object pixel touching another object class but no background or unknown
        # pixel stays a plain class pixel
        other = partial & ~near_unknown
        t[..., bnd] &= ~other
    return t


def mask_targets(mask: np.ndarray, n_object_classes: int = 1) -> np.ndarray:
    """Targets from a dense instance mask (2D): background, object, boundary.

    A mask names instances, not classes: for a network with several object classes an
    interior pixel may be any of them (a partial label), so a mask teaches where the
    objects are and leaves their classes to the annotations.
    """
    m = np.asarray(mask)
    if m.ndim != 2:
        raise UserInputError(f"mask must be 2D here, got shape {m.shape}")
    n_out = n_object_classes + 2
    t = np.zeros(m.shape + (n_out,), np.uint8)
    bnd = instance_boundaries(m)
    t[..., 0] = m == 0
    t[..., 1 : n_out - 1] = ((m > 0) & ~bnd)[..., None]
    t[..., n_out - 1] = bnd
    return t


def annotation_object_classes(annotation: np.ndarray) -> int:
    """Object classes an annotation uses: its highest label − 1 (at least 1)."""
    a = np.asarray(annotation)
    if a.size == 0 or a.dtype.kind not in "uib":
        return 1
    return max(1, int(a.max(initial=0)) - 1)


def annotated_pixel_counts(annotation) -> dict[int, int]:
    """How many pixels carry each annotation label (0 excluded); ``{}`` for anything
    that is not a non-negative integer array."""
    a = np.asarray(annotation)
    if a.dtype.kind not in "ui" or a.size == 0 or (a.dtype.kind == "i" and a.min() < 0):
        return {}
    counts = np.bincount(a.ravel(), minlength=int(a.max()) + 1)
    return {int(v): int(c) for v, c in enumerate(counts) if v and c}


def _where(a: np.ndarray, value: int) -> str:
    """Where ``value`` lies in ``a``: its pixel count and bounding box, in words."""
    hits = np.nonzero(a == value)
    n = int(hits[0].size)
    names = ("plane", "row", "column")[-a.ndim :] if a.ndim <= 3 else None
    parts = []
    for i, idx in enumerate(hits):
        lo, hi = int(idx.min()), int(idx.max())
        name = names[i] if names else f"axis {i}"
        parts.append(f"{name}s {lo}–{hi}" if hi > lo else f"{name} {lo}")
    return f"{n:,} pixel{'s' if n != 1 else ''} at {', '.join(parts)}"


def _looks_like_a_mask(a: np.ndarray, values: list[int]) -> bool:
    """Whether labels ``values`` (1..N) of ``a`` look like the ids of an instance mask:
    each one connected region, and label 1 (background, in an annotation usually the
    largest strokes) no larger than a typical one of the others."""
    from scipy import ndimage

    counts = np.bincount(a.ravel(), minlength=max(values) + 1)
    if counts[1] > 2 * np.median(counts[values[1:]]):
        return False
    boxes = ndimage.find_objects(a.astype(np.int64, copy=False))
    for v in values:
        _, n = ndimage.label(a[boxes[v - 1]] == v)
        if n != 1:
            return False
    return True


#: An annotation whose labels 1..N (N at least this) each form one connected region is
#: taken for an instance mask given as an annotation.
MASK_LIKE_LABELS = 6


def check_classes_painted(annotations, known_classes: int = 1) -> None:
    """Refuse annotations whose labels would give a network object classes nobody
    painted: the rule "highest label − 1" makes label 7 a 6-class network, so a stray
    7 among labels 1–3 (or an instance mask given as an annotation) would silently train
    classes 3–6 on nothing.

    ``annotations``: ``(name, array)`` pairs (arrays in memory; the labels of all of
    them together count); ``known_classes``: the object classes the network already
    has (labels up to ``known_classes + 1`` need no painting now). The message names
    the stray value, where it is and how many pixels it has, and the likely mistake.
    """
    items = [(n, np.asarray(a)) for n, a in annotations if isinstance(a, np.ndarray)]
    items = [(n, a) for n, a in items if a.size and a.dtype.kind in "ui"]
    if not items:
        return
    present: set[int] = set()
    for _, a in items:
        present |= {int(v) for v in np.unique(a)}
    top = max(present)
    first_new = known_classes + 2  # the first label that would add a class
    if top < first_new:
        return
    missing = [v for v in range(FIRST_OBJECT, top) if v not in present and v >= first_new]
    mask_hint = (
        "if this is an instance mask (one id per object), it is given as a mask (--mask), "
        "not as an annotation (1 = background, 2, 3, … = object classes)"
    )
    if missing:
        strays = sorted(v for v in present if v > missing[0])
        v = strays[-1]
        name, a = next((n, a) for n, a in items if (a == v).any())
        gap = ", ".join(map(str, missing[:6])) + (", …" if len(missing) > 6 else "")
        others = f" (and {len(strays) - 1} other label(s) above the gap)" if len(strays) > 1 else ""
        raise UserInputError(
            f"{name}: label {v} is painted ({_where(a, v)}){others} but label(s) {gap} "
            f"nowhere, so the network would get {top - 1} object classes of which "
            f"{len(missing)} were never painted. If {v} is a stray stroke, paint it over "
            f"with 0, 1 or a class in use; number further classes 3, 4, … without gaps; "
            f"{mask_hint}"
        )
    if top >= MASK_LIKE_LABELS:
        for name, a in items:
            values = [v for v in range(1, top + 1) if v in present]
            if set(np.unique(a)) >= set(values) and _looks_like_a_mask(a, values):
                raise UserInputError(
                    f"{name} looks like an instance mask, not an annotation: its labels "
                    f"1–{top} are each one object, so the network would get {top - 1} "
                    f"object classes with label 1 (background) on one object; {mask_hint}"
                )
