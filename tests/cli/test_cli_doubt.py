"""``napari-unet predict`` says in one line when the model does not know (issue 22,
item 5): the files are written all the same and the exit code stays 0."""

from __future__ import annotations

import numpy as np
import tifffile
from cli_helpers import cli


def test_predict_warns_in_one_line_about_an_image_it_cannot_handle(sample_image, tmp_path):
    crop = sample_image[:256, :256]
    tifffile.imwrite(tmp_path / "nuclei.tif", crop)
    tifffile.imwrite(tmp_path / "inverted.tif", (crop.max() - crop).astype(crop.dtype))
    out = tmp_path / "out"
    proc = cli(
        "predict",
        tmp_path / "nuclei.tif",
        tmp_path / "inverted.tif",
        "--out",
        out,
        "--model",
        "nuclei",
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    # every file written, the doubtful image's too
    for stem in ("nuclei", "inverted"):
        assert (out / f"{stem}_labels.tif").exists() and (out / f"{stem}_probability.tif").exists()
    assert len(proc.stdout.splitlines()) == 2, proc.stdout
    warnings = [ln for ln in proc.stderr.splitlines() if "warning" in ln]
    assert len(warnings) == 1, proc.stderr
    line = warnings[0]
    assert line.startswith("napari-unet: warning: inverted.tif: "), line
    assert "likely wrong" in line and "Train" in line, line
    assert "nuclei.tif" not in proc.stderr  # the sample itself: nothing to doubt
    labels = tifffile.imread(out / "inverted_labels.tif")
    assert labels.shape == crop.shape and labels.dtype in (np.uint16, np.uint32)
    # block by block (OME-Zarr), the same judgement and the same line
    zproc = cli(
        "predict", tmp_path / "inverted.tif", "--out", out, "--format", "zarr", "--model", "nuclei"
    )
    assert zproc.returncode == 0, zproc.stderr
    assert (out / "inverted_labels.zarr").is_dir()
    zlines = [ln for ln in zproc.stderr.splitlines() if "warning" in ln]
    assert zlines == [line], zproc.stderr
