"""The U-Net builder: shapes, the unpadded variant and its size errors, Qt-free core."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from napari_unet.core import UNetConfig, UserInputError
from napari_unet.core.network.architecture import (
    build_unet,
    output_size,
    receptive_field_radius,
    valid_input_sizes,
)


@pytest.mark.parametrize(
    "depth,filters,size,channels,classes",
    [(1, 4, 16, 1, 1), (2, 4, 48, 2, 1), (3, 8, 64, 1, 2), (4, 4, 96, 3, 1)],
)
def test_same_padding_output_shapes(depth, filters, size, channels, classes):
    cfg = UNetConfig(
        depth=depth, base_filters=filters, input_channels=channels, n_object_classes=classes
    )
    model = build_unet(cfg)
    x = np.random.default_rng(0).random((2, size, size + cfg.size_multiple, channels))
    y = model.predict(x.astype("float32"), verbose=0)
    assert y.shape == (2, size, size + cfg.size_multiple, classes + 2)
    np.testing.assert_allclose(y.sum(-1), 1.0, atol=1e-5)  # softmax over classes
    # channels double per level: the deepest convolution has filters * 2**depth
    assert model.get_layer("bottleneck_conv2").filters == filters * 2**depth


def test_architecture_follows_the_paper():
    model = build_unet(UNetConfig(depth=3, base_filters=8, batch_norm=False, dropout=0.5))
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds.count("MaxPooling2D") == 3
    assert kinds.count("Conv2DTranspose") == 3
    assert kinds.count("Concatenate") == 3
    assert kinds.count("Conv2D") == 2 * 3 + 2 + 2 * 3 + 1
    assert "Dropout" in kinds
    last = model.layers[-1]
    assert last.kernel_size == (1, 1)
    conv = model.get_layer("down0_conv1")
    assert conv.kernel_size == (3, 3)
    assert type(conv.kernel_initializer).__name__ == "HeNormal"


def test_same_padding_rejects_sizes_off_the_grid():
    with pytest.raises(UserInputError, match="multiple of 16"):
        output_size(UNetConfig(depth=4), 100)


def test_valid_padding_sizes_and_shapes():
    cfg = UNetConfig(depth=4, base_filters=2, padding="valid")
    # the paper's example: a 572 px tile gives a 388 px output
    assert output_size(cfg, 572) == 388
    sizes = valid_input_sizes(cfg, 100, 600)
    assert 572 in sizes and 571 not in sizes
    assert all(b - a == 16 for a, b in zip(sizes, sizes[1:]))
    model = build_unet(cfg)
    x = np.zeros((1, sizes[0], sizes[1], 1), "float32")
    y = model.predict(x, verbose=0)
    assert y.shape[1:3] == (output_size(cfg, sizes[0]), output_size(cfg, sizes[1]))


def test_valid_padding_invalid_size_is_a_clear_error():
    cfg = UNetConfig(depth=3, base_filters=2, padding="valid")
    with pytest.raises(UserInputError, match="not a valid input size.*valid sizes near it"):
        output_size(cfg, 101)


def test_bad_configs_are_refused():
    with pytest.raises(UserInputError):
        UNetConfig(depth=0)
    with pytest.raises(UserInputError):
        UNetConfig(padding="reflect")
    with pytest.raises(UserInputError):
        UNetConfig(dropout=1.5)


def test_receptive_field_bounds_the_influence_of_a_pixel():
    cfg = UNetConfig(depth=2, base_filters=4, batch_norm=False)
    model = build_unet(cfg)
    r = receptive_field_radius(cfg)
    size = 4 * r
    size += (-size) % cfg.size_multiple
    x = np.zeros((1, size, size, 1), "float32")
    base = model.predict(x, verbose=0)
    c = size // 2
    x[0, c, c, 0] = 10.0
    diff = np.abs(model.predict(x, verbose=0) - base).max(-1)[0]
    ys, xs = np.nonzero(diff > 1e-6)
    assert len(ys)  # the impulse changes something
    assert np.abs(ys - c).max() <= r and np.abs(xs - c).max() <= r


def test_core_imports_no_gui_and_no_tensorflow():
    code = (
        "import sys, napari_unet, napari_unet.core, napari_unet.core.files.images, napari_unet.core.files.outputs, napari_unet.core.files.training_sets;"
        "bad=[m for m in ('napari','qtpy','magicgui','PyQt5','tensorflow') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_core_never_imports_gui_even_after_use():
    code = (
        "import sys, numpy as np;"
        "from napari_unet.core import UNet, UNetConfig;"
        "net = UNet.new(UNetConfig(depth=1, base_filters=2));"
        "net.predict(np.random.rand(32, 32));"
        "bad=[m for m in ('napari','qtpy','magicgui','PyQt5') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_mixed_precision_build_keeps_a_float32_output_and_float32_weights():
    """The GPU path (mixed_float16) builds, runs and yields float32 probabilities; its
    weights load into a float32 twin, so model files do not depend on the hardware."""
    cfg = UNetConfig(depth=1, base_filters=2)
    mixed = build_unet(cfg, dtype_policy="mixed_float16")
    assert mixed.get_layer("down0_conv1").compute_dtype == "float16"
    assert all(w.dtype == "float32" for w in mixed.weights)
    y = mixed.predict(np.random.default_rng(0).random((1, 16, 16, 1)).astype("float32"), verbose=0)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.sum(-1), 1.0, atol=1e-3)
    plain = build_unet(cfg, dtype_policy="float32")
    plain.set_weights(mixed.get_weights())
