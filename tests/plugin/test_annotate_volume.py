"""Annotate a volume (issue 23): the annotation layer of a z-stack is 3-D with the
image's z-step and axis labels, a 3-D prediction copied into it leaves the surfaces
where two instances touch in 3D unannotated, and Train reads the pair as a volume."""

from __future__ import annotations

import numpy as np
from helpers import balls
from widget_helpers import dock

from napari_unet._training_data import painted_pairs
from napari_unet.core.training.targets import mask_to_annotation


def test_copy_a_3d_prediction_leaves_3d_contact_surfaces_unannotated(make_napari_viewer):
    viewer = make_napari_viewer()
    # two balls lying one on the other (they touch across z) and one beside them
    truth = balls(
        (12, 48, 48), [(3, 16, 16), (8, 16, 16), (6, 34, 34)], [(6, 8, 8), (6, 8, 8), (8, 8, 8)],
        z_scale=2.0,
    )  # fmt: skip
    image = (truth > 0).astype(np.float32) * 500 + 100
    viewer.add_image(image, name="vol", scale=(2.0, 1.0, 1.0), axis_labels=("z", "y", "x"))
    viewer.add_labels(truth, name="vol labels", scale=(2.0, 1.0, 1.0))
    annotate = dock(viewer, "Annotate")
    annotate._image.value = "vol"
    layer = annotate._on_create()
    assert layer.data.shape == truth.shape and layer.ndim == 3
    assert tuple(layer.scale) == (2.0, 1.0, 1.0)
    assert tuple(layer.axis_labels) == ("z", "y", "x")
    annotate._on_use_prediction("replace")
    ann = np.asarray(layer.data)
    assert np.array_equal(ann, mask_to_annotation(truth, axes="ZYX"))
    # where ball 1 lies on ball 2, the voxels on both sides are unannotated, though
    # no single plane shows them touching
    on = (truth[:-1] == 1) & (truth[1:] == 2)
    assert on.sum() > 10
    assert (ann[:-1][on] == 0).all() and (ann[1:][on] == 0).all()
    assert (mask_to_annotation(truth)[:-1][on] == 2).mean() > 0.5  # plane by plane: mostly object
    # Train takes the pair as a volume with its z-step
    _, data = painted_pairs(viewer)
    assert len(data) == 1 and data[0].z_scale == 2.0
    assert data[0].annotation.shape == truth.shape
