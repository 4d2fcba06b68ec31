"""core/config.py: what the settings a person types mean, decided once for the command
line and the widgets (no Qt, no TensorFlow)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_unet.core.config import (
    FINE_TUNE_LEARNING_RATE,
    LIMITS,
    MEASURE_DIAMETER,
    NEW_NETWORK_LEARNING_RATE,
    TrainConfig,
    UNetConfig,
    check_threshold,
    diameter_argument,
    input_channels_for,
)
from napari_unet.core.errors import ConfigError, UserInputError


def test_a_diameter_means_the_same_everywhere():
    assert diameter_argument(None) == MEASURE_DIAMETER == "auto"  # none given: measured
    assert diameter_argument(0) == 0.0  # the image as it is
    assert diameter_argument(42) == 42.0 and isinstance(diameter_argument(42), float)


def test_a_diameter_of_zero_predicts_the_image_as_it_is():
    """0 gives exactly the pass at the image's own pixels, whatever size the model
    learned; none given measures the objects first."""
    from napari_unet.core import UNet

    net = UNet.new(UNetConfig(depth=1, base_filters=2), seed=0)
    net.metadata.object_diameter = 6.0
    img = np.random.default_rng(0).random((64, 64)).astype(np.float32)
    as_is = net.predict(img, diameter=diameter_argument(0))
    assert as_is.scale == 1.0
    np.testing.assert_array_equal(as_is.probability, net.predict(img, diameter=None).probability)
    bigger = net.predict(img, diameter=diameter_argument(12))  # objects twice as wide
    assert bigger.scale == pytest.approx(0.5)


def test_the_channels_of_a_new_network_follow_its_images():
    assert input_channels_for([True, True]) == 3  # colour pictures: a colour network
    assert input_channels_for([True, False]) == 1  # mixed: colours seen as grey
    assert input_channels_for([False]) == 1
    assert input_channels_for([]) == 1
    assert input_channels_for(x for x in (True,)) == 3


def test_the_first_learning_rate_depends_on_where_training_starts():
    cfg = TrainConfig()
    assert cfg.first_learning_rate(pretrained=True) == FINE_TUNE_LEARNING_RATE == 3e-4
    assert cfg.first_learning_rate(pretrained=False) == NEW_NETWORK_LEARNING_RATE == 1e-3
    assert TrainConfig(learning_rate=0.01).first_learning_rate(pretrained=True) == 0.01


def test_threshold_and_depth_ranges():
    check_threshold(None)  # the model's own
    check_threshold(0.5)
    for bad in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ConfigError) as e:
            check_threshold(bad)
        assert e.value.field == "threshold"
    depth = LIMITS["depth"]
    assert UNetConfig(depth=int(depth.hi)).depth == depth.hi
    with pytest.raises(UserInputError, match=f"from {depth.lo:g} to {depth.hi:g}"):
        UNetConfig(depth=int(depth.hi) + 1)


def test_zero_means_automatic_in_every_front_end_and_ranges_come_from_core():
    from napari_unet.core.config import AUTOMATIC_WHEN_ZERO, LIMITS, typed_setting

    for name in AUTOMATIC_WHEN_ZERO:
        assert typed_setting(name, 0) is None and typed_setting(name, None) is None
    assert typed_setting("threshold", 0.3) == 0.3 and typed_setting("min_size", 1) == 1
    assert typed_setting("epochs", 0) == 0  # not an automatic setting: checked as typed
    # a learning rate above the range is refused with the range, not clamped
    assert LIMITS["learning_rate"].hi == 0.1
    TrainConfig(learning_rate=0.1)
    with pytest.raises(ConfigError, match="up to 0.1"):
        TrainConfig(learning_rate=0.5)
