"""After every training: before/after on the person's own annotations, and the model
it replaced one click away; a worse model never becomes current without their say.

Real viewer, real TensorFlow: a tiny network trained a few fixed steps against the
bundled nuclei model, which is far better on the sample (so the verdicts hold on any
CPU: the bundled model's Dice on the sample is ~0.9, a 2-step tiny network's is not).
"""

from __future__ import annotations

import numpy as np
import pytest
from test_widgets import annotate_from_truth, dock, set_tiny_training, wait_idle

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


def test_a_worse_model_is_not_adopted_and_keep_or_go_back_switch_exactly(viewer, qtbot, notes):
    widgets = {name: dock(viewer, name) for name in ("Annotate", "Train", "Segment")}
    train, segment = widgets["Train"], widgets["Segment"]
    # the bundled model segments the sample and becomes the current model
    bundled_layers = segment_now(qtbot, segment, "default")
    bundled = train.state.model
    assert bundled is not None and train.state.name == "bundled nuclei model"
    assert not train.compare_panel.isVisible() and train.choice is None

    # a new tiny network trained two steps: far worse than the bundled model
    annotate_from_truth(viewer, widgets["Annotate"])
    set_tiny_training(train, epochs=1, steps=2)
    train._val.value = 0.25
    assert train._on_train() is not None
    wait_idle(qtbot, train)
    assert train.outcome is not None, notes()
    c = train.outcome.comparison
    assert c.verdict == "worse", c.summary()
    assert c.before.dice > c.after.dice
    # the previous model stays current, and the person is told, in the panel and a toast
    assert train.state.model is bundled and train.state.name == "bundled nuclei model"
    text = train.compare_label.text()
    assert text.startswith(f"Before: Dice {c.before.dice:.3f}") and "— worse" in text
    assert f"After: Dice {c.after.dice:.3f}" in text
    assert "stays current" in text and "held out for validation" in text
    assert any("worse" in m and "Keep the new model" in m for m in notes()), notes()
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


def test_a_better_model_becomes_current_and_go_back_restores_the_old_one(viewer, qtbot, notes):
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
    train._init.value = "default"
    train._epochs.value, train._steps.value = 1, 2
    train._lr.value = 0.0001
    train._val.value = 0.25
    train._on_train()
    assert train.choice is None and train.compare_panel.isHidden()  # the run settles it
    wait_idle(qtbot, train)
    assert train.outcome is not None, notes()
    c = train.outcome.comparison
    assert c.verdict == "better", c.summary()
    tuned = train.outcome.model
    assert train.state.model is tuned and train.state.name == "bundled nuclei model, fine-tuned"
    assert "— better" in train.compare_label.text()
    assert train.go_back_button.isEnabled() and not train.keep_new_button.isEnabled()
    assert np.array_equal(viewer.layers["nuclei labels"].data, train.outcome.preview_after.labels)

    # save the new model, go back, keep it again: it comes back with its file
    # (the tiny model is unsaved: going back to it is the only way to keep it)
    train.go_back_button.click()
    assert train.state.model is tiny and train.state.unsaved
    assert same(layers_now(viewer), tiny_layers)  # the old predictions, bit for bit
    assert same(segment_now(qtbot, segment), tiny_layers)
    train.keep_new_button.click()
    assert train.state.model is tuned
    assert not np.array_equal(viewer.layers["nuclei labels"].data, tiny_layers[1])
