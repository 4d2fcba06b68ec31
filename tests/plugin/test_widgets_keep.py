"""After every training: before/after on the person's own annotations, and the model
it replaced one click away; a worse model never becomes current without their say.

Real viewer, real TensorFlow: a tiny network trained a few fixed steps against the
bundled nuclei model ("nuclei" in the widgets), which is far better on the sample (so
the verdicts hold on any CPU: its Dice on the sample is ~0.9, a 1-step tiny network's ~0.7).
"""

from __future__ import annotations

import numpy as np
import pytest
from widget_helpers import (
    annotate_from_truth,
    dock,
    saved,
    set_tiny_training,
    toast_is_cut_off,
    wait_idle,
)

pytestmark = pytest.mark.gui


def layers_now(viewer) -> tuple[np.ndarray, np.ndarray]:
    return (
        np.array(viewer.layers["nuclei probability"].data),
        np.array(viewer.layers["nuclei labels"].data),
    )


def segment_now(qtbot, segment, model="current") -> tuple[np.ndarray, np.ndarray]:
    segment._model.value = model
    assert segment._on_segment("nuclei") is not None
    wait_idle(qtbot, segment, 120_000)
    return layers_now(segment.viewer)


def same(a: tuple, b: tuple) -> bool:
    """Bit for bit: the probabilities and the labels."""
    return all(x.dtype == y.dtype and np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_a_worse_model_is_not_adopted_and_keep_or_go_back_switch_exactly(
    viewer, qtbot, notes, margin
):
    widgets = {name: dock(viewer, name) for name in ("Annotate", "Train", "Segment")}
    train, segment = widgets["Train"], widgets["Segment"]
    # the bundled nuclei model segments the sample and becomes the current model
    bundled_layers = segment_now(qtbot, segment, "nuclei")
    bundled = train.state.model
    assert bundled is not None and train.state.name == "bundled nuclei model"
    assert not train.compare_panel.isVisible() and train.choice is None

    # a new tiny network trained one step: far worse than the bundled model
    annotate_from_truth(viewer, widgets["Annotate"])
    set_tiny_training(train, epochs=1, steps=1)
    train._val.value = 0.25
    assert train._on_train() is not None
    wait_idle(qtbot, train)
    assert train.outcome is not None, notes()
    c = train.outcome.comparison
    assert c.verdict == "worse", c.summary()
    margin("dice drop", c.before.dice - c.after.dice, 0.1, c.summary())
    # the previous model stays current, and the person is told, in the panel and a toast
    assert train.state.model is bundled and train.state.name == "bundled nuclei model"
    text = train.compare_label.text()
    assert text.startswith(f"Before: Dice {c.before.dice:.3f}") and "— worse" in text
    assert f"After: Dice {c.after.dice:.3f}" in text
    assert "stays current" in text and "held out for validation" in text
    assert "New model worse: previous kept" in notes(), notes()
    assert not toast_is_cut_off(qtbot, "New model worse: previous kept")
    assert not train.compare_panel.isHidden()
    assert train.keep_new_button.isEnabled() and not train.go_back_button.isEnabled()
    # the prediction layers show what the current (bundled) model predicts
    assert same(layers_now(viewer), bundled_layers)
    assert "trained here" not in train.model_label.text()

    # "Keep the new model" anyway: it becomes current, its prediction shows
    train.keep_new_button.click()
    new = train.outcome.model
    assert train.state.model is new and train.state.unsaved
    assert np.array_equal(viewer.layers["nuclei labels"].data, train.outcome.preview_after.labels)
    assert not train.keep_new_button.isEnabled() and train.go_back_button.isEnabled()
    assert "The new model is current" in train.compare_label.text()
    # "Go back": the bundled model again, its predictions bit for bit
    train.go_back_button.click()
    assert train.state.model is bundled
    assert same(layers_now(viewer), bundled_layers)
    assert same(segment_now(qtbot, segment), bundled_layers)

    # another model made current elsewhere: the choice is over
    train._on_load(str(train.state.path))
    assert train.choice is None and train.compare_panel.isHidden()


def test_a_better_model_becomes_current_and_go_back_restores_the_old_one(
    viewer, qtbot, tmp_path, notes, margin
):
    widgets = {name: dock(viewer, name) for name in ("Annotate", "Train", "Segment")}
    train, segment = widgets["Train"], widgets["Segment"]
    annotate_from_truth(viewer, widgets["Annotate"])
    # a tiny network trained one step: current, with nothing before it to compare with
    set_tiny_training(train, epochs=1, steps=1)
    train._on_train()
    wait_idle(qtbot, train)
    assert train.outcome is not None, notes()
    tiny = train.state.model
    assert tiny is train.outcome.model and train.outcome.comparison.verdict == "new"
    assert train.compare_label.text().startswith("After: Dice ")
    assert "no previous model" in train.compare_label.text()
    assert not train.go_back_button.isEnabled() and not train.keep_new_button.isEnabled()
    tiny_layers = segment_now(qtbot, segment)

    # the bundled model fine-tuned two small steps: better than the tiny one
    train._init.value = "nuclei"
    train._epochs.value, train._steps.value = 1, 2
    train._lr.value = 0.0001
    train._val.value = 0.25
    train._on_train()
    assert train.choice is None and train.compare_panel.isHidden()  # the run settles it
    wait_idle(qtbot, train)
    assert train.outcome is not None, notes()
    c = train.outcome.comparison
    assert c.verdict == "better", c.summary()
    margin("dice gain", c.after.dice - c.before.dice, 0.1, c.summary())
    tuned = train.outcome.model
    assert train.state.model is tuned and train.state.name == "bundled nuclei model, fine-tuned"
    assert "— better" in train.compare_label.text()
    assert train.go_back_button.isEnabled() and not train.keep_new_button.isEnabled()
    assert np.array_equal(viewer.layers["nuclei labels"].data, train.outcome.preview_after.labels)

    # save the new model, go back, keep it again: it comes back with its file
    path = saved(qtbot, train, train._on_save(str(tmp_path / "tuned.keras")))
    assert train.state.path == str(path)
    train.go_back_button.click()
    assert train.state.model is tiny and train.state.unsaved
    assert same(layers_now(viewer), tiny_layers)  # the old predictions, bit for bit
    assert same(segment_now(qtbot, segment), tiny_layers)
    train.keep_new_button.click()
    assert train.state.model is tuned and train.state.path == str(path)
    assert not np.array_equal(viewer.layers["nuclei labels"].data, tiny_layers[1])


def _plain(message: str) -> bool:
    return not any(w in message for w in ("Errno", "Error:", "Traceback", "requested and"))


def test_saves_ask_before_replacing_and_failures_speak_plainly(
    viewer, qtbot, tmp_path, small_disk, notes
):
    from napari_unet.core.jobs.planning import bundled_model_path

    widgets = {name: dock(viewer, name) for name in ("Annotate", "Train")}
    train, annotate = widgets["Train"], widgets["Annotate"]
    annotate_from_truth(viewer, annotate)
    set_tiny_training(train, epochs=1, steps=1)
    train._on_train()
    wait_idle(qtbot, train)
    model = train.state.model
    assert model is not None and train.state.unsaved, notes()

    # a file the person saved earlier is kept unless they say it may be replaced
    mine = tmp_path / "mine.keras"
    mine.write_bytes(b"an earlier model")
    assert saved(qtbot, train, train._on_save(str(mine), overwrite=False)) is None
    assert "mine.keras already exists" in notes()[-1] and _plain(notes()[-1])
    assert mine.read_bytes() == b"an earlier model" and train.state.unsaved
    assert saved(qtbot, train, train._on_save(str(mine), overwrite=True)) == mine
    assert train.state.path == str(mine) and mine.stat().st_size > 1000
    # a bundled model: never, whatever was said
    bundled = bundled_model_path("nuclei")
    stamp = bundled.stat().st_mtime_ns, bundled.stat().st_size
    assert train._on_save(str(bundled), overwrite=True) is None
    assert "never replaced" in notes()[-1]
    assert (bundled.stat().st_mtime_ns, bundled.stat().st_size) == stamp

    # failed saves: what happened and what to do; the model stays, saves elsewhere
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    full, ro = small_disk(16 * 1024), small_disk(8 << 20, read_only=True)
    for target, said in (
        (a_file / "m.keras", "is not a folder"),
        (ro / "m.keras", "Read-only file system"),
        (full / "m.keras", "No space left on device"),
    ):
        assert saved(qtbot, train, train._on_save(str(target), overwrite=False)) is None
        message = notes()[-1]
        assert message.startswith("Save model: could not save the model"), message
        assert said in message and _plain(message), message
        assert train.state.model is model and train.save_button.isEnabled()
    assert list(full.iterdir()) == [] and list(ro.iterdir()) == []
    other = saved(qtbot, train, train._on_save(str(tmp_path / "elsewhere"), overwrite=False))
    assert other == tmp_path / "elsewhere.keras" and other.is_file()

    # the training set: free space checked first, a refused write said plainly
    worker = annotate._on_save_training_set(str(full / "set.unet"))
    assert saved(qtbot, annotate, worker) is None
    assert "not enough disk space" in notes()[-1] and _plain(notes()[-1])
    worker = annotate._on_save_training_set(str(ro / "set.unet"))
    assert saved(qtbot, annotate, worker) is None
    message = notes()[-1]
    assert "could not save the training set" in message and "somewhere else" in message
    assert _plain(message), message
    assert list(full.iterdir()) == [] and list(ro.iterdir()) == []
    assert "nuclei annotation" in viewer.layers  # nothing the person made is lost


def fine_tune_current(qtbot, train, notes, steps: int) -> None:
    """Fine-tune the current model a few fixed steps, a quarter held out, and wait."""
    train._init.value = "current"
    train._epochs.value, train._steps.value = 1, steps
    train._patch.value, train._batch.value = 64, 2
    train._val.value = 0.25
    assert train._on_train() is not None
    wait_idle(qtbot, train)
    assert train.outcome is not None, notes()


def copy_and_correct(viewer, annotate, where=None) -> np.ndarray:
    """Use the prediction as annotation, then paint the ground truth over it where the
    prediction is wrong (within ``where``, a boolean map, when given), as a person
    correcting it would. Returns the painted pixels."""
    from napari_unet.core import mask_to_annotation

    annotate._image.value = "nuclei"
    layer = annotate._on_create()
    annotate._on_use_prediction("replace")
    copied = np.array(layer.data)
    truth = mask_to_annotation(viewer.layers["nuclei ground truth"].data)
    wrong = (copied >= 2) != (truth >= 2)
    if where is not None:
        wrong &= where
    layer.data = np.where(wrong, truth, copied).astype(copied.dtype)
    return wrong


def test_after_copying_the_prediction_held_out_corrections_are_scored_on_their_own(
    viewer, qtbot, notes, margin
):
    """The main loop: segment, copy, correct, train. The copied pixels are the previous
    model's own output (it would score itself perfect there with no correction held
    out): some corrections are held out, and get a figure of their own."""
    widgets = {name: dock(viewer, name) for name in ("Annotate", "Train", "Segment")}
    train, segment, annotate = widgets["Train"], widgets["Segment"], widgets["Annotate"]
    segment_now(qtbot, segment, "nuclei")
    bundled = train.state.model
    painted = copy_and_correct(viewer, annotate)
    assert painted.sum() > 500  # the bundled model is wrong on some nuclei of the sample

    fine_tune_current(qtbot, train, notes, steps=4)
    c = train.outcome.comparison
    assert "held out for validation" in c.where and "you painted" in c.where, c.where
    # on a copy the objects count, not their pixels (the previous model drew them)…
    assert c.before.dice is None and c.after.dice is None, c.summary()
    assert 0.0 <= c.before.f1 <= 1.0 and "however it draws their outlines" in c.where
    # …and on the corrections themselves it was wrong: it made the copy
    margin("previous model's share of corrections", 0.3 - c.before.corrections, 0.1, c.summary())
    assert "corrections" in train.compare_label.text()
    assert train.compare_label.text().startswith(f"Before: F1 {c.before.f1:.3f} · corrections")
    # the verdict decides, as for any training
    if c.worse:
        assert train.state.model is bundled and train.keep_new_button.isEnabled()
    else:
        assert train.state.model is train.outcome.model is not bundled
        assert train.go_back_button.isEnabled()


def test_with_no_correction_held_out_the_panel_says_there_is_no_fair_comparison(
    viewer, qtbot, notes
):
    widgets = {name: dock(viewer, name) for name in ("Annotate", "Train", "Segment")}
    train, segment, annotate = widgets["Train"], widgets["Segment"], widgets["Annotate"]
    segment_now(qtbot, segment, "nuclei")
    bundled = train.state.model
    corner = np.zeros(viewer.layers["nuclei"].data.shape[:2], bool)
    corner[:6, :6] = True  # one small correction: in a single block, kept for training
    copy_and_correct(viewer, annotate, corner)
    layer = viewer.layers["nuclei annotation"]
    layer.data[:6, :6] = 1 if layer.data[0, 0] >= 2 else 2  # paint it, whatever it was
    layer.refresh()

    fine_tune_current(qtbot, train, notes, steps=1)
    c = train.outcome.comparison
    assert c.verdict == "untested", c.summary()
    assert c.before is None or not c.before.figures()
    text = train.compare_label.text()
    assert text.startswith("No fair comparison with the previous model: none of your corrections")
    assert "'Go back to the previous one' restores" in text
    # not judged: the new model is current, the previous one a click away
    assert train.state.model is train.outcome.model is not bundled
    assert "no fair comparison possible" in train.status.text()
    train.go_back_button.click()
    assert train.state.model is bundled
