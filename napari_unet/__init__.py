"""napari-unet: interactive U-Net segmentation of microscopy images in napari."""

try:
    from ._version import __version__
except ImportError:  # pragma: no cover - source tree without an install
    __version__ = "0.1.0"

__all__ = ["__version__"]
