"""Evaluate: score a predicted labels layer against a ground-truth labels layer.

A stack is scored along its axes (:func:`napari_unet._layers.stack_axes_of`): a 3D pair
is a volume, its objects matched in 3D, unless the layers' (or their image's) axis labels
name the first axis ``t``: then frame by frame; 4D is one volume per time point. The
counts line says which."""

from __future__ import annotations

from typing import Any

import numpy as np
from magicgui.widgets import Container
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QFormLayout, QLabel, QVBoxLayout, QWidget

from .. import _layers as L
from ._ui import DockLifetime, button, combo, notify_error, start_worker, status_label, warn
from ._workers import evaluate_worker

FIGURES = [
    ("pixel_dice", "pixel Dice"),
    ("pixel_iou", "pixel IoU"),
    ("precision", "precision (IoU ≥ 0.5)"),
    ("recall", "recall (IoU ≥ 0.5)"),
    ("f1", "F1 (IoU ≥ 0.5)"),
    ("mean_ap", "mean AP (IoU 0.5:0.95)"),
]
_TRUTH_HINTS = ("truth", "gt", "ground", "mask", "manual")
#: Events of an evaluated Labels layer after which its scores are out of date: painting,
#: new data, a partial redraw after an edit, and the refresh of napari's Undo/Redo.
EDIT_EVENTS = ("paint", "data", "labels_update", "set_data")
#: Re-score at most this often while a person edits an evaluated layer (ms).
RESCORE_MS = 500


