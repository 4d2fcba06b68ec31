"""``train`` on a z-stack (issue 23): a ZYX tif with an annotation of a few of its planes
trains (planes nobody annotated are left out, not taught as background), and the
model predicts the volume in 3-D."""

from __future__ import annotations

import numpy as np
import tifffile
from cli_helpers import cli
from helpers import ball_volume, seeded

from napari_unet.core.training.targets import mask_to_annotation

TINY = [
    "--init", "none", "--depth", "2", "--base-filters", "8", "--epochs", "2",
    "--steps-per-epoch", "5", "--patch-size", "48", "--batch-size", "4",
]  # fmt: skip


def test_train_on_a_zyx_tif_with_two_annotated_planes(tmp_path):
    image, truth = ball_volume(seeded(0))
    tifffile.imwrite(
        tmp_path / "vol.tif", image, imagej=True, metadata={"axes": "ZYX", "spacing": 2.0}
    )
    ann = np.zeros(truth.shape, np.uint8)
    ann[2] = mask_to_annotation(truth[2])
    ann[9] = mask_to_annotation(truth[9])
    tifffile.imwrite(tmp_path / "ann.tif", ann)
    model = tmp_path / "m.keras"
    proc = cli(
        "train", "--image", tmp_path / "vol.tif", "--annotation", tmp_path / "ann.tif",
        "--out", model, *TINY,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert model.is_file() and "Traceback" not in proc.stderr
    from napari_unet.core import UNet

    net = UNet.load(model)
    run = net.metadata.training_runs[-1]
    assert run["steps"] == 10
    assert np.isfinite(net.metadata.history["loss"]).all()
    # the two annotated planes trained, and nothing else
    assert [d["name"] for d in run["data"]] == ["vol.tif[2]", "vol.tif[9]"]
    out = tmp_path / "pred"
    pred = cli("predict", tmp_path / "vol.tif", "--model", model, "--out", out, "--diameter", "0")
    assert pred.returncode == 0, pred.stderr
    assert tifffile.imread(out / "vol_labels.tif").shape == truth.shape
    # a stray --z-scale is refused plainly
    bad = cli(
        "train", "--image", tmp_path / "vol.tif", "--annotation", tmp_path / "ann.tif",
        "--out", tmp_path / "b.keras", "--z-scale", "-1", *TINY,
    )  # fmt: skip
    assert bad.returncode == 2 and "Traceback" not in bad.stderr, bad.stderr
