"""Segment on a z-stack layer (issue 23): a layer whose axis labels (else its shape) say
Z is segmented as one volume, one id per object through z, the z-step from its scale,
said in one line; a layer labelled as a time-lapse stays frame by frame.

The bundled nuclei model on blurred balls about its object width (diameter 0)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from helpers import assert_one_id_each, nuclei_volume
from napari.layers import Layer
from widget_helpers import dock, wait_idle

from napari_unet._reader import read_image_layers
from napari_unet.core.files.image_axes import layer_axes


@pytest.fixture(scope="module")
def nuclei_net():
    from napari_unet.core import UNet

    return UNet.bundled("nuclei")


def _segment(viewer, qtbot, net, name):
    segment = dock(viewer, "Segment")
    segment.state.set_model(net, "nuclei")
    segment._model.value = "current"
    segment._diameter.value = 0  # the image as it is
    segment._on_segment(name)
    wait_idle(qtbot, segment, 180_000)
    return segment


def test_a_volume_layer_is_segmented_as_one_volume(
    make_napari_viewer, qtbot, tmp_path, nuclei_net, notes
):
    image, truth = nuclei_volume()
    path = (
        tmp_path / "vol.tif"
    )  # 2 px z steps: napari-unet's reader gives the layer scale (2, 1, 1)
    thin, thin_truth = image[::2].astype(np.uint16), truth[::2]
    tifffile.imwrite(
        path, thin, imagej=True, resolution=(1.0, 1.0), metadata={"axes": "ZYX", "spacing": 2.0}
    )
    viewer = make_napari_viewer()
    ((data, meta, kind),) = read_image_layers(str(path))
    layer = viewer.add_layer(Layer.create(data, meta, kind))
    assert np.allclose(layer.scale, (2, 1, 1))
    segment = _segment(viewer, qtbot, nuclei_net, layer.name)
    labels = viewer.layers[f"{layer.name} labels"]
    assert labels.data.shape == thin.shape
    assert_one_id_each(np.asarray(labels.data), thin_truth, share=0.6)
    assert int(labels.data.max()) <= 5
    assert np.allclose(labels.scale, (2, 1, 1))
    said = "vol: segmented as a 3D volume (Z×Y×X)"
    assert said in segment.status.text()
    assert said in notes()


def test_a_time_lapse_layer_stays_frame_by_frame(make_napari_viewer, qtbot, nuclei_net, notes):
    image, truth = nuclei_volume()
    viewer = make_napari_viewer()
    viewer.add_image(image, name="movie", axis_labels=("t", "y", "x"))
    segment = _segment(viewer, qtbot, nuclei_net, "movie")
    labels = np.asarray(viewer.layers["movie labels"].data)
    assert labels.shape == truth.shape
    assert int(labels.max()) > 30  # every frame its own ids
    assert "3D volume" not in segment.status.text()
    assert not any("3D volume" in n for n in notes())


def test_layer_axes_from_labels_scale_and_shape():
    plain = layer_axes((5, 32, 32), ("axis -3", "axis -2", "axis -1"), (3.0, 1.0, 1.0))
    assert plain.axes == "ZYX" and plain.z_scale == 3.0  # the shape rule, the layer's step
    assert layer_axes((5, 32, 32), ("t", "y", "x")).axes == "TYX"
    both = layer_axes((5, 2, 32, 32), ("z", "t", "y", "x"), (2.0, 1.0, 0.5, 0.5))
    assert both.axes == "ZTYX" and both.z_scale == 4.0
    assert layer_axes((5, 32, 32), scale=(1e6, 1.0, 1.0)).z_scale == 1.0  # out of range
    assert layer_axes((32, 32)).axes == "YX"
