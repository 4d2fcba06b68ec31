"""Where an image keeps its channels: one rule (core.axes) for every caller."""

from __future__ import annotations

import numpy as np
import pytest

from napari_unet.core import UserInputError
from napari_unet.core.axes import channel_layout

# shape, model channels -> (channel axis, drop alpha, to grey, spatial shape)
CASES = {
    "2D, 1 channel": ((64, 48), 1, (None, False, False, (64, 48))),
    "(Y, X, 3) RGB, 1 channel": ((64, 48, 3), 1, (2, False, True, (64, 48))),
    "(Y, X, 3) RGB, 3 channels": ((64, 48, 3), 3, (2, False, False, (64, 48))),
    "(Y, X, 4) RGBA, 3 channels": ((64, 48, 4), 3, (2, True, False, (64, 48))),
    "(Y, X, 4) RGBA, 1 channel": ((64, 48, 4), 1, (2, True, True, (64, 48))),
    "(Y, X, 4), 4 channels": ((64, 48, 4), 4, (2, False, False, (64, 48))),
    "(Y, X, 1), 1 channel": ((64, 48, 1), 1, (2, False, False, (64, 48))),
    "(Y, X, 2), 2 channels": ((64, 48, 2), 2, (2, False, False, (64, 48))),
    "(C, Y, X) C=2": ((2, 64, 48), 2, (0, False, False, (64, 48))),
    "(C, Y, X) C=3": ((3, 64, 48), 3, (0, False, False, (64, 48))),
    "(C, Y, X) C=4": ((4, 64, 48), 4, (0, False, False, (64, 48))),
    "(3, Y, X), 1 channel: a stack": ((3, 64, 48), 1, (None, False, False, (3, 64, 48))),
    "(4, Y, X), 1 channel: a stack": ((4, 64, 48), 1, (None, False, False, (4, 64, 48))),
    "(Z, Y, X) stack": ((7, 64, 48), 1, (None, False, False, (7, 64, 48))),
    "(T, Z, Y, X) stack": ((2, 5, 64, 48), 1, (None, False, False, (2, 5, 64, 48))),
    "(Z, Y, X, 3), 1 channel": ((5, 64, 48, 3), 1, (3, False, True, (5, 64, 48))),
    "(Z, Y, X, 3), 3 channels": ((5, 64, 48, 3), 3, (3, False, False, (5, 64, 48))),
    "(Z, Y, X, 4), 3 channels": ((5, 64, 48, 4), 3, (3, True, False, (5, 64, 48))),
    "(Z, C, Y, X)": ((5, 2, 64, 48), 2, (1, False, False, (5, 64, 48))),
    "(C, Z, Y, X)": ((2, 5, 64, 48), 2, (0, False, False, (5, 64, 48))),
    "(T, Z, Y, X, C)": ((2, 5, 64, 48, 3), 3, (4, False, False, (2, 5, 64, 48))),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_rule(case):
    shape, channels, (axis, alpha, grey, spatial) = CASES[case]
    layout = channel_layout(shape, channels)
    assert (layout.axis, layout.drop_alpha, layout.to_grey) == (axis, alpha, grey)
    assert layout.spatial_shape == spatial
    # the axes string says the same decision and reproduces it
    again = channel_layout(shape, channels, axes=layout.axes)
    assert again == layout
    # the data follow the decision: (..., Y, X, channels)
    a = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    out = np.asarray(layout.channels_last(a))
    assert out.shape == spatial + (channels,)
    if axis is not None and not alpha and not grey:
        np.testing.assert_array_equal(out, np.moveaxis(a, axis, -1))


BAD = {
    "1D": ((100,), 1, "at least 2D"),
    "(Y, X) for 3 channels": ((64, 48), 3, "no axis of 3 channels"),
    "(Y, X, 3) for 2 channels": ((64, 48, 3), 2, "no axis of 2 channels"),
    "(Y, X, 2) for 3 channels": ((64, 48, 2), 3, "no axis of 3"),
    "(Z, C, Y, X) with Z = C": ((3, 3, 64, 48), 3, "ambiguous"),
    "5D stack": ((2, 2, 2, 32, 32), 1, "not supported"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_or_ambiguous_input_is_a_plain_error(case):
    shape, channels, fragment = BAD[case]
    with pytest.raises(UserInputError, match=fragment):
        channel_layout(shape, channels, name="cells.tif")


def test_said_explicitly():
    # an axes string settles what the shape cannot
    assert channel_layout((3, 3, 64, 48), 3, axes="ZCYX").axis == 1
    assert channel_layout((3, 3, 64, 48), 3, axes="czyx").axis == 0
    # a stack whose last axis looks like colours, said to be a stack
    layout = channel_layout((64, 48, 3), 1, axes="ZYX")
    assert layout.axis is None and layout.spatial_shape == (64, 48, 3)
    assert channel_layout((2, 64, 48), 1, channel_axis=0).to_grey
    assert channel_layout((64, 48, 3), 3, channel_axis=-1).axis == 2
    for bad, fragment in [("YX", "2 axes"), ("YXQ", "letters"), ("XCY", "Y and X")]:
        with pytest.raises(UserInputError, match=fragment):
            channel_layout((64, 48, 3), 3, axes=bad)
    with pytest.raises(UserInputError, match="has 3 channels"):
        channel_layout((3, 64, 48), 2, axes="CYX")


def test_napari_rgb_flag():
    # rgb=True: the last axis is colour; RGBA's alpha is dropped for a 3-channel model
    layout = channel_layout((64, 48, 4), 3, rgb=True)
    assert layout.axis == 2 and layout.drop_alpha
    assert channel_layout((64, 48, 3), 1, rgb=True).to_grey
    # rgb=False: a one-channel model sees every axis as a plane axis (as napari shows it)
    assert channel_layout((64, 48, 3), 1, rgb=False).axis is None
    # ... and a multichannel model still finds channels by their number
    assert channel_layout((64, 48, 3), 3, rgb=False).axis == 2
    assert channel_layout((3, 64, 48), 3, rgb=False).axis == 0
    with pytest.raises(UserInputError, match="RGB"):
        channel_layout((64, 48), 1, rgb=True)


def test_rgba_is_read_as_its_colours():
    rng = np.random.default_rng(0)
    rgba = (rng.random((32, 40, 4)) * 255).astype(np.uint8)
    out = channel_layout(rgba.shape, 3).channels_last(rgba)
    np.testing.assert_array_equal(out, rgba[..., :3])
    grey = channel_layout(rgba.shape, 1).channels_last(rgba)
    np.testing.assert_allclose(grey[..., 0], rgba[..., :3].astype(np.float32).mean(-1))


def test_read_takes_one_plane_or_window_lazily():
    rng = np.random.default_rng(1)
    a = rng.random((4, 2, 40, 50)).astype(np.float32)  # (Z, C, Y, X)
    layout = channel_layout(a.shape, 2)
    np.testing.assert_array_equal(layout.read(a, (3,)), np.moveaxis(a[3], 0, -1))
    win = layout.read(a, (1,), slice(5, 9), slice(10, 20, 2))
    np.testing.assert_array_equal(win, np.moveaxis(a[1, :, 5:9, 10:20:2], 0, -1))
