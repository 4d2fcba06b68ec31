"""Training throughput, measured side by side in one run.

* our whole training loop (patch sampling from the sample image, augmentation with elastic
  deformation, multi-hot targets, masked Dice + cross-entropy, progress callbacks, the
  tf.data prefetching pipeline) — ``UNet.train``;
* a plain ``model.fit`` on pre-made arrays with the same network, patch and batch size
  (categorical cross-entropy, no callbacks);
* this machine's fp32 matrix-multiply ceiling (a large ``tf.matmul``), to express both
  as a fraction of the hardware: FLOPs of the convolutions (3× the forward pass for
  forward + backward) per second over matmul FLOPs per second.

Rounds alternate the two loops so that drift on a noisy machine hits both alike.

    python benchmarks/training_throughput.py --rounds 3 --steps 30
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time

import numpy as np
from common import ROOT, best_seconds, load_sample, second_epoch_stamps

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def conv_flops(model, patch: int, depth: int) -> float:
    """Forward FLOPs of the convolutions of a napari-unet U-Net for one patch."""
    total = 0.0
    for layer in model.layers:
        kind = type(layer).__name__
        if kind not in ("Conv2D", "Conv2DTranspose"):
            continue
        k = layer.kernel.shape
        name = layer.name
        m = re.match(r"(down|up)(\d+)_", name)
        if m:
            size = patch // 2 ** int(m.group(2))
        elif name.startswith("bottleneck"):
            size = patch // 2**depth
        else:  # the 1×1 output convolution
            size = patch
        total += 2.0 * size * size * k[0] * k[1] * k[2] * k[3]
    return total


def matmul_ceiling(n: int = 4096, reps: int = 10, dtype: str = "float32") -> float:
    """Best FLOP/s of an ``n``×``n`` matrix product in ``dtype`` (the hardware ceiling)."""
    import tensorflow as tf

    a = tf.cast(tf.random.normal((n, n)), dtype)
    b = tf.cast(tf.random.normal((n, n)), dtype)

    @tf.function(jit_compile=False)
    def mm(a, b):
        return tf.matmul(a, b)

    for _ in range(3):
        mm(a, b).numpy()
    return 2.0 * n**3 / best_seconds(lambda: mm(a, b).numpy(), reps)


def time_ours(net, image, mask, steps, patch, batch) -> float:
    """Seconds per step of UNet.train, after its first (tracing) epoch."""
    second = second_epoch_stamps(net, image, mask, steps, patch, batch)
    return (second[-1] - second[0]) / (len(second) - 1)


def time_plain(model, xs, ys, steps, batch) -> float:
    import keras

    stamps = []

    class Stamp(keras.callbacks.Callback):
        def on_train_batch_end(self, b, logs=None):
            stamps.append(time.perf_counter())

    model.fit(
        xs,
        ys,
        batch_size=batch,
        epochs=2,
        steps_per_epoch=steps,
        verbose=0,
        callbacks=[Stamp()],
        shuffle=False,
    )
    second = stamps[steps:]
    return (second[-1] - second[0]) / (len(second) - 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--patch", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    args = ap.parse_args()
    import keras

    from napari_unet.core import UNet, UNetConfig
    from napari_unet.core.network.architecture import build_unet

    image, mask = load_sample()
    cfg = UNetConfig()
    net = UNet.new(cfg, seed=0)
    plain = build_unet(cfg)
    plain.compile(keras.optimizers.Adam(1e-3), "categorical_crossentropy")
    rng = np.random.default_rng(0)
    n = args.batch * args.steps
    xs = rng.random((n, args.patch, args.patch, 1), dtype=np.float32)
    ys = np.eye(cfg.n_outputs, dtype=np.float32)[
        rng.integers(cfg.n_outputs, size=(n, args.patch, args.patch))
    ]

    flops_step = 3.0 * conv_flops(plain, args.patch, cfg.depth) * args.batch
    ceiling = matmul_ceiling()
    ours, base = [], []
    for r in range(args.rounds):
        ours.append(time_ours(net, image, mask, args.steps, args.patch, args.batch))
        base.append(time_plain(plain, xs, ys, args.steps, args.batch))
        print(
            f"round {r + 1}: ours {ours[-1] * 1e3:.0f} ms/step, plain fit {base[-1] * 1e3:.0f} ms/step",
            flush=True,
        )
    t_ours, t_base = float(np.median(ours)), float(np.median(base))
    ceiling_after = matmul_ceiling()
    ceiling = max(ceiling, ceiling_after)
    res = {
        "patch": args.patch,
        "batch": args.batch,
        "ms_per_step_ours": round(t_ours * 1e3, 1),
        "ms_per_step_plain_fit": round(t_base * 1e3, 1),
        "ratio_ours_vs_plain_fit": round(t_base / t_ours, 3),
        "matmul_gflops": round(ceiling / 1e9, 1),
        "train_gflops_ours": round(flops_step / t_ours / 1e9, 1),
        "train_gflops_plain_fit": round(flops_step / t_base / 1e9, 1),
        "fraction_of_matmul_ours": round(flops_step / t_ours / ceiling, 3),
        "fraction_of_matmul_plain_fit": round(flops_step / t_base / ceiling, 3),
        "patches_per_s_ours": round(args.batch / t_ours, 1),
    }
    print(json.dumps(res, indent=1))
    print(
        f"\nour training loop runs at {res['ratio_ours_vs_plain_fit']:.2f}× the speed of a plain "
        f"model.fit on pre-made arrays (goal ≥ 0.95)"
    )
    print(
        f"it reaches {100 * res['fraction_of_matmul_ours']:.0f} % of this machine's fp32 matmul ceiling "
        f"({res['matmul_gflops']:.0f} GFLOP/s); the plain fit reaches "
        f"{100 * res['fraction_of_matmul_plain_fit']:.0f} %"
    )
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "training_throughput.json").write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
