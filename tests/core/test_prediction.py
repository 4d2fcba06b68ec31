"""Prediction: any size, tiles equal a whole-image pass, channels and stacks; model files."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from helpers import make_blobs, with_metadata

from napari_unet.core import ModelFileError, UNet, UNetConfig, UserInputError
from napari_unet.core.network.architecture import receptive_field_radius
from napari_unet.core.prediction.tiling import plan_tiles


@pytest.fixture(scope="module")
def tiny_net():
    return UNet.new(UNetConfig(depth=2, base_filters=4), seed=3)


def test_any_image_size_is_accepted(tiny_net):
    for shape in [(37, 53), (16, 16), (130, 7)]:
        p = tiny_net.predict(np.random.default_rng(0).random(shape))
        assert p.probability.shape == shape and p.labels.shape == shape
        assert p.probability.dtype == np.float32
        assert 0 <= p.probability.min() and p.probability.max() <= 1


def test_tiled_prediction_equals_whole_image_pass(tiny_net):
    img, _ = make_blobs(200, 20, seed=1)
    img = np.tile(img, (2, 2))[:389, :371]  # not a multiple of anything
    ctx = receptive_field_radius(tiny_net.config)
    whole = tiny_net.predict(img, tile_size=2048, context=ctx, return_scores=True)
    tiled = tiny_net.predict(img, tile_size=64 + 2 * 32, context=ctx, return_scores=True)
    plan = plan_tiles(*img.shape, 128, ctx, tiny_net.config.size_multiple)
    assert len(plan.origins) > 20  # really tiled
    np.testing.assert_allclose(tiled.scores, whole.scores, atol=1e-5)
    np.testing.assert_array_equal(tiled.labels, whole.labels)


def test_tiles_read_a_thin_mirror_beyond_the_image_and_their_whole_context_between_tiles(
    tiny_net,
):
    """Beyond the image a tile reads 16 px of mirror (a 256 px image: a 288 px tile,
    not 384); between tiles, and inside a larger image, its whole 64 px context."""
    plan = plan_tiles(256, 256, 1024, 64, 16, border=16)
    assert plan.window(0, 0, (256, 256)) == (-16, 272, -16, 272)
    assert plan.pixels((256, 256)) == 288 * 288
    whole = plan_tiles(256, 256, 1024, 64, 16)  # border None: the whole context
    assert whole.window(0, 0, (256, 256)) == (-64, 320, -64, 320)
    inside = plan_tiles(256, 256, 1024, 64, 16, origin=(512, 512), border=16)
    assert inside.window(0, 0, (2048, 2048)) == (448, 832, 448, 832)
    corner = plan_tiles(256, 256, 1024, 64, 16, border=16)
    assert corner.window(0, 0, (2048, 2048)) == (-16, 320, -16, 320)
    odd = plan_tiles(443, 100, 1024, 64, 16, border=16)  # cut in whole steps of the grid
    y0, y1, x0, x1 = odd.window(0, 0, (443, 100))
    assert (y0, x0) == (-16, -16) and 443 + 16 <= y1 < 443 + 32 and 100 + 16 <= x1 < 100 + 32
    assert (y1 - y0) % 16 == 0 and (x1 - x0) % 16 == 0
    # a prediction evaluates the image and its thin border; ZY/ZX planes of a volume
    # (a few z planes tall) read their whole context
    img, _ = make_blobs(64, 6, seed=4)
    p = tiny_net.predict(img, diameter=0)
    assert p.network_pixels["prediction"] == (64 + 32) ** 2
    assert tiny_net.predictor().plan(12, 64, whole_mirror=True).border is None


def test_channels_and_stacks(tiny_net):
    rng = np.random.default_rng(1)
    stack = rng.random((3, 40, 48)).astype(np.float32)
    p = tiny_net.predict(stack)
    assert p.labels.shape == (3, 40, 48)
    # planes are independent: the middle plane alone gives the same probabilities
    np.testing.assert_allclose(tiny_net.predict(stack[1]).probability, p.probability[1], atol=1e-6)
    # instance ids are unique across planes
    per_plane = [set(np.unique(pl)) - {0} for pl in p.labels]
    assert not (per_plane[0] & per_plane[1]) or not per_plane[1]
    rgb = rng.random((40, 48, 3))
    assert tiny_net.predict(rgb, channel_axis=-1).labels.shape == (40, 48)
    two = UNet.new(UNetConfig(depth=1, base_filters=2, input_channels=2))
    assert two.predict(rng.random((32, 32, 2))).labels.shape == (32, 32)
    with pytest.raises(UserInputError, match="channels"):
        two.predict(rng.random((32, 32, 3)))
    with pytest.raises(UserInputError):
        tiny_net.predict(np.zeros(5))


def test_save_load_gives_identical_predictions(tiny_net, tmp_path):
    img, _ = make_blobs(96, 8, seed=2)
    before = tiny_net.predict(img, return_scores=True)
    tiny_net.metadata.history = {"loss": [1.0, 0.5]}
    path = tiny_net.save(tmp_path / "model.keras")
    assert [p.name for p in tmp_path.iterdir()] == ["model.keras"]  # no temp file left
    loaded = UNet.load(path)
    after = loaded.predict(img, return_scores=True)
    np.testing.assert_array_equal(before.scores, after.scores)
    np.testing.assert_array_equal(before.labels, after.labels)
    meta = loaded.metadata
    assert meta.architecture["depth"] == 2 and meta.input_channels == 1
    assert meta.normalization["method"] == "percentile"
    assert meta.history["loss"] == [1.0, 0.5]
    for key in ("classes", "patch_size", "package_version", "training_runs"):
        assert getattr(meta, key) is not None


def test_loading_reads_the_weights_straight_from_the_file_as_keras_would(tiny_net, tmp_path):
    """Issue 20: no float32 twin is built to load a model; the weights read from the
    file are exactly those Keras reads, for the bundled model and a saved one, and a
    file of another layout is left to Keras (which refuses it by name)."""
    from napari_unet.core.network.architecture import build_unet
    from napari_unet.core.network.model_file import default_model_path, read_weights

    saved = tiny_net.save(tmp_path / "tiny.keras")
    other = UNet.new(UNetConfig(depth=1, base_filters=4), seed=0)
    for path, net in ((saved, tiny_net), (default_model_path(), UNet.default())):
        twin = build_unet(net.config, dtype_policy="float32")
        twin.load_weights(str(path))
        fast = read_weights(path, build_unet(net.config, fused=True))
        keras_read = twin.get_weights()
        assert fast is not None and len(fast) == len(keras_read)
        for a, b in zip(fast, keras_read, strict=True):
            np.testing.assert_array_equal(a, b)
    assert read_weights(saved, other.keras_model) is None  # another architecture
    # the file, lied about: depth 1 in its metadata
    liar = with_metadata(
        saved, tmp_path / "liar.keras", lambda m: m["architecture"].update(depth=1)
    )
    with pytest.raises(ModelFileError, match="do not fit its architecture"):
        UNet.load(liar)


def test_foreign_files_are_refused(tmp_path):
    from napari_unet.core import import_tensorflow

    import_tensorflow()  # first, as napari-unet loads it (a napari canvas may follow)
    import keras

    missing = tmp_path / "nope.keras"
    with pytest.raises(ModelFileError, match="not found"):
        UNet.load(missing)
    text = tmp_path / "notes.keras"
    text.write_text("hello")
    with pytest.raises(ModelFileError, match="not a napari-unet model"):
        UNet.load(text)
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    plain.save(tmp_path / "plain.keras")
    with pytest.raises(ModelFileError, match="not a napari-unet model"):
        UNet.load(tmp_path / "plain.keras")


def test_a_model_with_a_lambda_layer_is_refused_and_never_executed(tmp_path):
    from napari_unet.core import import_tensorflow

    import_tensorflow()  # first, as napari-unet loads it (a napari canvas may follow)
    import keras

    sentinel = tmp_path / "executed.txt"

    def evil(x):
        open(sentinel, "w").write("ran")  # noqa: SIM115 - would prove code execution
        return x

    inp = keras.Input((None, None, 1))
    out = keras.layers.Lambda(evil)(inp)
    model = keras.Model(inp, out)
    sentinel.unlink(missing_ok=True)  # building the graph traced it once
    path = tmp_path / "evil.keras"
    model.save(path)
    # disguise it as one of ours
    meta = {
        "format": "napari-unet-model",
        "format_version": 1,
        "architecture": UNetConfig(depth=1, base_filters=2).to_dict(),
        "normalization": {"method": "percentile", "low": 1, "high": 99.8},
    }
    with zipfile.ZipFile(path, "a") as z:
        z.writestr("napari_unet.json", json.dumps(meta))
    with pytest.raises(ModelFileError, match="Lambda"):
        UNet.load(path)
    assert not sentinel.exists()


def test_saving_is_atomic_and_checks_the_path(tiny_net, tmp_path):
    with pytest.raises(ModelFileError, match=".keras"):
        tiny_net.save(tmp_path / "model.h5")
    with pytest.raises(ModelFileError, match="does not exist"):
        tiny_net.save(tmp_path / "missing" / "model.keras")
    target = tmp_path / "model.keras"
    target.write_bytes(b"previous model")

    class Boom(Exception):
        pass

    keras_model = tiny_net.keras_model
    original = type(keras_model).save

    def failing_save(self, *a, **k):
        raise Boom

    type(keras_model).save = failing_save
    try:
        with pytest.raises(Boom):
            tiny_net.save(target)
    finally:
        type(keras_model).save = original
    assert target.read_bytes() == b"previous model"  # the old file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras"]
