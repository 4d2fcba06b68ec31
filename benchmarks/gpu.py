"""Accelerator benchmark: images per second at 256² and the share of the device's
matrix-multiply ceiling reached, for training and for prediction.

On a GPU the network runs as napari-unet runs it there (mixed float16, XLA); the ceiling
is a large float16 matmul. On a CPU-only machine the same script runs in float32 against
a float32 matmul, so it is also a smoke test of the GPU code path's plumbing.

    python benchmarks/gpu.py --steps 50 --batch 16
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
from common import ROOT, load_sample
from training_throughput import conv_flops, matmul_ceiling, time_ours

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--size", type=int, default=256)
    args = ap.parse_args()
    import tensorflow as tf

    from napari_unet.core import UNet, UNetConfig
    from napari_unet.core.hardware import compute_dtype_policy, has_gpu
    from napari_unet.core.network.architecture import build_unet

    gpu = has_gpu()
    policy = compute_dtype_policy()
    device = tf.config.list_physical_devices("GPU")[0].name if gpu else "CPU"
    if gpu:
        details = tf.config.experimental.get_device_details(
            tf.config.list_physical_devices("GPU")[0]
        )
        device = details.get("device_name", device)
    ceiling = matmul_ceiling(8192 if gpu else 2048, reps=20, dtype="float16" if gpu else "float32")

    image, mask = load_sample()
    net = UNet.new(UNetConfig(), seed=0)
    t_step = time_ours(net, image, mask, args.steps, args.size, args.batch)
    fwd = conv_flops(build_unet(UNetConfig(), dtype_policy="float32"), args.size, 4)
    train_ips = args.batch / t_step

    infer = net.inference_function()
    x = np.random.default_rng(0).random((args.batch, args.size, args.size, 1)).astype(np.float32)
    for _ in range(3):
        infer(x)
    reps = max(5, args.steps // 2)
    t0 = time.perf_counter()
    for _ in range(reps):
        infer(x)
    t_inf = (time.perf_counter() - t0) / reps
    infer_ips = args.batch / t_inf

    res = {
        "device": device,
        "policy": policy,
        "xla_training": bool(net.keras_model.jit_compile),
        "size": args.size,
        "batch": args.batch,
        "train_images_per_s": round(train_ips, 1),
        "predict_images_per_s": round(infer_ips, 1),
        "matmul_tflops": round(ceiling / 1e12, 2),
        "train_fraction_of_matmul": round(3 * fwd * train_ips / ceiling, 3),
        "predict_fraction_of_matmul": round(fwd * infer_ips / ceiling, 3),
    }
    print(json.dumps(res, indent=1))
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"gpu_{'gpu' if gpu else 'cpu'}.json").write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
