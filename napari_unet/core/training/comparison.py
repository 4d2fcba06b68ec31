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
judging. Dice and F1 stay measured on the whole held-out annotation, copied part
included: what the person kept counts too, and a model that fixes the corrections but
breaks what was right is not better.

Each network segments the planes exactly as Segment would (:meth:`UNet.predict` with
the model's own settings), and is scored on the chosen pixels only:

- pixel Dice of object against background on the annotated pixels (annotation 1 is
  background, 2 and above object; a mask: 0 background, any id object);
- instance F1 (one-to-one matches at IoU ≥ 0.5) where a dense mask says what the
  objects are, both label images cut to the chosen pixels.

:func:`compare` turns two scores into a verdict, :func:`judge` two networks (as Train
does after a run). Numpy only; the networks are handed
in (TensorFlow is theirs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Differences smaller than this (a tenth of a point) are "about the same".
SAME_WITHIN = 0.001


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
                f"; corrections: the share of the {n:,} of them you painted that the model "
                "gets right (the rest is the copied prediction, right for the previous "
                "model by construction)"
            )
        return where


@dataclass(frozen=True)
class Scores:
    """A network's figures on a :class:`ValidationSet`."""

    dice: float | None  # pixel Dice, object vs background, on the scored pixels
    f1: float | None  # instance F1 at IoU ≥ 0.5 where masks were scored, else None
    pixels: int
    objects: int  # true instances the F1 counts
    #: share of the scored painted pixels (corrections of a copied prediction) right
    corrections: float | None = None

    def figures(self) -> dict[str, float]:
        pairs = (("Dice", self.dice), ("F1", self.f1), ("corrections", self.corrections))
        return {k: v for k, v in pairs if v is not None}

    def text(self) -> str:
        """``"Dice 0.912 · F1 0.850"``."""
        figs = self.figures()
        return " · ".join(f"{k} {v:.3f}" for k, v in figs.items()) if figs else "no figure"


def score_network(net: Any, data: ValidationSet) -> Scores:
    """Segment each plane of ``data`` with ``net`` as Segment would and score the
    selected pixels (see the module's docstring)."""
    from ..metrics import iou_matrix, match_counts

    tp = fp = fn = 0
    itp = ifp = ifn = 0
    right = painted_total = 0
    objects = 0
    has_mask = False
    painted_maps = data.painted or [None] * len(data.planes)
    for plane, sel, painted in zip(data.planes, data.selections, painted_maps, strict=True):
        labels = np.asarray(plane.labels)
        pred = np.asarray(net.predict(np.asarray(plane.image), channel_axis=-1).labels)
        pred = pred.reshape(labels.shape)
        if plane.kind == "annotation":
            truth_fg = labels >= 2
        else:
            truth_fg = labels > 0
        pred_fg = pred > 0
        tp += int((pred_fg & truth_fg & sel).sum())
        fp += int((pred_fg & ~truth_fg & sel).sum())
        fn += int((~pred_fg & truth_fg & sel).sum())
        if painted is not None:
            right += int((pred_fg == truth_fg)[painted].sum())
            painted_total += int(painted.sum())
        if plane.kind == "mask":
            has_mask = True
            iou, t_ids, _ = iou_matrix(np.where(sel, pred, 0), np.where(sel, labels, 0))
            a, b, c = match_counts(iou, 0.5)
            itp, ifp, ifn = itp + a, ifp + b, ifn + c
            objects += len(t_ids)
    dice = 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else None
    f1 = None
    if has_mask:
        f1 = 2 * itp / (2 * itp + ifp + ifn) if (2 * itp + ifp + ifn) else 1.0
    return Scores(
        None if dice is None else float(dice),
        None if f1 is None else float(f1),
        data.pixels,
        objects,
        right / painted_total if painted_total else None,
    )


@dataclass(frozen=True)
class Comparison:
    """Two networks' figures on the same pixels and what they say.

    ``verdict``: ``"better"``, ``"worse"``, ``"same"`` (no figure moved by more than
    :data:`SAME_WITHIN`), ``"new"`` (no previous model to compare with) or
    ``"untested"`` (no pixel to compare on fairly; ``where`` says why).
    """

    before: Scores | None
    after: Scores
    verdict: str
    where: str = ""

    @property
    def worse(self) -> bool:
        return self.verdict == "worse"

    def summary(self) -> str:
        """``"Before: Dice 0.910 · After: Dice 0.870 — worse"``."""
        words = {
            "better": "better",
            "worse": "worse",
            "same": "about the same",
            "new": "no previous model to compare with",
        }
        if self.verdict == "untested":
            why = f": {self.where}" if self.where else ""
            return f"No fair comparison with the previous model{why}."
        after = f"After: {self.after.text()}"
        if self.before is None:
            return f"{after} — {words['new']}"
        return f"Before: {self.before.text()} · {after} — {words[self.verdict]}"

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
    dropped by more than :data:`SAME_WITHIN` (a drop is never outweighed by a gain),
    better when none dropped and one rose, else the same; ``"untested"`` when the new
    model has no figure (no pixel to measure on: ``where`` should say why)."""
    if not after.figures():
        return Comparison(before, after, "untested", where)
    if before is None:
        return Comparison(None, after, "new", where)
    a, b = after.figures(), before.figures()
    diffs = [a[k] - b[k] for k in a if k in b]
    if any(d < -SAME_WITHIN for d in diffs):
        verdict = "worse"
    elif any(d > SAME_WITHIN for d in diffs):
        verdict = "better"
    else:
        verdict = "same"
    return Comparison(before, after, verdict, where)


def judge(previous: Any | None, net: Any, held_out: ValidationSet) -> Comparison:
    """The verdict Train gives a run: ``net`` (the trained network) against ``previous``
    (the one it would replace, ``None`` for a new network) on ``held_out``
    (:attr:`TrainResult.held_out <napari_unet.core.training.loop.TrainResult.held_out>`)."""
    after = score_network(net, held_out)
    before = score_network(previous, held_out) if previous is not None and held_out.planes else None
    return compare(before, after, held_out.where() or held_out.reason)
