"""Evaluation of instance label images against ground truth (numpy/scipy only).

Pixel Dice and IoU on foreground; instances matched one-to-one (Hungarian matching on
IoU) at IoU ≥ 0.5 for precision / recall / F1; mean average precision over IoU
thresholds 0.5:0.05:0.95 with the 2018 Data Science Bowl definition
``AP(t) = TP / (TP + FP + FN)``.

Stacks are scored along their axes (the letters of
:mod:`napari_unet.core.files.image_axes`): a volume (``ZYX``) as one volume, its objects
3D (an object is the set of its voxels through every plane, so one object cut into two
ids between planes is one match and one false positive, however perfect each plane
looks alone); a time-lapse (``TYX``, or planes ``S``) frame by frame, each frame's
objects matched only within that frame and the counts summed over the frames; ``TZYX``
one 3D volume per time point. IoU counts voxels: the z-step does not change it. The
result says which (``matching``, ``axes``; :func:`describe_scores` for a person).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import UserInputError

AP_THRESHOLDS = tuple(np.round(np.arange(0.5, 0.96, 0.05), 2))


def pixel_scores(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Foreground Dice and IoU of two label images (any positive value is foreground)."""
    p = np.asarray(pred) > 0
    t = np.asarray(truth) > 0
    inter = np.logical_and(p, t).sum(dtype=np.int64)
    total = p.sum(dtype=np.int64) + t.sum(dtype=np.int64)
    union = total - inter
    dice = 1.0 if total == 0 else 2.0 * inter / total
    iou = 1.0 if union == 0 else inter / union
    return float(dice), float(iou)


