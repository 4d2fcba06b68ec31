"""The command line with several object classes: train on labels 1/2/3, predict writes
``<stem>_classes.tif``, evaluate prints per-class figures; one-class output unchanged."""

from __future__ import annotations

import json

import numpy as np
import tifffile
from cli_helpers import assert_user_error, cli
from helpers import make_two_classes

from napari_unet.core import mask_to_annotation

TINY = [
    "--depth", "2", "--base-filters", "8", "--epochs", "2", "--steps-per-epoch", "4",
    "--patch-size", "64", "--batch-size", "4",
]  # fmt: skip


def test_train_on_three_labels_then_predict_writes_a_class_map_and_evaluate_scores_it(
    tmp_path,
):
    img, mask, classes = make_two_classes(128, 14, seed=1)
    tifffile.imwrite(tmp_path / "cells.tif", img)
    tifffile.imwrite(tmp_path / "cells_ann.tif", mask_to_annotation(mask, classes))
    model = tmp_path / "two.keras"
    train = cli(
        "train", "--image", tmp_path / "cells.tif", "--annotation", tmp_path / "cells_ann.tif",
        "--out", model, "--init", "none", *TINY,
    )  # fmt: skip
    assert train.returncode == 0, train.stderr
    assert "2 object classes" in train.stdout

    out = tmp_path / "pred"
    pred = cli("predict", tmp_path / "cells.tif", "--model", model, "--out", out)
    assert pred.returncode == 0, pred.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "cells_classes.tif", "cells_labels.tif", "cells_probability.tif",
    ]  # fmt: skip
    assert "cells_classes.tif" in pred.stdout
    labels = tifffile.imread(out / "cells_labels.tif")
    class_map = tifffile.imread(out / "cells_classes.tif")
    assert class_map.dtype == np.uint8 and class_map.shape == labels.shape
    assert np.array_equal(class_map > 0, labels > 0)
    assert set(np.unique(class_map)) <= {0, 1, 2}
    for i in np.unique(labels)[1:]:  # one class per instance
        assert len(np.unique(class_map[labels == i])) == 1

    # a class map the user made is never replaced without --overwrite
    again = cli("predict", tmp_path / "cells.tif", "--model", model, "--out", out)
    assert again.returncode == 0, again.stderr  # our own outputs are replaced
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    tifffile.imwrite(theirs / "cells_classes.tif", classes)  # no napari-unet tag
    refused = cli("predict", tmp_path / "cells.tif", "--model", model, "--out", theirs)
    assert_user_error(refused, "cells_classes.tif", "--overwrite")
    assert sorted(p.name for p in theirs.iterdir()) == ["cells_classes.tif"]

    tifffile.imwrite(tmp_path / "truth.tif", mask)
    tifffile.imwrite(tmp_path / "truth_classes.tif", classes)
    ev = cli(
        "evaluate", "--pred", out / "cells_labels.tif", "--truth", tmp_path / "truth.tif",
        "--pred-classes", out / "cells_classes.tif", "--truth-classes",
        tmp_path / "truth_classes.tif",
    )  # fmt: skip
    assert ev.returncode == 0, ev.stderr
    scores = json.loads(ev.stdout)
    for key in ("pixel_dice", "pixel_iou", "precision", "recall", "f1", "mean_ap"):
        assert 0.0 <= scores[key] <= 1.0
    assert set(scores["per_class"]) >= {"2"}  # the truth's classes are always listed
    for figures in scores["per_class"].values():
        assert set(figures) >= {"precision", "recall", "f1", "n_true", "n_pred", "tp"}
    assert scores["per_class"]["1"]["n_true"] + scores["per_class"]["2"]["n_true"] == 14
    plain = json.loads(
        cli(
            "evaluate", "--pred", out / "cells_labels.tif", "--truth", tmp_path / "truth.tif"
        ).stdout
    )
    assert "per_class" not in plain and plain["f1"] == scores["f1"]
    one = cli(
        "evaluate", "--pred", out / "cells_labels.tif", "--truth", tmp_path / "truth.tif",
        "--pred-classes", out / "cells_classes.tif",
    )  # fmt: skip
    assert_user_error(one, "--truth-classes")

    # block by block (OME-Zarr on the command line, small blocks in the API): the same
    # class map, one class per instance across block borders
    zout = tmp_path / "zarr"
    zpred = cli(
        "predict", tmp_path / "cells.tif", "--model", model, "--out", zout, "--format", "zarr"
    )
    assert zpred.returncode == 0, zpred.stderr
    assert sorted(p.name for p in zout.iterdir()) == [
        "cells_classes.zarr", "cells_labels.zarr", "cells_probability.zarr",
    ]  # fmt: skip
    import zarr

    from napari_unet.core import UNet
    from napari_unet.core.prediction.blockwise import predict_to_zarr

    def level0(path):
        return zarr.open_array(str(path / "0"), mode="r")[...]

    np.testing.assert_array_equal(level0(zout / "cells_classes.zarr"), class_map)
    (tmp_path / "work").mkdir()
    res = predict_to_zarr(
        UNet.load(model), img, tmp_path / "l.zarr", tmp_path / "p.zarr", tmp_path / "work",
        block_size=64, halo=32, diameter=0, classes_path=tmp_path / "c.zarr",
    )  # fmt: skip
    assert res.blocks == 4
    blocks, block_classes = level0(tmp_path / "l.zarr"), level0(tmp_path / "c.zarr")
    assert np.array_equal(block_classes > 0, blocks > 0)
    for i in np.unique(blocks)[1:]:
        assert len(np.unique(block_classes[blocks == i])) == 1
