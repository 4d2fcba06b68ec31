"""Helpers of the plugin's tests: dock a widget, small training settings, wait for a
worker, read toasts, guard a lazy layer against whole reads off the GUI thread."""

from __future__ import annotations

import threading

import numpy as np

from napari_unet.core import mask_to_annotation

PLUGIN = "napari-unet"


WIDGETS = ["U-Net", "Segment", "Annotate", "Train", "Evaluate"]


TINY = {"depth": 2, "filters": 8}


WAIT_TRAIN_MS = 120_000


# ---------------------------------------------------------------------- helpers
def dock(viewer, name):
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, name)
    return widget


def layer_names(viewer):
    return [layer.name for layer in viewer.layers]


def set_tiny_training(train, epochs=2, steps=3, time_limit=0):
    """A run of a few seconds: tiny network, small patches, no early stop."""
    train._init.value = "new"
    train._depth.value = TINY["depth"]
    train._filters.value = TINY["filters"]
    train._epochs.value = epochs
    train._steps.value = steps
    train._time.value = time_limit
    train._patch.value = 64
    train._batch.value = 2
    train._interval.value = 1


def annotate_from_truth(viewer, annotate, crop=None):
    """Fill ``nuclei annotation`` from the ground truth (as a person would paint)."""
    annotate._image.value = "nuclei"
    layer = annotate._on_create()
    ann = mask_to_annotation(viewer.layers["nuclei ground truth"].data)
    if crop is not None:
        keep = np.zeros(ann.shape, bool)
        keep[crop] = True
        ann = np.where(keep, ann, 0).astype(np.uint8)
    layer.data = ann
    return layer


def wait_idle(qtbot, widget, timeout=WAIT_TRAIN_MS):
    qtbot.waitUntil(lambda: not widget.running, timeout=timeout)


def saved(qtbot, widget, worker, timeout=60_000):
    """What a Save … button's background worker wrote (``None`` when it failed), once
    it is done; the button is disabled meanwhile."""
    assert worker is not None
    button = getattr(widget, "save_button", None) or widget.save_set_button
    assert widget.saving and not button.isEnabled()
    qtbot.waitUntil(lambda: not widget.saving, timeout=timeout)
    assert button.isEnabled()
    return widget.saved


def toast_is_cut_off(qtbot, message: str) -> bool:
    """Whether napari's notification toast elides ``message``."""
    from napari._qt.dialogs.qt_notification import NapariQtNotification

    toast = NapariQtNotification(message, "info")
    qtbot.addWidget(toast)
    toast.show()
    qtbot.wait(10)
    shown = toast.message.fontMetrics().horizontalAdvance(message)
    return shown > toast.message.width()


class Guard:
    """Make any conversion of ``array`` as a whole, outside the GUI thread, raise.

    napari itself draws a (non-multiscale) layer by reading it on the GUI thread; the
    segmentation runs in a worker thread and must only ever read blocks."""

    def __init__(self, monkeypatch, array) -> None:
        import dask.array as da

        self.name = array.name
        self.hits: list[str] = []
        compute, to_numpy = da.Array.compute, da.Array.__array__
        guard = self

        def check(a) -> None:
            if a.name == guard.name and threading.current_thread() is not threading.main_thread():
                guard.hits.append(threading.current_thread().name)
                raise AssertionError("the whole layer was converted in a worker")

        def guarded_compute(self, *args, **kwargs):
            check(self)
            return compute(self, *args, **kwargs)

        def guarded_array(self, *args, **kwargs):
            check(self)
            return to_numpy(self, *args, **kwargs)

        monkeypatch.setattr(da.Array, "compute", guarded_compute)
        monkeypatch.setattr(da.Array, "__array__", guarded_array)