def iou_matrix(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IoU between every truth instance (rows) and predicted instance (columns).

    Returns the matrix and the truth and prediction ids of its rows and columns.
    """
    p = np.asarray(pred).ravel()
    t = np.asarray(truth).ravel()
    t_ids = np.unique(t[t > 0])
    p_ids = np.unique(p[p > 0])
    iou = np.zeros((len(t_ids), len(p_ids)), np.float64)
    if len(t_ids) == 0 or len(p_ids) == 0:
        return iou, t_ids, p_ids
    both = (t > 0) & (p > 0)
    pairs, inter = np.unique(
        np.stack([t[both], p[both]]).astype(np.int64), axis=1, return_counts=True
    )
    t_area = dict(zip(*np.unique(t[t > 0], return_counts=True)))
    p_area = dict(zip(*np.unique(p[p > 0], return_counts=True)))
    ti = np.searchsorted(t_ids, pairs[0])
    pi = np.searchsorted(p_ids, pairs[1])
    ta = np.array([t_area[v] for v in pairs[0]], np.float64)
    pa = np.array([p_area[v] for v in pairs[1]], np.float64)
    iou[ti, pi] = inter / (ta + pa - inter)
    return iou, t_ids, p_ids


def matches(iou: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Rows (truth) and columns (prediction) of the one-to-one matches at an IoU
    threshold: the pairs :func:`match_counts` counts."""
    from scipy.optimize import linear_sum_assignment

    n_true, n_pred = iou.shape
    if n_true == 0 or n_pred == 0:
        rows = cols = np.zeros(0, np.int64)
    elif threshold > 0.5 or max(n_true, n_pred) > 5000:
        # pairs with IoU > 0.5 are necessarily one-to-one: no assignment to solve
        rows, cols = np.nonzero(iou >= threshold)
    else:
        rows, cols = linear_sum_assignment(-iou)
        keep = iou[rows, cols] >= threshold
        rows, cols = rows[keep], cols[keep]
    return rows.astype(np.int64), cols.astype(np.int64)


def match_counts(iou: np.ndarray, threshold: float) -> tuple[int, int, int]:
    """True positives, false positives and false negatives at an IoU threshold."""
    tp = len(matches(iou, threshold)[0])
    n_true, n_pred = iou.shape
    return tp, n_pred - tp, n_true - tp


def _prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    precision = tp / (tp + fp) if tp + fp else (1.0 if fn == 0 else 0.0)
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return float(precision), float(recall), float(f1)


def instance_class_map(labels: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """``labels`` with every instance replaced by its class: the class most of its
    pixels carry in ``classes`` (0 when none of them carries one)."""
    labels = np.asarray(labels).ravel().astype(np.int64)
    cls = np.asarray(classes).ravel().astype(np.int64)
    n_ids, n_cls = int(labels.max(initial=0)) + 1, int(cls.max(initial=0)) + 1
    on = (labels > 0) & (cls > 0)
    votes = np.bincount(labels[on] * n_cls + cls[on], minlength=n_ids * n_cls)
    votes = votes.reshape(n_ids, n_cls)
    best = np.argmax(votes, axis=1)
    best[votes.max(axis=1) == 0] = 0
    return best[labels].reshape(np.shape(classes))


def per_class_scores(
    pred: np.ndarray, truth: np.ndarray, pred_classes: np.ndarray, truth_classes: np.ndarray
) -> dict[str, dict[str, float]]:
    """Precision, recall and F1 (IoU ≥ 0.5) and pixel Dice of each object class.

    Each instance takes the class most of its pixels carry in its class map; the
    instances of one class are matched against the true instances of that class, so
    an object found with the wrong class is a false positive of the class it was given
    and a false negative of its own.

    Returns
    -------
    dict
        ``{"1": {...}, "2": {...}, …}`` keyed by class id, each with ``precision,
        recall, f1, pixel_dice, n_true, n_pred, tp``.
    """
    pred_cls = instance_class_map(pred, pred_classes)
    truth_cls = instance_class_map(truth, truth_classes)
    out = {}
    present = np.union1d(np.unique(pred_cls), np.unique(truth_cls))
    for c in (int(v) for v in present if v > 0):
        p = np.where(pred_cls == c, pred, 0)
        t = np.where(truth_cls == c, truth, 0)
        iou, t_ids, p_ids = iou_matrix(p, t)
        tp, fp, fn = match_counts(iou, 0.5)
        precision, recall, f1 = _prf(tp, fp, fn)
        dice, _ = pixel_scores(p, t)
        out[str(c)] = {
            "precision": round(precision, 6),
            "recall": round(recall, 6),
            "f1": round(f1, 6),
            "pixel_dice": round(dice, 6),
            "n_true": int(len(t_ids)),
            "n_pred": int(len(p_ids)),
            "tp": int(tp),
        }
    return out


#: How the objects of a stack were matched, by the kind of its axes (``matching``).
MATCHING = {
    (False, False): "2d",
    (False, True): "3d",
    (True, False): "2d per frame",
    (True, True): "3d per frame",
}
#: Axes along which every index is a frame of its own: time, and planes one by one.
FRAME_AXES = "TS"


def label_axes(shape, axes: str | None = None) -> str:
    """The axis letters of a label image of ``shape``: ``axes`` checked against it (a
    channel axis refused: labels have none), else the shape rule of
    :func:`napari_unet.core.files.image_axes.decide_axes` (one stack axis is Z, two are
    T, Z)."""
    from .files.image_axes import decide_axes

    shape = tuple(int(s) for s in shape)
    if len(shape) < 2:
        raise UserInputError(f"a label image has at least two axes (Y, X), got shape {shape}")
    letters = decide_axes(shape, channel_axis=None, axes=axes, name="each label image").axes
    if "C" in letters:
        raise UserInputError(
            f"label images have no channel axis: axes {letters} do not fit labels of shape "
            f"{shape} (say Z, T, Y and X)"
        )
    return letters


def _matching(letters: str) -> str:
    """``matching`` of a stack with axis letters ``letters``."""
    stack = letters[:-2]
    return MATCHING[(any(a in FRAME_AXES for a in stack), "Z" in stack)]


def _frames_apart(a: np.ndarray, letters: str) -> np.ndarray:
    """Labels whose ids differ between frames (axes ``T``/``S``), so that matching the
    whole stack at once matches each frame's objects only within their frame.

    Ids become consecutive (0 stays background); ids one frame shares with another
    become distinct objects, as frames scored one by one would count them."""
    frame_axes = [i for i, c in enumerate(letters[:-2]) if c in FRAME_AXES]
    if not frame_axes:
        return a
    shape = a.shape
    frame = np.zeros(shape, np.int64)
    stride = 1
    for i in reversed(frame_axes):
        index = np.arange(shape[i], dtype=np.int64).reshape(
            [-1 if k == i else 1 for k in range(a.ndim)]
        )
        frame = frame + index * stride
        stride *= shape[i]
    ids = a.astype(np.int64)
    n_ids = int(ids.max(initial=0)) + 1
    keys = np.where(ids > 0, frame * n_ids + ids, 0)
    _, inverse = np.unique(keys, return_inverse=True)
    inverse = inverse.reshape(shape)
    return inverse if (keys == 0).any() else inverse + 1


def describe_scores(scores: dict[str, Any]) -> str:
    """One plain line: how the labels were matched and the main figures, e.g.
    ``scored as a 3D volume (Z×Y×X, objects matched in 3D): 20 true objects, 22 predicted,
    18 matched at IoU ≥ 0.5, F1 0.857, pixel Dice 0.912``."""
    letters = str(scores.get("axes", ""))
    shown = "×".join(letters)
    matching = scores.get("matching", "2d")
    frames = int(scores.get("frames", 1))
    t = next((a for a in letters[:-2] if a in FRAME_AXES), "T")
    volume = "×".join(a for a in letters if a not in FRAME_AXES)
    how = {
        "2d": f"scored as a 2D image ({shown})",
        "3d": f"scored as a 3D volume ({shown}, objects matched in 3D)",
        "2d per frame": f"scored frame by frame ({t}={frames}, each frame in 2D; counts summed "
        "over the frames)",
        "3d per frame": f"scored one 3D volume per frame ({t}={frames}, each {volume}; objects "
        "matched in 3D within their frame, counts summed)",
    }[matching]
    return (
        f"{how}: {scores.get('n_true', 0)} true objects, {scores.get('n_pred', 0)} predicted, "
        f"{scores.get('tp', 0)} matched at IoU ≥ 0.5, F1 {scores['f1']:.3f}, "
        f"pixel Dice {scores['pixel_dice']:.3f}"
    )


def _check_labels(name: str, a: np.ndarray) -> None:
    if not (np.issubdtype(a.dtype, np.integer) or a.dtype == bool):
        raise UserInputError(f"{name} must be a label image of integers, got {a.dtype}")


def evaluate(
    pred: np.ndarray,
    truth: np.ndarray,
    pred_classes: np.ndarray | None = None,
    truth_classes: np.ndarray | None = None,
    axes: str | None = None,
) -> dict[str, Any]:
    """All evaluation figures of a predicted instance label image against truth.

    Parameters
    ----------
    pred, truth
        Instance labels (0 = background).
    pred_classes, truth_classes
        Class maps of the same shape (0 = background, 1..n = object class), both or
        neither: with them the result holds ``per_class`` figures
        (:func:`per_class_scores`).
    axes
        The labels' axis letters (``"YX"``, ``"ZYX"``, ``"TYX"``, ``"TZYX"``; ``S`` as
        ``T``); ``None``: from the shape (one stack axis is Z, two are T, Z). Z is matched
        in 3D, T frame by frame (see the module docstring).

    Returns
    -------
    dict
        ``pixel_dice, pixel_iou, precision, recall, f1`` (instances at IoU ≥ 0.5),
        ``mean_ap`` (IoU 0.5:0.95), the instance counts (summed over frames),
        ``matching`` (``"2d"``, ``"3d"``, ``"2d per frame"``, ``"3d per frame"``),
        ``axes``, ``frames`` (1 without T) and, with class maps, ``per_class``.
    """
    pred = np.asarray(pred)
    truth = np.asarray(truth)
    if pred.shape != truth.shape:
        raise UserInputError(
            f"prediction {pred.shape} and ground truth {truth.shape} differ in shape"
        )
    _check_labels("prediction", pred)
    _check_labels("ground truth", truth)
    if (pred_classes is None) != (truth_classes is None):
        raise UserInputError(
            "per-class scores need two class maps: give the prediction's and the ground "
            "truth's, or neither"
        )
    if pred_classes is not None:
        for name, a in (("prediction classes", pred_classes), ("truth classes", truth_classes)):
            a = np.asarray(a)
            _check_labels(name, a)
            if a.shape != pred.shape:
                raise UserInputError(
                    f"the {name} {a.shape} and the labels {pred.shape} differ in shape"
                )
    letters = label_axes(pred.shape, axes)
    matching = _matching(letters)
    frames = _n_frames(pred.shape, letters)
    pred, truth = _frames_apart(pred, letters), _frames_apart(truth, letters)
    dice, iou_px = pixel_scores(pred, truth)
    iou, t_ids, p_ids = iou_matrix(pred, truth)
    result = _scores(lambda thr: match_counts(iou, thr), dice, iou_px, len(t_ids), len(p_ids))
    result.update(matching=matching, axes=letters, frames=frames)
    if pred_classes is not None:
        result["per_class"] = per_class_scores(pred, truth, pred_classes, truth_classes)
    return result


def _n_frames(shape, letters: str) -> int:
    return int(np.prod([n for n, a in zip(shape, letters, strict=True) if a in FRAME_AXES]))


def _scores(counts_at, dice: float, iou_px: float, n_true: int, n_pred: int) -> dict[str, Any]:
    """The figures of :func:`evaluate` from the pixel scores and ``counts_at(threshold)
    -> (tp, fp, fn)`` (instances matched at that IoU)."""
    tp, fp, fn = counts_at(0.5)
    precision, recall, f1 = _prf(tp, fp, fn)
    aps = []
    for thr in AP_THRESHOLDS:
        a, b, c = counts_at(float(thr))
        aps.append(a / (a + b + c) if a + b + c else 1.0)
    return {
        "pixel_dice": round(float(dice), 6),
        "pixel_iou": round(float(iou_px), 6),
        "precision": round(float(precision), 6),
        "recall": round(float(recall), 6),
        "f1": round(float(f1), 6),
        "mean_ap": round(float(np.mean(aps)), 6),
        "n_true": int(n_true),
        "n_pred": int(n_pred),
        "tp": int(tp),
    }


def _blocks(shape: tuple[int, ...], block: int):
    for y in range(0, shape[0], block):
        for x in range(0, shape[1], block):
            yield slice(y, min(y + block, shape[0])), slice(x, min(x + block, shape[1]))


def evaluate_blockwise(pred, truth, block: int | None = None, axes: str | None = None) -> dict:
    """:func:`evaluate` (without classes) of two label images read block by block:
    chunked (dask, zarr) arrays too large for memory. Exactly the same figures: the
    foreground pixel counts, the area of every id and the overlap of every (truth,
    prediction) pair of ids are summed over the blocks, then matched as a whole.

    A stack is read one plane at a time, each in ``(Y, X)`` blocks; ``axes`` as in
    :func:`evaluate`: the counts of a Z stack add up over its planes (objects in 3D),
    those of a T stack are kept per frame (each id counts once per frame).

    Memory holds one block (edge ``block``, default
    :data:`napari_unet.core.training.huge_annotations.BLOCK`) of each image and one count per id and per
    overlapping pair; an instance across a block border is still one instance.
    """
    from .training.huge_annotations import BLOCK

    shape = tuple(int(n) for n in pred.shape)
    if shape != tuple(int(n) for n in truth.shape):
        raise UserInputError(
            f"prediction {shape} and ground truth {tuple(truth.shape)} differ in shape"
        )
    for name, a in (("prediction", pred), ("ground truth", truth)):
        _check_labels(name, np.empty(0, np.dtype(a.dtype)))
    letters = label_axes(shape, axes)
    frame_axes = [i for i, c in enumerate(letters[:-2]) if c in FRAME_AXES]
    inter_px = p_px = t_px = 0
    # keys: (frame, id) for an area, (frame, truth id, prediction id) for an overlap
    t_area: dict[tuple[int, ...], int] = {}
    p_area: dict[tuple[int, ...], int] = {}
    overlap: dict[tuple[int, ...], int] = {}

    def add(into: dict, keys, counts) -> None:
        for k, c in zip(keys, counts):
            into[k] = into.get(k, 0) + int(c)

    lead = shape[:-2]
    for plane in np.ndindex(*lead):
        f = (
            int(np.ravel_multi_index([plane[i] for i in frame_axes], [lead[i] for i in frame_axes]))
            if frame_axes
            else 0
        )
        for ys, xs in _blocks(shape[-2:], int(block or BLOCK)):
            p = np.asarray(pred[(*plane, ys, xs)]).ravel().astype(np.int64)
            t = np.asarray(truth[(*plane, ys, xs)]).ravel().astype(np.int64)
            pf, tf = p > 0, t > 0
            both = pf & tf
            inter_px += int(both.sum())
            p_px += int(pf.sum())
            t_px += int(tf.sum())
            for area, v in ((t_area, t[tf]), (p_area, p[pf])):
                ids, counts = np.unique(v, return_counts=True)
                add(area, ((f, k) for k in ids.tolist()), counts)
            if both.any():
                pairs, counts = np.unique(np.stack([t[both], p[both]]), axis=1, return_counts=True)
                add(overlap, zip([f] * len(counts), pairs[0].tolist(), pairs[1].tolist()), counts)
    total = p_px + t_px
    union = total - inter_px
    dice = 1.0 if total == 0 else 2.0 * inter_px / total
    iou_px = 1.0 if union == 0 else inter_px / union
    t_index = {k: i for i, k in enumerate(sorted(t_area))}
    p_index = {k: i for i, k in enumerate(sorted(p_area))}
    pair_iou = np.array(
        [c / (t_area[(f, a)] + p_area[(f, b)] - c) for (f, a, b), c in overlap.items()],
        np.float64,
    )

    def counts_at(threshold: float) -> tuple[int, int, int]:
        n_true, n_pred = len(t_index), len(p_index)
        if threshold > 0.5 or max(n_true, n_pred) > 5000 or not overlap:
            # as match_counts: pairs above 0.5 IoU are one-to-one
            tp = int((pair_iou >= threshold).sum()) if n_true and n_pred else 0
            return tp, n_pred - tp, n_true - tp
        iou = np.zeros((n_true, n_pred), np.float64)
        rows = [t_index[(f, a)] for f, a, _ in overlap]
        cols = [p_index[(f, b)] for f, _, b in overlap]
        iou[rows, cols] = pair_iou
        return match_counts(iou, threshold)

    result = _scores(counts_at, dice, iou_px, len(t_index), len(p_index))
    result.update(matching=_matching(letters), axes=letters, frames=_n_frames(shape, letters))
    return result
