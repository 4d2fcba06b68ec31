"""Before and after: the same figures for two networks on the same annotated pixels.

After a training run the person must see whether the new model is better than the one
it would replace, measured on their own annotations: the part that training held out
for validation (:attr:`ValidationSet.held_out`), or, when nothing was held out, the
annotated pixels the new model trained on (which flatters the new model; said so).

An annotation copied from a prediction ("Use prediction as annotation") is mostly the
previous model's own output: on those pixels it is right by construction, and where no
correction was held out it scores itself a perfect 1.000, which says nothing. Planes that
know which pixels a person painted (:attr:`~napari_unet.core.training.samples.TrainingPair.painted`)
therefore add a figure of their own, *corrections*: the share of the held-out painted
pixels each model gets right (the previous model, which made the copy, gets few). The
validation split holds out part of the corrections for this
(:func:`~napari_unet.core.training.samples.split_validation`); with none held out there is nothing
fair to compare on, and :func:`compare` says so (verdict ``"untested"``) instead of
judging. What the person kept counts too (a model that fixes the corrections but
breaks what was right is not better), but not pixel by pixel: on its own copy the
previous model is right to the pixel, and any other model draws some outlines a pixel
apart, so pixel Dice there drops for nearly every new model (on the development series'
copy-and-correct runs it called 23 of the 32 runs that raised the other images worse:
benchmarks/RESULTS.md, "The main loop's verdict"). On such a plane the figure
is instance F1 against the annotation's objects (copied and corrected alike, each a
connected region of one object label: :func:`~napari_unet.core.prediction.instances.
annotated_objects`, as the post-processing search reads them): an object kept is one the model still finds
(IoU ≥ 0.5), whatever its outline; a lost, merged or split object counts.

Each network segments the planes exactly as Segment would (:meth:`UNet.predict` with
the model's own settings), and is scored on the chosen pixels only:

- pixel Dice of object against background on the annotated pixels (annotation 1 is
  background, 2 and above object; a mask: 0 background, any id object), except on a
  copied prediction;
- instance F1 (one-to-one matches at IoU ≥ 0.5) where a dense mask or a copied
  prediction says what the objects are, both label images cut to the chosen pixels.

:func:`compare` turns two scores into a verdict, :func:`judge` two networks (as Train
does after a run). Numpy and scipy only; the networks are handed in (TensorFlow is theirs).

A held-out part of one annotated image holds few objects (a median of 8 on the development
series; cytoplasm 1 to 3), and a figure on 8 objects moves by 0.1 when one object is
split differently. Judged on the raw figures, a drop by more than a tenth of a point kept
the previous model in 9 of 45 development runs, 7 of them runs that had made the model
better on the series' other images (benchmarks/RESULTS.md, "Does Train's before/after see
it?"). So every scored pixel belongs to one *annotated object* (the nearest one: a true
object with the background around it; a plane with no object is one unit of its own), and
a change counts only where it is clear against the spread across those objects: in at
least :data:`CONFIDENCE` of :data:`RESAMPLES` paired bootstrap resamples of the objects,
and with at least :data:`MIN_UNITS` of them held out. Anything less is "no clear
difference", and Train keeps the new model (the person asked for it; "Go back" is a click
away).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Differences smaller than this (a tenth of a point) are "about the same".
SAME_WITHIN = 0.001
#: paired bootstrap resamples of the held-out annotated objects (seeded: the same
#: figures give the same verdict)
RESAMPLES = 1000
#: a figure rose or dropped clearly when it did so in at least this share of them
CONFIDENCE = 0.95
#: with fewer annotated objects held out, no change is clear (five out of five one way
#: is the least a sign test calls clear at 5 %)
MIN_UNITS = 5
#: per annotated object, the counts each figure is made of (:attr:`Scores.units`)
UNIT_COUNTS = ("tp", "fp", "fn", "right", "painted", "itp", "ifp", "ifn")


@dataclass
class ValidationSet:
    """2D planes (channels-last images at their own pixels) with the pixels to score.

    ``planes`` are :class:`~napari_unet.core.training.samples.TrainingPair` objects;
    ``selections`` hold a boolean map per plane; ``held_out`` says whether the pixels
    are the validation part that training kept out (else: the training pixels);
    ``painted`` the painted pixels among them (``None`` for a plane painted from
    scratch); ``corrections`` whether some plane knows its painted pixels (a copied
    prediction, corrected); ``reason`` why nothing is scored (empty when something is).
    """

    planes: list
    selections: list[np.ndarray]
    held_out: bool
    corrections: bool = False
    reason: str = ""
    painted: list = field(default_factory=list)

    @classmethod
    def from_training(
        cls, planes: Sequence, validation: Sequence[np.ndarray] | None = None
    ) -> ValidationSet:
        """The pixels of ``planes`` training held out (``validation``: one boolean map
        per plane, at the plane's own size or at the scale it trained at), or, with no
        held-out pixel, every labelled pixel of the planes; with the painted ones among
        them where a plane knows them (a copied prediction, corrected)."""
        from ..prediction.object_size import resize_to

        held = validation is not None and any(np.any(m) for m in validation)
        keep_planes, selections, painted_sel = [], [], []
        corrections = False
        for i, p in enumerate(planes):
            labels = np.asarray(p.labels)
            labelled = labels > 0 if p.kind == "annotation" else np.ones(labels.shape, bool)
            if held:
                m = np.asarray(validation[i], bool)
                if m.shape != labels.shape:
                    m = resize_to(m.astype(np.uint8), labels.shape, labels=True) > 0
                sel = m & labelled
            else:
                sel = labelled
            painted = p.painted  # a TrainingPair checks its shape
            if painted is not None:
                corrections = True
                painted = np.asarray(painted, bool) & sel
            else:
                painted = None
            if sel.any():
                keep_planes.append(p)
                selections.append(sel)
                painted_sel.append(painted)
        reason = ""
        if corrections and not any(m is not None and m.any() for m in painted_sel):
            # the annotation is the previous model's copied prediction wherever it is scored
            reason = (
                "none of your corrections was held out for validation (they all went into "
                "training), and the rest of the annotation is the previous model's own "
                "prediction"
                if held
                else "the annotation is the copied prediction with no correction painted"
            )
            keep_planes, selections, painted_sel = [], [], []
        elif not keep_planes:
            reason = "no annotated pixel to measure on"
        return cls(keep_planes, selections, bool(held), corrections, reason, painted_sel)

    @property
    def pixels(self) -> int:
        return int(sum(int(s.sum()) for s in self.selections))

    def where(self) -> str:
        """Which annotations the figures are measured on, in words."""
        if not self.planes:
            return ""
        where = (
            f"on the {self.pixels:,} annotated pixels training held out for validation"
            if self.held_out
            else f"on the {self.pixels:,} annotated pixels the new model trained on (no part "
            "was held out for validation, so the new model's figure is flattered)"
        )
        if self.corrections:
            n = sum(int(m.sum()) for m in self.painted if m is not None)
            where += (
                "; F1: the objects of your annotation there, copied or corrected, that the "
                "model finds (IoU ≥ 0.5), however it draws their outlines; corrections: the "
                f"share of the {n:,} pixels you painted there that the model gets right (the "
                "rest is the copied prediction, right for the previous model by "
                "construction)"
            )
        return where


@dataclass(frozen=True)
class Scores:
    """A network's figures on a :class:`ValidationSet`."""

    dice: float | None  # pixel Dice, object vs background, on the scored pixels
    f1: float | None  # instance F1 at IoU ≥ 0.5 where masks or copies were scored, else None
    pixels: int
    objects: int  # true instances the F1 counts
    #: share of the scored painted pixels (corrections of a copied prediction) right
    corrections: float | None = None
    #: per annotated object (see the module's docstring), the counts of
    #: :data:`UNIT_COUNTS` the figures are sums of; ``None`` for figures handed in whole
    units: tuple | None = field(default=None, repr=False)

    def figures(self) -> dict[str, float]:
        pairs = (("Dice", self.dice), ("F1", self.f1), ("corrections", self.corrections))
        return {k: v for k, v in pairs if v is not None}

    def text(self) -> str:
        """``"Dice 0.912 · F1 0.850"``."""
        figs = self.figures()
        return " · ".join(f"{k} {v:.3f}" for k, v in figs.items()) if figs else "no figure"


def score_network(net: Any, data: ValidationSet) -> Scores:
    """Segment each plane of ``data`` with ``net`` as Segment would and score the
    selected pixels (see the module's docstring), object by annotated object."""
    rows = []
    instances = False
    painted_maps = data.painted or [None] * len(data.planes)
    for plane, sel, painted in zip(data.planes, data.selections, painted_maps, strict=True):
        labels = np.asarray(plane.labels)
        pred = np.asarray(net.predict(np.asarray(plane.image), channel_axis=-1).labels)
        pred = pred.reshape(labels.shape)
        instances = instances or plane.kind == "mask" or painted is not None
        rows.append(_unit_counts(plane.kind, labels, pred, sel, painted))
    units = np.concatenate(rows) if rows else np.zeros((0, len(UNIT_COUNTS)), np.int64)
    dice, f1, corrections = _figures(units.sum(axis=0), instances)
    objects = int(units[:, 5].sum() + units[:, 7].sum())  # true instances: matched or missed
    return Scores(
        dice,
        f1,
        data.pixels,
        objects,
        corrections,
        tuple(map(tuple, units.tolist())),
    )


def _unit_counts(
    kind: str, labels: np.ndarray, pred: np.ndarray, sel: np.ndarray, painted: np.ndarray | None
) -> np.ndarray:
    """One row of :data:`UNIT_COUNTS` per annotated object of one plane: each selected
    pixel counts for the nearest true object (the background around an object is its
    part), a missed true object for itself, a false one for the object it lies on most.
    A plane with ``painted`` pixels is a copied prediction: its objects count (instance
    F1), not its pixels (see the module's docstring)."""
    from scipy import ndimage as ndi

    from ..metrics import iou_matrix, matches
    from ..prediction.instances import annotated_objects

    # only the box around the scored pixels: every object counted lies in it
    (box,) = ndi.find_objects(sel.view(np.uint8))
    labels, pred, sel = labels[box], pred[box], sel[box]
    painted = None if painted is None else painted[box]
    truth_fg = labels >= 2 if kind == "annotation" else labels > 0
    # the objects the labels name, as the post-processing search reads them
    objects = np.where(sel, annotated_objects(labels, kind)[0], 0).astype(np.int64)
    ids = np.unique(objects[objects > 0])
    n = max(len(ids), 1)
    if len(ids):
        index = np.zeros(int(ids[-1]) + 1, np.int64)
        index[ids] = np.arange(len(ids))
        nearest = ndi.distance_transform_edt(
            objects == 0, return_distances=False, return_indices=True
        )
        unit = index[objects[tuple(nearest)]]
    else:  # no object among the scored pixels: they are one unit
        index = np.zeros(1, np.int64)
        unit = np.zeros(labels.shape, np.int64)
    counts = np.zeros((n, len(UNIT_COUNTS)), np.int64)
    if painted is None:  # pixel Dice, except on a copied prediction
        u = unit[sel]
        pred_fg = (pred > 0)[sel]
        fg = truth_fg[sel]
        for col, hit in enumerate((pred_fg & fg, pred_fg & ~fg, ~pred_fg & fg)):
            counts[:, col] = np.bincount(u[hit], minlength=n)
    if painted is not None and painted.any():
        right = ((pred > 0) == truth_fg)[painted]
        counts[:, 3] = np.bincount(unit[painted][right], minlength=n)
        counts[:, 4] = np.bincount(unit[painted], minlength=n)
    if kind == "mask" or painted is not None:
        cut = np.where(sel, pred, 0).astype(np.int64)
        iou, t_ids, p_ids = iou_matrix(cut, objects)
        matched_t, matched_p = matches(iou, 0.5)
        missed = np.ones(len(t_ids), bool)
        missed[matched_t] = False
        counts[:, 5] = np.bincount(index[t_ids[matched_t]], minlength=n)
        counts[:, 7] = np.bincount(index[t_ids[missed]], minlength=n)
        false = np.ones(len(p_ids), bool)
        false[matched_p] = False
        if false.any():
            # each false object counts for the annotated object it lies on most
            on = np.isin(cut, p_ids[false])
            pairs, area = np.unique(np.stack([cut[on], unit[on]]), axis=1, return_counts=True)
            order = np.lexsort((-area, pairs[0]))
            first = np.unique(pairs[0][order], return_index=True)[1]
            counts[:, 6] = np.bincount(pairs[1][order][first], minlength=n)
    return counts


def _figures(
    totals: np.ndarray, instances: bool
) -> tuple[float | None, float | None, float | None]:
    """Dice, F1 and corrections from summed :data:`UNIT_COUNTS` (``None`` where a figure
    has nothing to be measured on)."""
    figs = _figure_arrays(np.asarray(totals, np.float64)[None], instances)
    value = [figs[k][0] if k in figs else np.nan for k in ("Dice", "F1", "corrections")]
    return tuple(float(v) if np.isfinite(v) else None for v in value)


@dataclass(frozen=True)
class Comparison:
    """Two networks' figures on the same pixels and what they say.

    ``verdict``: ``"better"``, ``"worse"``, ``"same"`` (no figure moved clearly: see
    :func:`compare`), ``"new"`` (no previous model to compare with) or ``"untested"`` (no
    pixel to compare on fairly; ``where`` says why). ``units``: the annotated objects the
    verdict weighed the change across (``None`` for figures handed in whole).
    """

    before: Scores | None
    after: Scores
    verdict: str
    where: str = ""
    units: int | None = None

    @property
    def worse(self) -> bool:
        return self.verdict == "worse"

    def summary(self) -> str:
        """``"Before: Dice 0.910 · After: Dice 0.870 — worse"``."""
        if self.verdict == "untested":
            why = f": {self.where}" if self.where else ""
            return f"No fair comparison with the previous model{why}."
        after = f"After: {self.after.text()}"
        if self.before is None:
            return f"{after} — no previous model to compare with"
        return f"Before: {self.before.text()} · {after} — {self._words()}"

    def _words(self) -> str:
        if self.verdict != "same":
            return self.verdict
        a, b = self.after.figures(), self.before.figures() if self.before else {}
        moved = any(abs(a[k] - b[k]) > SAME_WITHIN for k in a if k in b)
        if not moved or self.units is None:
            return "about the same"
        if self.units < MIN_UNITS:
            return f"too few annotated objects ({self.units}) to tell which is better"
        return f"neither clearly better nor worse across the {self.units} annotated objects"

    def change(self) -> str:
        """The figure that tells, short: ``"Dice 0.910 → 0.870"`` (a figure that dropped
        when the new model is worse), ``"Dice 0.870"`` with nothing to compare with."""
        after = self.after.figures()
        if self.verdict == "untested":
            return "no fair comparison possible"
        if self.before is None or not after:
            return self.after.text()
        before = self.before.figures()
        keys = [k for k in after if k in before]
        if not keys:
            return self.after.text()
        key = keys[0]
        if self.worse:
            key = min(keys, key=lambda k: after[k] - before[k])
        elif self.verdict == "better":  # the figure that rose most
            key = max(keys, key=lambda k: after[k] - before[k])
        return f"{key} {before[key]:.3f} → {after[key]:.3f}"


def compare(before: Scores | None, after: Scores, where: str = "") -> Comparison:
    """The verdict on ``after`` against ``before``: worse when any figure both have
    dropped (a drop is never outweighed by a gain), better when none dropped and one
    rose, else the same; ``"untested"`` when the new model has no figure (no pixel to
    measure on: ``where`` should say why).

    A figure rose or dropped when it moved by more than :data:`SAME_WITHIN` and, for
    scores of the same annotated objects (:attr:`Scores.units`, as
    :func:`score_network` gives them), when it moved so in at least :data:`CONFIDENCE`
    of :data:`RESAMPLES` paired bootstrap resamples of those objects, at least
    :data:`MIN_UNITS` of them (see the module's docstring). A figure that moved down,
    clearly or not, keeps the verdict from "better"."""
    if not after.figures():
        return Comparison(before, after, "untested", where)
    if before is None:
        return Comparison(None, after, "new", where)
    a, b = after.figures(), before.figures()
    keys = [k for k in a if k in b]
    dropped = {k for k in keys if a[k] - b[k] < -SAME_WITHIN}
    rose = {k for k in keys if a[k] - b[k] > SAME_WITHIN}
    units = None
    if before.units is not None and after.units is not None:
        units = len(after.units)
        if len(before.units) != units:
            raise ValueError("the two scores are of different annotated objects")
        clear_drop, clear_rise = _clear_changes(before, after, keys)
        # better only with no figure down at all: an unclear drop is still a drop
        rose = rose & clear_rise if not dropped else set()
        dropped = dropped & clear_drop
    verdict = "worse" if dropped else "better" if rose else "same"
    return Comparison(before, after, verdict, where, units)


def _clear_changes(before: Scores, after: Scores, keys: list[str]) -> tuple[set, set]:
    """The figures among ``keys`` that dropped, and those that rose, by more than
    :data:`SAME_WITHIN` in at least :data:`CONFIDENCE` of the paired bootstrap resamples
    of the annotated objects (none with fewer than :data:`MIN_UNITS` objects)."""
    n = len(after.units)
    if n < MIN_UNITS:
        return set(), set()
    ub = np.asarray(before.units, np.float64).reshape(n, len(UNIT_COUNTS))
    ua = np.asarray(after.units, np.float64).reshape(n, len(UNIT_COUNTS))
    rng = np.random.default_rng(0)
    instances = after.f1 is not None
    down = {k: 0 for k in keys}
    up = {k: 0 for k in keys}
    counted = {k: 0 for k in keys}
    chunk = max(1, min(RESAMPLES, 2_000_000 // n))  # a bounded weight matrix at a time
    for start in range(0, RESAMPLES, chunk):
        w = rng.multinomial(n, np.full(n, 1.0 / n), size=min(chunk, RESAMPLES - start))
        fb = _figure_arrays(w @ ub, instances)
        fa = _figure_arrays(w @ ua, instances)
        for k in keys:
            d = fa[k] - fb[k]
            ok = np.isfinite(d)
            counted[k] += int(ok.sum())
            down[k] += int((d[ok] < -SAME_WITHIN).sum())
            up[k] += int((d[ok] > SAME_WITHIN).sum())
    clear_drop = {k for k in keys if counted[k] and down[k] >= CONFIDENCE * counted[k]}
    clear_rise = {k for k in keys if counted[k] and up[k] >= CONFIDENCE * counted[k]}
    return clear_drop, clear_rise


def _figure_arrays(totals: np.ndarray, instances: bool) -> dict[str, np.ndarray]:
    """Dice, corrections and (with ``instances``) instance F1 for each row of summed
    :data:`UNIT_COUNTS` (NaN: nothing to measure)."""
    tp, fp, fn, right, painted, itp, ifp, ifn = totals.T
    with np.errstate(invalid="ignore", divide="ignore"):
        out = {
            "Dice": np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan),
            "corrections": np.where(painted > 0, right / painted, np.nan),
        }
        if instances:
            den = 2 * itp + ifp + ifn
            out["F1"] = np.where(den > 0, 2 * itp / den, 1.0)
    return out


def judge(previous: Any | None, net: Any, held_out: ValidationSet) -> Comparison:
    """The verdict Train gives a run: ``net`` (the trained network) against ``previous``
    (the one it would replace, ``None`` for a new network) on ``held_out``
    (:attr:`TrainResult.held_out <napari_unet.core.training.loop.TrainResult.held_out>`)."""
    after = score_network(net, held_out)
    before = score_network(previous, held_out) if previous is not None and held_out.planes else None
    return compare(before, after, held_out.where() or held_out.reason)
