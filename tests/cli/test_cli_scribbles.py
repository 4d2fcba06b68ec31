"""``napari-unet train --annotation`` with scribbles on touching rods: the run trains
from a few strokes and its last line says the loss it reached, never "no finite loss
recorded" (issue 22, item 4)."""

from __future__ import annotations

import re
import sys

import numpy as np
import tifffile
from cli_helpers import cli
from helpers import ROOT
from scipy import ndimage as ndi

sys.path.insert(0, str(ROOT / "scripts"))
from synthetic_rods import synth_rods  # noqa: E402


def test_train_on_scribbles_reports_a_finite_loss(tmp_path):
    img, mask = synth_rods(128, seed=1, contact=0.5)
    ann = np.zeros(mask.shape, np.uint8)
    free = ~ndi.binary_dilation(mask > 0, iterations=3)
    for row in (10, 60, 110):
        ann[row][free[row]] = 1
    for i in np.unique(mask)[1:7]:
        ys, xs = np.nonzero(ndi.binary_erosion(mask == i, iterations=2))
        ann[ys[: len(ys) // 2], xs[: len(ys) // 2]] = 2
    tifffile.imwrite(tmp_path / "rods.tif", img)
    tifffile.imwrite(tmp_path / "strokes.tif", ann)
    proc = cli(
        "train", "--image", tmp_path / "rods.tif", "--annotation", tmp_path / "strokes.tif",
        "--out", tmp_path / "tuned.keras",  # fine-tunes the bundled model, as the report did
        "--epochs", "2", "--steps-per-epoch", "2", "--patch-size", "64", "--batch-size", "2",
        "--seed", "0",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    assert "no finite loss" not in last, last
    found = re.search(r"kept the last weights, loss (\S+?),? ", last + " ")
    assert found and np.isfinite(float(found.group(1))), last
