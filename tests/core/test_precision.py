"""Precision chosen by the hardware, the fused compute network, and bfloat16 against
float32 on CPUs with bfloat16 matrix units."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from helpers import make_blobs, seeded

from napari_unet.core import hardware
from napari_unet.core.config import UNetConfig

AMX_FLAGS = {"avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "amx_int8"}
BF16_FLAGS = {"avx512f", "avx512_bf16"}
PLAIN_FLAGS = {"avx2", "avx512f"}


def test_bfloat16_units_come_from_the_cpu_flags_capped_like_onednn(monkeypatch):
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    assert hardware.cpu_bfloat16_units(AMX_FLAGS) == "amx"
    assert hardware.cpu_bfloat16_units(BF16_FLAGS) == "avx512_bf16"
    assert hardware.cpu_bfloat16_units(PLAIN_FLAGS) is None
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")
    assert hardware.cpu_bfloat16_units(AMX_FLAGS) == "avx512_bf16"
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert hardware.cpu_bfloat16_units(AMX_FLAGS) is None
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_AMX")
    assert hardware.cpu_bfloat16_units(AMX_FLAGS) == "amx"
    cpuinfo = "processor : 0\nflags\t\t: fpu sse avx512_bf16 amx_bf16 amx_tile\n"
    assert hardware._cpu_flags(cpuinfo) >= {"amx_bf16", "amx_tile"}


def test_automatic_precision_per_hardware():
    assert hardware.automatic_policy(gpu=True, bf16_units=None, onednn=True) == "mixed_float16"
    assert hardware.automatic_policy(False, "amx", onednn=True) == "mixed_bfloat16"
    # without oneDNN bfloat16 runs on slow generic kernels
    assert hardware.automatic_policy(False, "amx", onednn=False) == "float32"
    # AVX512-BF16 alone: not enough to win (benchmarks/precision.py)
    assert hardware.automatic_policy(False, "avx512_bf16", onednn=True) == "float32"
    assert hardware.automatic_policy(False, None, onednn=True) == "float32"


@pytest.mark.parametrize(
    "value,policy",
    [
        ("float32", "float32"),
        ("FP32", "float32"),
        ("bfloat16", "mixed_bfloat16"),
        ("bf16", "mixed_bfloat16"),
        ("float16", "mixed_float16"),
    ],
)
def test_the_environment_forces_a_precision(monkeypatch, value, policy):
    monkeypatch.setenv("NAPARI_UNET_PRECISION", value)
    assert hardware.compute_dtype_policy() == policy


def test_without_an_override_the_machine_decides(monkeypatch):
    monkeypatch.delenv("NAPARI_UNET_PRECISION", raising=False)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    expected = hardware.automatic_policy(
        hardware.has_gpu(), hardware.cpu_bfloat16_units(), hardware.onednn_enabled()
    )
    assert hardware.compute_dtype_policy() == expected
    if not hardware.has_gpu() and hardware.cpu_bfloat16_units() == "amx":
        assert expected == "mixed_bfloat16"


def _twins(config, policy="float32"):
    from napari_unet.core.network.architecture import build_unet, initialise_weights

    plain = build_unet(config, dtype_policy="float32")
    initialise_weights(plain, 3)
    fused = build_unet(config, dtype_policy=policy, fused=True)
    fused.set_weights(plain.get_weights())
    return plain, fused


@pytest.mark.parametrize("padding", ["same", "valid"])
def test_the_fused_network_computes_what_the_plain_one_does(padding):
    """Fused batch norm, the 1×1 + depth_to_space up-convolution and the norm folded into
    the convolution when predicting: same weights, same results (float32)."""
    cfg = UNetConfig(depth=2, base_filters=4, padding=padding)
    size = 64 if padding == "same" else 92
    plain, fused = _twins(cfg)
    types = {type(layer).__name__ for layer in fused.layers}
    assert {"FusedBatchNormalization", "UpConvolution", "FoldingConv2D", "ScoresConv2D"} <= types
    rng = np.random.default_rng(0)
    x = rng.random((2, size, size, 1), dtype=np.float32)
    # make the moving statistics non-trivial, identically in both
    for _ in range(2):
        a = plain(x, training=True).numpy()
        b = fused(x, training=True).numpy()
        np.testing.assert_allclose(a, b, atol=1e-4)
    for u, v in zip(plain.get_weights(), fused.get_weights(), strict=True):
        np.testing.assert_allclose(u, v, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        plain(x, training=False).numpy(), fused(x, training=False).numpy(), atol=1e-5
    )


def test_model_files_hold_plain_float32_keras_layers(tmp_path, monkeypatch):
    from napari_unet.core import UNet

    monkeypatch.setenv("NAPARI_UNET_PRECISION", "bfloat16")
    net = UNet.new(UNetConfig(depth=1, base_filters=4), seed=0)
    assert net.keras_model.get_layer("down0_conv2").compute_dtype == "float32"  # reads the image
    assert net.keras_model.get_layer("bottleneck_conv2").compute_dtype == "bfloat16"
    assert all(w.dtype == "float32" for w in net.keras_model.weights)
    path = net.save(tmp_path / "m.keras")
    with zipfile.ZipFile(path) as z:
        config = json.loads(z.read("config.json"))
    text = json.dumps(config)
    assert "Fused" not in text and "UpConvolution" not in text and "Folding" not in text
    assert "bfloat16" not in text
    monkeypatch.setenv("NAPARI_UNET_PRECISION", "float32")
    back = UNet.load(path)
    for u, v in zip(net.keras_model.get_weights(), back.keras_model.get_weights(), strict=True):
        np.testing.assert_array_equal(u, v)


@pytest.mark.learned
def test_a_bfloat16_training_learns_and_keeps_float32_weights(monkeypatch, margin):
    from napari_unet.core import TrainConfig, TrainingPair, UNet

    monkeypatch.setenv("NAPARI_UNET_PRECISION", "bfloat16")
    image, mask = make_blobs(96, 8, seed=seeded(2))
    net = UNet.new(UNetConfig(depth=2, base_filters=8), seed=seeded(0))
    cfg = TrainConfig(
        epochs=3, steps_per_epoch=8, patch_size=64, batch_size=4, seed=seeded(0), val_fraction=0.2
    )
    result = net.train([TrainingPair(image, mask=mask)], cfg)
    loss = result.history["loss"]
    margin("loss of the first epoch / loss of the last", loss[0] / loss[-1], 1.0, loss)
    assert all(
        np.isfinite(w).all() and w.dtype == np.float32 for w in net.keras_model.get_weights()
    )


def _bf16_hardware_reason() -> str | None:
    if hardware.has_gpu():
        return "a GPU computes in float16 here; this compares bfloat16 on a CPU"
    if hardware.cpu_bfloat16_units() != "amx":
        return "this CPU has no AMX-BF16 units: bfloat16 would run on emulated kernels"
    if not hardware.onednn_enabled():
        return "TensorFlow's oneDNN kernels are off (TF_ENABLE_ONEDNN_OPTS=0)"
    return None


def test_bfloat16_prediction_agrees_with_float32(monkeypatch, sample_image):
    """The bundled model on the sample image: probabilities within 1e-2 on 99.9 % of the
    values (the largest differences, a few pixels on object borders, stay below 3e-2),
    the foreground the same on 99.9 % of the pixels, and the same objects (IoU ≥ 0.5)
    but for one merge or split. A split on the edge of its threshold may fall either
    way: on a Xeon with AMX, two touching nuclei that float32 parts stay one in
    bfloat16, which renumbers every object after them, so ids are not compared pixel
    by pixel."""
    from napari_unet.core import UNet
    from napari_unet.core.metrics import iou_matrix, match_counts

    reason = _bf16_hardware_reason()  # here, not at collection: that would load TensorFlow
    if reason is not None:
        pytest.skip(reason)

    out = {}
    for precision in ("float32", "bfloat16"):
        monkeypatch.setenv("NAPARI_UNET_PRECISION", precision)
        net = UNet.default()
        assert net.keras_model.get_layer("down1_conv1").compute_dtype == precision
        out[precision] = net.predict(sample_image, diameter=None, return_scores=True)
    a, b = out["float32"], out["bfloat16"]
    diff = np.abs(a.scores - b.scores)
    assert np.quantile(diff, 0.999) <= 1e-2
    assert diff.max() <= 3e-2
    assert ((a.labels > 0) == (b.labels > 0)).mean() >= 0.999
    tp, fp, fn = match_counts(iou_matrix(b.labels, a.labels)[0], 0.5)
    assert a.labels.max() >= 100
    # one merge costs a miss, or two and a false object where it matches neither part
    assert fp + fn <= 3, (tp, fp, fn)


def test_the_fused_adam_updates_like_keras_adam():
    """One ``ResourceApplyAdam`` per variable: the same weights and optimizer state as
    Keras' own Adam after a few compiled steps (and the Keras path for AMSGrad)."""
    from napari_unet.core import import_tensorflow

    tf = import_tensorflow()
    import keras

    from napari_unet.core.network.architecture import build_unet, initialise_weights
    from napari_unet.core.network.fused_kernels import FusedAdam

    cfg = UNetConfig(depth=1, base_filters=4)
    rng = np.random.default_rng(1)
    x = rng.random((2, 16, 16, 1), dtype=np.float32)
    y = rng.random((2, 16, 16, cfg.n_outputs), dtype=np.float32)
    runs = {}
    for name, opt in (
        ("keras", keras.optimizers.Adam(3e-3)),
        ("fused", FusedAdam(3e-3)),
        ("amsgrad", FusedAdam(3e-3, amsgrad=True)),
        ("keras-amsgrad", keras.optimizers.Adam(3e-3, amsgrad=True)),
    ):
        model = build_unet(cfg, dtype_policy="float32", fused=True)
        initialise_weights(model, 5)
        start = model.get_weights()
        opt.build(model.trainable_variables)

        @tf.function(autograph=False)
        def step(x, y, model=model, opt=opt):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean((model(x, training=True) - y) ** 2)
            grads = tape.gradient(loss, model.trainable_variables)
            opt.apply_gradients(zip(grads, model.trainable_variables))
            return loss

        for _ in range(4):
            step(x, y)
        assert max(np.abs(u - v).max() for u, v in zip(start, model.get_weights())) > 1e-3
        runs[name] = (model.get_weights(), [v.numpy() for v in opt.variables])
    for a, b in (("keras", "fused"), ("keras-amsgrad", "amsgrad")):
        wa, sa = runs[a]
        wb, sb = runs[b]
        for u, v in zip(wa + sa, wb + sb, strict=True):
            np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("channels", [3, 5])
