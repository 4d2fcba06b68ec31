"""Scores of stacks (``core/metrics.py``): a volume's objects are matched in 3D, a
time-lapse frame by frame, in memory and block by block alike."""

from __future__ import annotations

import numpy as np
import pytest

from napari_unet.core.errors import UserInputError
from napari_unet.core.metrics import describe_scores, evaluate, evaluate_blockwise


def split_between_z_halves() -> tuple[np.ndarray, np.ndarray]:
    """Two touching cubes stacked through 8 planes (the truth), and a prediction that
    gives the first cube one id in planes 0–4 and another in planes 5–7: every plane
    alone is perfect, the volume holds one object cut in two."""
    truth = np.zeros((8, 40, 40), np.uint16)
    truth[:, 5:20, 5:20] = 1
    truth[:, 5:20, 20:35] = 2  # touching the first one
    pred = truth.copy()
    pred[5:][truth[5:] == 1] = 7
    return pred, truth


def test_a_volume_is_matched_in_3d_where_every_plane_looks_perfect():
    pred, truth = split_between_z_halves()
    for z in range(len(truth)):  # each plane alone: perfect
        plane = evaluate(pred[z], truth[z])
        assert plane["f1"] == 1.0 and plane["matching"] == "2d"
    scores = evaluate(pred, truth, axes="ZYX")
    assert scores["matching"] == "3d" and scores["axes"] == "ZYX"
    # the cut cube's planes 0–4 (IoU 5/8) still match; planes 5–7 are a false positive
    assert (scores["n_true"], scores["n_pred"], scores["tp"]) == (2, 3, 2)
    assert scores["f1"] == pytest.approx(0.8) and scores["precision"] < 1.0
    assert scores["pixel_dice"] == 1.0
    assert evaluate(pred, truth) == scores  # a 3D array is a volume by default
    line = describe_scores(scores)
    assert line.startswith("scored as a 3D volume (Z×Y×X"), line
    assert "2 true objects, 3 predicted" in line and "F1 0.800" in line


def test_a_cut_in_the_middle_of_a_volume_loses_the_match():
    truth = np.zeros((8, 20, 20), np.uint8)
    truth[:, 5:15, 5:15] = 1
    pred = truth.copy()
    pred[3:] *= 2  # planes 0–2 and 3–7: IoU 3/8 and 5/8
    scores = evaluate(pred, truth, axes="ZYX")
    assert scores["tp"] == 1 and scores["n_pred"] == 2  # the larger part still matches
    thirds = np.where(truth > 0, 1 + np.arange(8)[:, None, None] // 3, 0)  # 3, 3, 2 planes
    assert evaluate(thirds.astype(np.uint8), truth, axes="ZYX")["f1"] == 0.0
    assert evaluate(thirds.astype(np.uint8), truth, axes="TYX")["f1"] == 1.0


def test_a_time_lapse_is_scored_frame_by_frame():
    pred, truth = split_between_z_halves()
    scores = evaluate(pred, truth, axes="TYX")
    assert scores["matching"] == "2d per frame" and scores["frames"] == 8
    # each frame's two objects counted once per frame, all matched
    assert (scores["n_true"], scores["n_pred"], scores["tp"]) == (16, 16, 16)
    assert scores["f1"] == scores["mean_ap"] == 1.0
    # the same id in two frames is two objects: a frame's object never matches another's
    moved = truth.copy()
    moved[4] = np.roll(truth[4], 20, axis=0)  # frame 4's objects moved off their place
    assert evaluate(truth, moved, axes="TYX")["tp"] == 14
    assert describe_scores(scores).startswith("scored frame by frame (T=8")


def test_a_time_lapse_of_volumes_is_one_volume_per_frame():
    pred, truth = split_between_z_halves()
    scores = evaluate(np.stack([pred, truth]), np.stack([truth, truth]))
    assert scores["matching"] == "3d per frame" and scores["axes"] == "TZYX"
    assert (scores["n_true"], scores["n_pred"], scores["tp"]) == (4, 5, 4)
    assert "one 3D volume per frame (T=2, each Z×Y×X" in describe_scores(scores)


@pytest.mark.parametrize("axes", ["ZYX", "TYX"])
def test_block_by_block_gives_the_same_figures(axes):
    pred, truth = split_between_z_halves()
    pred[2, 30:38, 30:38] = 9  # a false positive in one plane
    assert evaluate_blockwise(pred, truth, 16, axes) == evaluate(pred, truth, axes=axes)
    four = np.stack([pred, truth]), np.stack([truth, truth])
    assert evaluate_blockwise(*four, block=16) == evaluate(*four)


def test_axes_that_do_not_fit_labels_are_refused():
    pred, truth = split_between_z_halves()
    with pytest.raises(UserInputError, match="TZYX"):
        evaluate(pred, truth, axes="TZYX")
    with pytest.raises(UserInputError, match="channel"):
        evaluate(pred, truth, axes="CYX")