class EvaluateWidget(DockLifetime, QWidget):
    """Pixel and instance scores of a prediction against ground truth.

    Parameters
    ----------
    napari_viewer
        The viewer whose Labels layers are compared.
    """

    def __init__(self, napari_viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.worker = None
        self._busy = False
        self.scores: dict[str, float] | None = None
        self._axes_from = ""  # where the axes of the last scored labels came from
        self._pred = combo("labels", napari_viewer, "prediction", tip="predicted instance labels")
        self._truth = combo("labels", napari_viewer, "ground truth", tip="true instance labels")
        self._pred_classes = combo(
            "labels",
            napari_viewer,
            "prediction classes",
            tip="class map of the prediction ('<image> classes'); with the truth's class "
            "map, precision / recall / F1 are also given per class",
            nullable=True,
        )
        self._truth_classes = combo(
            "labels",
            napari_viewer,
            "truth classes",
            tip="class map of the ground truth (0 = background, 1, 2, … = object class)",
            nullable=True,
        )
        form = Container(widgets=[self._pred, self._truth, self._pred_classes, self._truth_classes])
        self._forms = (form,)
        self.run_button = button("Evaluate", self._on_evaluate, "compare the two label layers")
        self.values: dict[str, QLabel] = {}
        table = QFormLayout()
        for key, text in FIGURES:
            self.values[key] = QLabel("–")
            table.addRow(text, self.values[key])
        self.counts = status_label()
        self.per_class = status_label()  # per-class figures, when class maps were given
        layout = QVBoxLayout(self)
        layout.addWidget(form.native)
        layout.addWidget(self.run_button)
        layout.addLayout(table)
        layout.addWidget(self.counts)
        layout.addWidget(self.per_class)
        layout.addStretch(1)
        # the scores follow edits of the layers they were computed from (Undo included)
        self._watched: list[tuple[Any, tuple[str, ...]]] = []
        self._scored: tuple | None = None  # (layer names, their fingerprints)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(RESCORE_MS)
        self._timer.timeout.connect(self._rescore)
        self.reset_choices()

    def reset_choices(self, *_: Any) -> None:
        """Refresh the lists; guess which layer is the prediction and which the truth."""
        touched = getattr(self, "_touched", False)
        for c in (self._pred, self._truth, self._pred_classes, self._truth_classes):
            c.reset_choices()
        if touched:
            return
        names = list(self._pred.choices)
        preds = [n for n in names if n.endswith(L.LABELS)]
        truths = [
            n
            for n in names
            if any(h in n.lower() for h in _TRUTH_HINTS) and not n.endswith(L.CLASSES)
        ]
        if preds:
            self._pred.value = preds[-1]
        if truths:
            self._truth.value = truths[-1]
        # class maps beside them: '<image> classes' and '<truth> classes'
        pred_classes = self._pred.value and self._pred.value[: -len(L.LABELS)] + L.CLASSES
        truth_classes = self._truth.value and self._truth.value + L.CLASSES
        for widget, name in (
            (self._pred_classes, pred_classes),
            (self._truth_classes, truth_classes),
        ):
            widget.value = name if name in names else None

    def _on_evaluate(self, prediction: str | None = None, truth: str | None = None):
        """Score ``prediction`` against ``truth`` (layer names; default: the chosen ones)."""
        if self._busy:
            return None
        self.counts.setText("")  # a new action: the last message is over
        if prediction is not None:
            self._pred.value = prediction
        if truth is not None:
            self._truth.value = truth
        self._touched = True
        pred = L.find_layer(self.viewer, self._pred.value, "labels") if self._pred.value else None
        true = L.find_layer(self.viewer, self._truth.value, "labels") if self._truth.value else None
        if pred is None or true is None:
            warn("Evaluate: choose a prediction and a ground-truth Labels layer", self.counts)
            return None
        if pred.name == true.name:
            warn("Evaluate: the prediction and the ground truth are the same layer", self.counts)
            return None
        maps = [
            L.find_layer(self.viewer, w.value, "labels") if w.value else None
            for w in (self._pred_classes, self._truth_classes)
        ]
        if (maps[0] is None) != (maps[1] is None):
            warn(
                "Evaluate: per-class scores need both class maps (prediction and truth); "
                "scoring without classes"
            )
            maps = [None, None]
        # a 3D pair is a volume (objects matched in 3D) unless an axis label says T
        image = L.find_layer(self.viewer, pred.name[: -len(L.LABELS)], "image")
        shape = tuple(int(n) for n in L.layer_array(pred).shape)
        axes, self._axes_from = L.stack_axes_of(shape, [pred, true, image])
        self._follow([pred, true, *[m for m in maps if m is not None]])
        self._busy = True
        self.run_button.setEnabled(False)
        self.counts.setText("evaluating…")
        self.per_class.setText("")
        if L.is_huge(pred) or L.is_huge(true):
            # a huge (lazy) layer: overlaps counted block by block, never read whole
            from napari_unet.core.metrics import evaluate_blockwise

            if maps[0] is not None:
                warn("Evaluate: huge layers are scored without per-class figures")
            self.worker = start_worker(
                evaluate_blockwise,
                L.layer_array(pred),
                L.layer_array(true),
                None,  # the default block
                axes,
                returned=self._on_returned,
                errored=self._on_errored,
                finished=self._on_finished,
            )
            return self.worker
        self.worker = start_worker(
            evaluate_worker,
            np.asarray(pred.data),
            np.asarray(true.data),
            *[None if m is None else np.asarray(m.data) for m in maps],
            axes,
            returned=self._on_returned,
            errored=self._on_errored,
            finished=self._on_finished,
        )
        return self.worker

    def _on_returned(self, scores: dict[str, float]) -> None:
        self.scores = scores
        for key, _ in FIGURES:
            self.values[key].setText(f"{scores[key]:.3f}")
        from napari_unet.core.files.image_axes import FROM_SHAPE
        from napari_unet.core.metrics import describe_scores

        line = describe_scores(scores)
        if scores.get("matching", "2d") != "2d":  # a stack: say where its axes came from
            line += f" (axes from {self._axes_from}"
            if self._axes_from == FROM_SHAPE:
                line += "; a time-lapse: label its first axis 't' (layer axis labels)"
            line += ")"
        self.counts.setText(line)
        per_class = scores.get("per_class") or {}
        self.per_class.setText(
            "<br>".join(
                f"<b>class {c}</b>: precision {v['precision']:.3f} · recall "
                f"{v['recall']:.3f} · F1 {v['f1']:.3f} ({v['n_true']} true, "
                f"{v['n_pred']} predicted)"
                for c, v in sorted(per_class.items(), key=lambda kv: int(kv[0]))
            )
        )

    def _on_finished(self) -> None:
        self._busy = False
        self.run_button.setEnabled(True)

    def _dispose(self) -> None:
        """The dock was closed: stop following the evaluated layers."""
        self._timer.stop()
        self._unfollow()
        self._scored = None

    # ------------------------------------------------------------------ following edits
    def _follow(self, layers: list) -> None:
        """Watch the layers being scored; their edits re-score (in-memory layers) or
        mark the figures out of date (huge ones, scored block by block on request)."""
        self._unfollow()
        for layer in layers:
            names = tuple(ev for ev in EDIT_EVENTS if hasattr(layer.events, ev))
            for ev in names:
                getattr(layer.events, ev).connect(self._on_edited)
            self._watched.append((layer, names))
        names = [layer.name for layer in layers]
        self._scored = (names, self._fingerprint(layers))

    def _unfollow(self) -> None:
        for layer, names in self._watched:
            for ev in names:
                getattr(layer.events, ev).disconnect(self._on_edited)
        self._watched = []

    @staticmethod
    def _fingerprint(layers: list) -> list:
        """What the layers hold, to tell an edit from a mere redraw (``None`` for a
        huge layer: never read whole)."""
        import hashlib

        return [
            None
            if L.is_huge(layer)
            else hashlib.blake2b(np.ascontiguousarray(layer.data).view(np.uint8)).digest()
            for layer in layers
        ]

    def _on_edited(self, *_: Any) -> None:
        if self._scored is not None and not self._timer.isActive():
            self._timer.start()

    def _rescore(self) -> None:
        """Score again after an edit of an evaluated layer (Undo too), so that the
        figures and counts shown are never those of labels that changed since."""
        if self._scored is None:
            return
        if self._busy:  # an evaluation under way: look again when it is done
            self._timer.start()
            return
        layers = [layer for layer, _ in self._watched if layer in self.viewer.layers]
        if len(layers) != len(self._watched):  # a layer went away: nothing to follow
            self._unfollow()
            self._scored = None
            return
        if any(L.is_huge(layer) for layer in layers):
            if "changed since" not in self.counts.text():
                self.counts.setText(
                    f"{self.counts.text()} (labels changed since: click Evaluate again)"
                )
            return
        if self._fingerprint(layers) != self._scored[1]:
            names = self._scored[0]
            self._on_evaluate(names[0], names[1])

    def _on_errored(self, error: BaseException) -> None:
        for label in self.values.values():
            label.setText("–")  # no figures of an earlier run next to this failure
        self.per_class.setText("")
        notify_error(error, "Evaluate failed", self.counts)
