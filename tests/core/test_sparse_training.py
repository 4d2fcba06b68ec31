"""Fine-tuning from little: scribbles on touching rods, a few dozen painted pixels, one
class painted alone (issue 22, item 4). Every run that can train ends with finite losses
and says them; one that cannot is refused in one plain line before training starts."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
from helpers import ROOT, seeded
from scipy import ndimage as ndi

from napari_unet.core import TrainConfig, TrainingPair, UNet, UNetConfig, UserInputError
from napari_unet.core.prediction.object_size import resize_annotation
from napari_unet.core.training.loop import TrainResult

sys.path.insert(0, str(ROOT / "scripts"))
from synthetic_rods import synth_rods  # noqa: E402

TINY = UNetConfig(depth=2, base_filters=4)
CFG = dict(epochs=2, steps_per_epoch=3, patch_size=64, batch_size=2)


def rods(seed: int = 1):
    """Touching rods, 128 px, and their instance mask."""
    return synth_rods(128, seed=seeded(seed), contact=0.5)


def scribbles(mask, objects: bool = True, background: bool = True) -> np.ndarray:
    """Thin strokes as a person paints them: background lines away from the rods (1) and
    one line through each of the first rods (2)."""
    ann = np.zeros(mask.shape, np.uint8)
    if background:
        free = ~ndi.binary_dilation(mask > 0, iterations=3)
        for row in (10, 60, 110):
            ann[row][free[row]] = 1
    if objects:
        for i in np.unique(mask)[1:7]:
            ys, xs = np.nonzero(ndi.binary_erosion(mask == i, iterations=2))
            ann[ys[: len(ys) // 2], xs[: len(ys) // 2]] = 2
    return ann


def assert_trained_finitely(result) -> None:
    assert result.steps_run == CFG["epochs"] * CFG["steps_per_epoch"]
    assert result.history["loss"] and all(map(math.isfinite, result.history["loss"]))
    assert all(map(math.isfinite, result.history.get("val_loss", [])))
    line = result.summary()
    assert "no finite loss" not in line, line
    assert f"loss {result.history['loss'][-1]:.4f}" in line, line


@pytest.mark.parametrize("make", ["tiny", "default"])
def test_scribbles_on_touching_rods_train_with_finite_losses_and_say_them(make):
    img, mask = rods()
    ann = scribbles(mask)
    assert 0 < (ann > 0).mean() < 0.1  # sparse: most pixels unpainted
    net = UNet.new(TINY, seed=seeded(0)) if make == "tiny" else UNet.default()
    result = net.train([TrainingPair(img, annotation=ann)], TrainConfig(**CFG, seed=seeded(0)))
    assert_trained_finitely(result)
    assert result.monitor == "last" and result.best_epoch is None  # scribbles: no ranking


def test_a_tiny_annotation_of_a_few_dozen_pixels_trains_with_finite_losses():
    img, mask = rods(2)
    ann = np.zeros(mask.shape, np.uint8)
    ann[4, 4:24] = 1  # one short background stroke
    ys, xs = np.nonzero(ndi.binary_erosion(mask == 1, iterations=2))
    ann[ys[:20], xs[:20]] = 2  # a few pixels inside one rod
    assert 20 <= (ann > 0).sum() <= 60
    net = UNet.new(TINY, seed=seeded(0))
    result = net.train([TrainingPair(img, annotation=ann)], TrainConfig(**CFG, seed=seeded(0)))
    assert_trained_finitely(result)


def test_one_pixel_strokes_on_an_image_shrunk_to_the_models_scale_still_train():
    """Objects 4x the model's size shrink the plane 4x: a 1-px stroke covers a quarter
    pixel there, and used to vanish, so the run was refused for 'no background'."""
    img, mask = rods(3)
    ann = np.zeros(mask.shape, np.uint8)
    ann[6, 10:40] = 1
    ys, xs = np.nonzero(ndi.binary_erosion(mask == 1, iterations=1))
    ann[ys[0], xs[0] : xs[0] + 6] = 2
    net = UNet.default()
    pair = TrainingPair(img, annotation=ann, diameter=4 * net.object_diameter)
    result = net.train([pair], TrainConfig(**CFG, seed=seeded(0)))
    assert_trained_finitely(result)


def test_a_thin_stroke_survives_shrinking_the_annotation():
    ann = np.zeros((128, 128), np.uint8)
    ann[5, 5:25] = 1  # 1 px thick: a quarter pixel at 1/4 scale
    ann[40:44, 40] = 2
    small = resize_annotation(ann, (32, 32))
    assert set(np.unique(small)) == {0, 1, 2}
    ys, xs = np.nonzero(small == 1)
    assert ys.max() <= 2 and 1 <= xs.min() and xs.max() <= 6  # where it was painted
    ys, xs = np.nonzero(small == 2)
    assert (9 <= ys).all() and (ys <= 11).all() and (xs == 10).all()
    # strokes that survive on their own keep the usual rule (a pixel takes its label)
    assert (resize_annotation(ann, (64, 64)) == 1).sum() == 9


@pytest.mark.parametrize(
    "painted, words",
    [
        ("objects", "no background pixel"),
        ("background", "no object pixel"),
        ("nothing", "is empty"),
    ],
)
def test_one_class_painted_alone_is_refused_before_training_in_one_plain_line(
    painted, words, monkeypatch
):
    """Only object strokes (or only background) cannot say where objects end: the run is
    refused before anything trains, as the Train button and the command line refuse it,
    before the model looks at the image (no object size measured, no pseudo-labels), and
    the model is left as it was."""
    from napari_unet.core.prediction.predictor import Predictor

    def looked(*args, **kwargs):
        raise AssertionError("the model looked at the image before the refusal")

    monkeypatch.setattr(Predictor, "scores", looked)
    monkeypatch.setattr(Predictor, "scorer", looked)
    img, mask = rods(4)
    ann = scribbles(mask, objects=painted == "objects", background=painted == "background")
    net = UNet.default()
    before = [w.copy() for w in net.keras_model.get_weights()]
    runs = len(net.metadata.training_runs)
    seen = []
    with pytest.raises(UserInputError, match=words) as err:
        net.train([TrainingPair(img, annotation=ann)], TrainConfig(**CFG), progress=seen.append)
    assert "\n" not in str(err.value) and "paint" in str(err.value)
    assert not seen and len(net.metadata.training_runs) == runs
    assert all(np.array_equal(a, b) for a, b in zip(before, net.keras_model.get_weights()))


def test_the_summary_says_no_finite_loss_only_when_there_was_none():
    def run(history, best_epoch=None):
        return TrainResult(
            history=history,
            epochs_run=len(history.get("loss", [])),
            steps_run=3,
            best_epoch=best_epoch,
            best_monitor=history["loss"][-1] if best_epoch else None,
            monitor="loss" if best_epoch else "last",
            stopped_by="epochs",
            seconds=1.0,
        )

    assert run({"loss": [0.5, 0.25]}).summary().endswith("kept the last weights, loss 0.2500")
    line = run({"loss": [0.5], "val_loss": [0.75]}).summary()
    assert line.endswith("kept the last weights, loss 0.5000, val_loss 0.7500")
    assert run({"loss": [float("nan")]}).summary().endswith("no finite loss recorded")
    assert run({}).summary().endswith("no finite loss recorded")
    assert (
        run({"loss": [0.5, 0.25]}, best_epoch=2).summary().endswith("best loss 0.2500 at epoch 2")
    )
