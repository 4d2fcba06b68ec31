"""``napari-unet evaluate`` on stacks, run as a user runs it: a Z stack is scored as one
volume (objects matched in 3D), a T stack frame by frame, as the files' ImageJ axes say,
and the command says which."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from cli_helpers import assert_user_error, cli


@pytest.fixture(scope="module")
def stacks(tmp_path_factory):
    """Truth: two touching cubes through 8 planes; prediction: the first cube cut into
    two ids between planes 4 and 5 (every plane alone perfect). Saved as ImageJ TIFFs
    with axes ZYX and TYX, and once without metadata."""
    d = tmp_path_factory.mktemp("stacks")
    truth = np.zeros((8, 40, 40), np.uint16)
    truth[:, 5:20, 5:20] = 1
    truth[:, 5:20, 20:35] = 2
    pred = truth.copy()
    pred[5:][truth[5:] == 1] = 7
    for axes in ("ZYX", "TYX"):
        for name, data in (("truth", truth), ("pred", pred)):
            tifffile.imwrite(d / f"{name}_{axes}.tif", data, imagej=True, metadata={"axes": axes})
    tifffile.imwrite(d / "pred_plain.tif", pred)
    tifffile.imwrite(d / "truth_plain.tif", truth)
    return d


def evaluate(*args):
    proc = cli("evaluate", *args)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    return json.loads(proc.stdout), lines[0]


def test_a_z_stack_is_scored_as_one_volume(stacks):
    scores, line = evaluate("--pred", stacks / "pred_ZYX.tif", "--truth", stacks / "truth_ZYX.tif")
    assert scores["matching"] == "3d" and scores["axes"] == "ZYX"
    assert (scores["n_true"], scores["n_pred"], scores["tp"]) == (2, 3, 2)
    assert scores["f1"] == pytest.approx(0.8)  # plane by plane it would be 1.0
    assert line.startswith("napari-unet: scored as a 3D volume (Z×Y×X"), line
    assert "2 true objects, 3 predicted" in line and "F1 0.800" in line
    assert "ImageJ metadata of truth_ZYX.tif" in line


def test_a_t_stack_is_scored_frame_by_frame(stacks):
    scores, line = evaluate("--pred", stacks / "pred_TYX.tif", "--truth", stacks / "truth_TYX.tif")
    assert scores["matching"] == "2d per frame" and scores["frames"] == 8
    assert (scores["n_true"], scores["n_pred"], scores["f1"]) == (16, 16, 1.0)
    assert "scored frame by frame (T=8" in line
    # a prediction without metadata takes the truth's axes
    plain, _ = evaluate("--pred", stacks / "pred_plain.tif", "--truth", stacks / "truth_TYX.tif")
    assert plain == scores


def test_a_stack_without_metadata_is_a_volume_unless_told(stacks):
    files = ("--pred", stacks / "pred_plain.tif", "--truth", stacks / "truth_plain.tif")
    scores, line = evaluate(*files)
    assert scores["matching"] == "3d" and scores["axes_from"] == "the shape"
    assert "--axes" in line  # how to say a time-lapse
    told, line = evaluate(*files, "--axes", "tyx")
    assert told["matching"] == "2d per frame" and "as given" in line


def test_files_that_disagree_on_their_axes_are_refused(stacks):
    proc = cli("evaluate", "--pred", stacks / "pred_ZYX.tif", "--truth", stacks / "truth_TYX.tif")
    assert_user_error(proc, "TYX", "ZYX", "--axes")
    assert proc.stdout == ""
    proc = cli(
        "evaluate", "--pred", stacks / "pred_plain.tif", "--truth", stacks / "truth_plain.tif",
        "--axes", "TZYX",
    )  # fmt: skip
    assert_user_error(proc, "TZYX", "3 dimensions")
