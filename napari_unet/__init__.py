"""napari-unet: interactive U-Net segmentation of microscopy images in napari."""

from ._version import __version__

__all__ = ["__version__"]