def test_the_elementwise_softmax_is_tensorflows_softmax(channels):
    """Forward and gradient of :func:`channel_softmax` equal ``tf.nn.softmax``'s, also
    for large logits (shifted by the maximum: no overflow)."""
    from napari_unet.core import import_tensorflow

    tf = import_tensorflow()
    from napari_unet.core.network.fused_kernels import channel_softmax

    rng = np.random.default_rng(4)
    z = tf.constant(rng.normal(0, 4, (2, 9, 7, channels)).astype(np.float32))
    z = tf.concat([z[:1], z[1:] + 200.0], axis=0)
    w = tf.constant(rng.random((2, 9, 7, channels)).astype(np.float32))
    out = {}
    for name, fn in (("tf", tf.nn.softmax), ("elementwise", channel_softmax)):
        with tf.GradientTape() as tape:
            tape.watch(z)
            p = fn(z)
            loss = tf.reduce_sum(w * tf.math.log(p + 1e-7))
        out[name] = (p.numpy(), tape.gradient(loss, z).numpy())
    assert np.isfinite(out["elementwise"][0]).all()
    np.testing.assert_allclose(out["tf"][0], out["elementwise"][0], atol=1e-6)
    np.testing.assert_allclose(out["tf"][1], out["elementwise"][1], rtol=1e-4, atol=1e-5)
