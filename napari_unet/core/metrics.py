"""Evaluation of instance label images against ground truth (numpy/scipy only).

Pixel Dice and IoU on foreground; instances matched one-to-one (Hungarian matching on
IoU) at IoU ≥ 0.5 for precision / recall / F1; mean average precision over IoU
thresholds 0.5:0.05:0.95 with the 2018 Data Science Bowl definition
``AP(t) = TP / (TP + FP + FN)``.
"""

from __future__ import annotations

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


def match_counts(iou: np.ndarray, threshold: float) -> tuple[int, int, int]:
    """True positives, false positives and false negatives at an IoU threshold."""
    from scipy.optimize import linear_sum_assignment

    n_true, n_pred = iou.shape
    if n_true == 0 or n_pred == 0:
        return 0, n_pred, n_true
    if threshold > 0.5 or max(n_true, n_pred) > 5000:
        # pairs with IoU > 0.5 are necessarily one-to-one: no assignment to solve
        tp = int((iou >= threshold).sum())
    else:
        rows, cols = linear_sum_assignment(-iou)
        tp = int((iou[rows, cols] >= threshold).sum())
    return tp, n_pred - tp, n_true - tp


def evaluate(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """All evaluation figures of a predicted instance label image against truth.

    Returns
    -------
    dict
        ``pixel_dice, pixel_iou, precision, recall, f1`` (instances at IoU ≥ 0.5),
        ``mean_ap`` (IoU 0.5:0.95) and the instance counts.
    """
    pred = np.asarray(pred)
    truth = np.asarray(truth)
    if pred.shape != truth.shape:
        raise UserInputError(
            f"prediction {pred.shape} and ground truth {truth.shape} differ in shape"
        )
    for name, a in (("prediction", pred), ("ground truth", truth)):
        if not (np.issubdtype(a.dtype, np.integer) or a.dtype == bool):
            raise UserInputError(f"{name} must be a label image of integers, got {a.dtype}")
    dice, iou_px = pixel_scores(pred, truth)
    iou, t_ids, p_ids = iou_matrix(pred, truth)
    tp, fp, fn = match_counts(iou, 0.5)
    precision = tp / (tp + fp) if tp + fp else (1.0 if fn == 0 else 0.0)
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    aps = []
    for thr in AP_THRESHOLDS:
        a, b, c = match_counts(iou, float(thr))
        aps.append(a / (a + b + c) if a + b + c else 1.0)
    return {
        "pixel_dice": round(dice, 6),
        "pixel_iou": round(iou_px, 6),
        "precision": round(float(precision), 6),
        "recall": round(float(recall), 6),
        "f1": round(float(f1), 6),
        "mean_ap": round(float(np.mean(aps)), 6),
        "n_true": int(len(t_ids)),
        "n_pred": int(len(p_ids)),
        "tp": int(tp),
    }
