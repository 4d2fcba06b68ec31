"""core/memory.py: the one rule 'in memory or block by block', without Qt or TensorFlow."""

from __future__ import annotations

import numpy as np
import pytest

from napari_unet.core import memory
from napari_unet.core.memory import LARGE_PIXELS, block_by_block, is_lazy


def test_is_lazy_is_a_question_of_type_not_size(tmp_path):
    import dask.array as da
    import zarr

    big = np.zeros((4, 4), np.uint8)
    assert not is_lazy(big)
    mm = np.lib.format.open_memmap(tmp_path / "m.npy", mode="w+", dtype=np.uint8, shape=(8, 8))
    assert not is_lazy(mm)  # a memory map is a numpy array: read whole like one
    assert is_lazy(da.zeros((4, 4), chunks=2))
    assert is_lazy(zarr.zeros((4, 4), chunks=(2, 2)))
    assert not is_lazy([[0, 1]])


def test_a_2d_image_goes_block_by_block_above_the_threshold_or_when_chunked():
    side = int(np.sqrt(LARGE_PIXELS))
    assert side * side <= LARGE_PIXELS and not block_by_block((side, side))
    assert block_by_block((side + 1, side + 1))
    assert block_by_block((LARGE_PIXELS + 1, 1))
    # chunked data at hand or a pyramid: never read whole, whatever its size
    assert block_by_block((64, 64), lazy=True)
    assert block_by_block((64, 64), multiscale=True)
    assert not block_by_block((64, 64))


def test_only_single_planes_go_block_by_block():
    side = int(np.sqrt(LARGE_PIXELS)) + 1
    for shape in [(3, side, side), (2, 5, side, side), (side,)]:
        assert not block_by_block(shape)
        assert not block_by_block(shape, lazy=True, multiscale=True)


def test_the_threshold_is_read_when_asked(monkeypatch):
    """Tests (and benchmarks) lower the one threshold to send small images through the
    block-by-block path: the rule reads it at each call."""
    assert not block_by_block((400, 400))
    monkeypatch.setattr(memory, "LARGE_PIXELS", 100_000)
    assert block_by_block((400, 400))


@pytest.mark.gui
def test_layers_follow_the_core_rule(make_napari_viewer, monkeypatch):
    import dask.array as da

    from napari_unet import _layers as L

    viewer = make_napari_viewer()
    small = viewer.add_image(np.zeros((64, 64), np.uint8), name="small")
    chunked = viewer.add_image(da.zeros((64, 64), chunks=32, dtype=np.uint8), name="chunked")
    pyramid = viewer.add_image(
        [da.zeros((64, 64), chunks=32), da.zeros((32, 32), chunks=32)], multiscale=True
    )
    volume = viewer.add_image(da.zeros((3, 64, 64), chunks=32), name="volume")
    colour = viewer.add_image(np.zeros((640, 640, 3), np.uint8), rgb=True, name="colour")
    assert not L.is_huge(small) and L.is_huge(chunked) and L.is_huge(pyramid)
    assert not L.is_huge(volume) and not L.is_huge(colour)
    monkeypatch.setattr(memory, "LARGE_PIXELS", 100_000)
    assert L.is_huge(colour)  # 640² pixels, its colours left out
