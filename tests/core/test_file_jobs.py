"""core/jobs/file_jobs.py: a batch of predictions planned and checked before any work, without
TensorFlow (the run itself is tested through the command line, tests/cli/)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_unet.core import UserInputError
from napari_unet.core.axes import channel_layout
from napari_unet.core.errors import ConfigError, DefaultModelMissing
from napari_unet.core.jobs.file_jobs import plan_predictions
from napari_unet.core.memory import LARGE_PIXELS, block_by_block


@pytest.fixture
def images(tmp_path):
    paths = []
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        paths.append(tmp_path / folder / "cells.tif")
        tifffile.imwrite(paths[-1], np.zeros((64, 48), np.uint8))
    return paths


def test_the_plan_names_every_output_and_chooses_block_wise(images, tmp_path):
    out = tmp_path / "out"
    plan = plan_predictions(images[:1], out)
    (job,) = plan.jobs
    assert job.outputs == {
        "labels": out / "cells_labels.tif",
        "probability": out / "cells_probability.tif",
    }
    assert not job.blockwise and out.is_dir()
    zarr_plan = plan_predictions(images[:1], out, fmt="zarr")
    assert zarr_plan.jobs[0].blockwise and zarr_plan.jobs[0].outputs["labels"].suffix == ".zarr"
    assert plan_predictions(images[:1], out, distributed=True).jobs[0].blockwise
    side = int(np.sqrt(LARGE_PIXELS)) + 1
    assert block_by_block(channel_layout((side, side), 1).spatial_shape) and not block_by_block(
        channel_layout((3, side, side), 1).spatial_shape
    )


def test_bad_batches_are_refused_before_anything_is_written(images, tmp_path, monkeypatch):
    out = tmp_path / "out"
    with pytest.raises(UserInputError, match="would both write cells_labels.tif"):
        plan_predictions(images, out)
    out.mkdir()
    clash = out / "cells_labels.tif"  # an input where the first image's labels go
    tifffile.imwrite(clash, np.zeros((8, 8), np.uint8))
    with pytest.raises(UserInputError, match="would overwrite an input image"):
        plan_predictions([images[0], clash], out)
    clash.unlink()
    (out / "cells_probability.tif").write_text("mine")  # a file the person made
    with pytest.raises(UserInputError, match="not written by napari-unet"):
        plan_predictions(images[:1], out)
    assert plan_predictions(images[:1], out, overwrite=True).jobs
    (out / "cells_probability.tif").unlink()
    out.rmdir()
    with pytest.raises(ConfigError) as e:
        plan_predictions(images[:1], out, threshold=1.5)
    assert e.value.field == "threshold"
    monkeypatch.setenv("NAPARI_UNET_DEFAULT_MODEL", str(tmp_path / "absent.keras"))
    with pytest.raises(DefaultModelMissing):
        plan_predictions(images[:1], out)
    assert not out.exists()
