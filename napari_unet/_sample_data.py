"""Sample data: the real nuclei image shipped with napari-unet and its ground truth.

A 512×512 fluorescence image of 125 nuclei from the 2018 Data Science Bowl (BBBC038,
CC0), as bundled in the stardist 0.9.2 wheel; see ``sample_data/LICENSE.md``.
"""

from __future__ import annotations

from .core.files.images import sample_dir  # noqa: F401 - where the files are: core's to know

IMAGE_NAME = "nuclei"
TRUTH_NAME = "nuclei ground truth"


def make_sample_data() -> list[tuple]:
    """The nuclei image and its ground-truth instance mask, as napari layer data.

    The ground truth comes hidden, ready for the Evaluate widget.
    """
    import tifffile

    folder = sample_dir()
    image = tifffile.imread(folder / "img2d.tif")
    mask = tifffile.imread(folder / "mask2d.tif")
    _select_when_added(image)
    return [
        (image, {"name": IMAGE_NAME, "colormap": "gray"}, "image"),
        (mask, {"name": TRUTH_NAME, "visible": False, "opacity": 0.5}, "labels"),
    ]


def _select_when_added(image) -> None:
    """Once napari has added the layers, make the image (not the hidden ground truth,
    which napari selects as the last layer added) the selected layer.

    Runs only inside a napari session; the layer is recognised by its data.
    """
    import sys

    if "napari" not in sys.modules:
        return
    import napari
    from qtpy.QtCore import QTimer

    viewer = napari.current_viewer()
    if viewer is None:
        return

    def select() -> None:
        for layer in viewer.layers:
            if layer.data is image:
                viewer.layers.selection.active = layer
                return

    QTimer.singleShot(0, select)
