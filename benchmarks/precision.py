"""float32 against the precision this machine gets, side by side in one run.

On the machine it runs on, with float32 and the chosen precision measured in alternating
rounds (drift on a busy machine hits both alike):

1. the bfloat16 convolution ceiling: raw ``tf.nn.conv2d`` at the shapes of every 3×3
   convolution of the default network (training batch, and prediction tiles), float32
   and bfloat16;
2. training: steps/s of ``UNet.train`` (the whole loop: patch sampling, augmentation,
   loss, callbacks) on the sample image, and of the bare compiled step on fixed arrays
   (with its process CPU time per step, which a shared machine disturbs far less than
   the wall clock); the time the batch producer needs per batch;
3. prediction: Mpx/s of ``UNet.predict`` on a 2048² mosaic of the sample;
4. GFLOP/s each reaches (convolutions only: 3× the forward FLOPs for a training step)
   and its share of the bfloat16 ceiling of step 1;
5. agreement of the predictions: largest probability difference and the share of
   identical labels on the sample and (when ``../shared/data/cho3d`` is there) on CHO
   planes;
6. with ``--parity``: the same training in both precisions (fine-tuning the default
   model on three quadrants of the sample, two seeds; and on CHO planes): validation
   Dice and instance F1 on held-out data.

On a CPU without bfloat16 matrix units the script says so; the comparison still runs
(bfloat16 then computes on emulated kernels) so the figures show why float32 stays.

    python benchmarks/precision.py                  # speed + agreement
    python benchmarks/precision.py --parity         # + accuracy parity (minutes)
    python benchmarks/precision.py --only-train     # training figures only
    python benchmarks/precision.py --only-predict   # only 3., split into network and the rest
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
from common import ROOT, best_seconds, load_sample, markdown_table, mosaic, second_epoch_stamps

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

CHO = ROOT.parent / "shared" / "data" / "cho3d"
POLICY_NAME = {"float32": "float32", "mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def using(precision: str):
    """Set ``NAPARI_UNET_PRECISION`` for the networks built next."""
    os.environ["NAPARI_UNET_PRECISION"] = precision


# ------------------------------------------------------------------ 1. ceiling
def conv_shapes(config, patch: int, batch: int) -> list[tuple]:
    """``(batch, size, cin, cout)`` of every 3×3 convolution of a same-padding U-Net."""
    shapes = []
    f = config.base_filters
    cin = config.input_channels
    for level in range(config.depth):
        s = patch // 2**level
        shapes += [(batch, s, cin, f * 2**level), (batch, s, f * 2**level, f * 2**level)]
        cin = f * 2**level
    s = patch // 2**config.depth
    top = f * 2**config.depth
    shapes += [(batch, s, cin, top), (batch, s, top, top)]
    for level in reversed(range(config.depth)):
        s = patch // 2**level
        c = f * 2**level
        shapes += [(batch, s, 2 * c, c), (batch, s, c, c)]
    return shapes


def conv_ceiling(shapes, dtype, reps: int = 3) -> float:
    """FLOP/s of raw ``tf.nn.conv2d`` over the given layer shapes (best of ``reps``)."""
    import tensorflow as tf

    total_flops, best_total = 0.0, 0.0
    for b, s, cin, cout in shapes:
        x = tf.cast(tf.random.normal((b, s, s, cin)), dtype)
        k = tf.cast(tf.random.normal((3, 3, cin, cout)) * 0.1, dtype)

        @tf.function(jit_compile=False, autograph=False)
        def conv(x, k):
            return tf.nn.conv2d(x, k, 1, "SAME")

        conv(x, k).numpy()
        best = best_seconds(lambda: conv(x, k).numpy(), reps)  # noqa: B023 - called here
        total_flops += 2.0 * b * s * s * 9 * cin * cout
        best_total += best
    return total_flops / best_total


# ------------------------------------------------------------------ 2. training
def train_rate(net, image, mask, steps: int, patch: int, batch: int) -> tuple[float, float]:
    """Steps/s of ``UNet.train`` after its first (tracing) epoch, and the batch
    producer's seconds per batch measured alongside."""
    from napari_unet.core.training import loop as training_mod

    produce: list[float] = []
    original = training_mod.PatchSampler.batch

    def timed_batch(self, n):
        t0 = time.thread_time()
        out = original(self, n)
        produce.append(time.thread_time() - t0)
        return out

    training_mod.PatchSampler.batch = timed_batch
    try:
        second = second_epoch_stamps(
            net, image, mask, steps, patch, batch, tune_postprocessing=False
        )
    finally:
        training_mod.PatchSampler.batch = original
    return (len(second) - 1) / (second[-1] - second[0]), float(np.median(produce))


def bare_step_rate(trainer, x, y, steps: int) -> tuple[float, float]:
    """Steps/s of the compiled step on fixed arrays, and the process CPU seconds per
    step (all threads): on a shared machine the CPU time scatters far less than the
    wall-clock time, which waits for the other jobs."""
    trainer.step(x, y).numpy()
    c0, t0 = time.process_time(), time.perf_counter()
    for _ in range(steps):
        trainer.step(x, y).numpy()
    return steps / (time.perf_counter() - t0), (time.process_time() - c0) / steps


# ------------------------------------------------------------------ 3. prediction
def predict_seconds(net, img) -> float:
    t0 = time.perf_counter()
    net.predict(img, diameter=net.object_diameter)
    return time.perf_counter() - t0


def same_instances(a: np.ndarray, b: np.ndarray) -> float:
    """Share of pixels labelled alike once each instance of ``b`` takes the id of the
    instance of ``a`` it overlaps most (ids are numbered in scan order, so one seed
    found a row earlier renumbers every later object without changing any)."""
    pairs, counts = np.unique(np.stack([b.ravel(), a.ravel()]), axis=1, return_counts=True)
    best: dict[int, tuple[int, int]] = {}
    for (lb, la), c in zip(pairs.T, counts):
        if lb and c > best.get(int(lb), (0, -1))[1]:
            best[int(lb)] = (int(la), int(c))
    lut = np.zeros(int(b.max()) + 1, a.dtype)
    for lb, (la, _) in best.items():
        lut[lb] = la
    return float((lut[b] == a).mean())


def agreement(a, b) -> dict:
    d = np.abs(a.scores - b.scores)
    return {
        "same_instances": round(same_instances(a.labels, b.labels), 6),
        "max_prob_diff": round(float(d.max()), 4),
        "p9999_prob_diff": round(float(np.quantile(d, 0.9999)), 4),
        "identical_labels": round(float((a.labels == b.labels).mean()), 6),
        "identical_foreground": round(float(((a.labels > 0) == (b.labels > 0)).mean()), 6),
        "instances": [int(a.labels.max()), int(b.labels.max())],
    }


def timed_network(net) -> list[float]:
    """Make ``net``'s tile inference record its seconds in the returned list."""
    spent: list[float] = []
    make = type(net).inference_function

    def inference_function():
        infer = make(net)

        def timed(batch):
            t0 = time.perf_counter()
            out = np.asarray(infer(batch))
            spent.append(time.perf_counter() - t0)
            return out

        return timed

    net.inference_function = inference_function
    return spent


def predict_only(precisions, size: int, rounds: int) -> dict:
    """``UNet.predict`` on a ``size``² mosaic of the sample in alternating rounds:
    Mpx/s, and its seconds split into the network (the tiles' inference) and the rest
    (normalisation, stitching, instance labels)."""
    from napari_unet.core import UNet

    image, _ = load_sample()
    big = mosaic(image, size // image.shape[0])
    nets, spent = {}, {}
    for p in precisions:
        using(p)
        nets[p] = UNet.default()
        spent[p] = timed_network(nets[p])
        nets[p].predict(image)  # trace
    rate, network, rest = ({p: [] for p in precisions} for _ in range(3))
    for r in range(rounds):
        for p in precisions:
            using(p)
            spent[p].clear()
            seconds = predict_seconds(nets[p], big)
            rate[p].append(size**2 / seconds / 1e6)
            network[p].append(sum(spent[p]))
            rest[p].append(seconds - sum(spent[p]))
        print(
            f"round {r + 1}: "
            + "; ".join(
                f"{p}: {rate[p][-1]:.3f} Mpx/s (network {network[p][-1]:.2f} s, "
                f"rest {rest[p][-1]:.2f} s)"
                for p in precisions
            )
            + f"; ratio {rate[precisions[1]][-1] / rate[precisions[0]][-1]:.2f}×",
            flush=True,
        )
    med = {
        k: {p: float(np.median(v[p])) for p in precisions}
        for k, v in (("predict", rate), ("network", network), ("rest", rest))
    }
    a, b = precisions
    rows = [
        [p, f"{med['predict'][p]:.3f}", f"{med['network'][p]:.2f}", f"{med['rest'][p]:.2f}"]
        for p in precisions
    ]
    rows.append(
        [
            f"**{b} / float32**",
            f"**{med['predict'][b] / med['predict'][a]:.2f}×** ("
            + ", ".join(f"{y / x:.2f}" for x, y in zip(rate[a], rate[b]))
            + ")",
            f"{med['network'][a] / med['network'][b]:.2f}×",
            "",
        ]
    )
    print()
    print(
        markdown_table(
            ["precision", "UNet.predict Mpx/s", "network s", "rest s (normalise, stitch, labels)"],
            rows,
        )
    )
    return {
        "size": size,
        "rounds": {"predict": rate, "network": network, "rest": rest},
        "median": med,
    }


# ------------------------------------------------------------------ 6. parity
def parity_config(epochs: int, seed: int):
    """The training of every parity run: epochs of 20 steps, batch 8 of 128² patches,
    no early stop."""
    from napari_unet.core import TrainConfig

    return TrainConfig(
        epochs=epochs,
        steps_per_epoch=20,
        batch_size=8,
        patch_size=128,
        seed=seed,
        early_stopping_patience=1000,
    )


def parity(chosen: str, seeds=(0, 1), epochs: int = 6) -> dict:
    """Train a new default network from scratch in both precisions on the same data
    and seeds; validation Dice (the training's own) and instance F1 on held-out
    images."""
    from napari_unet.core import UNet, UNetConfig
    from napari_unet.core.metrics import evaluate

    sets = _parity_sets()
    out: dict = {}
    for name, (pairs, tests) in sets.items():
        for precision in ("float32", chosen):
            rows = []
            for seed in seeds:
                using(precision)
                net = UNet.new(UNetConfig(), seed=seed)
                res = net.train(pairs, parity_config(epochs, seed))
                dice = res.history.get("val_dice_coefficient", [float("nan")])
                f1s, dices = [], []
                for img, gt in tests:
                    m = evaluate(net.predict(img).labels, gt)
                    f1s.append(m["f1"])
                    dices.append(m["pixel_dice"])
                rows.append(
                    {
                        "seed": seed,
                        "val_dice": round(float(max(dice)), 4),
                        "test_f1": round(float(np.mean(f1s)), 4),
                        "test_pixel_dice": round(float(np.mean(dices)), 4),
                    }
                )
                print(f"parity {name} {precision} seed {seed}: {rows[-1]}", flush=True)
            out[f"{name}/{precision}"] = rows
    return out


def _parity_sets() -> dict:
    """Training pairs and held-out test images: the sample (three quadrants / the held-out
    one) and, when present, CHO (frames 0, 4, 8 at z = 2 / frames 12..18 at z = 1..3)."""
    from common import HELD_OUT, QUADRANTS

    from napari_unet.core import TrainingPair

    image, mask = load_sample()
    train_q = [q for name, q in QUADRANTS.items() if name != HELD_OUT]
    sets = {
        "sample": (
            [TrainingPair(image[q], mask=mask[q], name="q") for q in train_q],
            [(image[QUADRANTS[HELD_OUT]], mask[QUADRANTS[HELD_OUT]])],
        )
    }
    if CHO.exists():
        import tifffile

        ci = tifffile.imread(CHO / "cho_img.tif")
        cl = tifffile.imread(CHO / "cho_labels.tif")
        sets["cho"] = (
            [TrainingPair(ci[t, 2], mask=cl[t, 2], name=f"t{t}") for t in (0, 4, 8)],
            [(ci[t, z], cl[t, z]) for t in range(12, 20, 2) for z in (1, 2, 3)],
        )
    return sets


def finetune_parity(chosen: str, seeds=(0, 1, 2, 3), epochs: int = 5) -> dict:
    """What a user does: fine-tune the bundled model (trained on synthetic images and
    three sample quadrants; the test images, the held-out quadrant and CHO, it never
    saw) in both precisions, same data and seeds; per precision the
    mean and spread over seeds of the validation Dice and of instance F1 / pixel Dice
    on the held-out images, and the gap between the precisions' means with its
    standard error (the seeds' spread sets the noise)."""
    from napari_unet.core import UNet
    from napari_unet.core.metrics import evaluate

    out: dict = {}
    for name, (pairs, tests) in _parity_sets().items():
        per: dict = {}
        for seed in seeds:
            for precision in ("float32", chosen):  # alternating: drift hits both alike
                using(precision)
                net = UNet.default()
                res = net.train(pairs, parity_config(epochs, seed))
                dice = res.history.get("val_dice_coefficient", [float("nan")])
                m = [evaluate(net.predict(img).labels, gt) for img, gt in tests]
                row = {
                    "seed": seed,
                    "val_dice": round(float(max(dice)), 4),
                    "test_f1": round(float(np.mean([x["f1"] for x in m])), 4),
                    "test_pixel_dice": round(float(np.mean([x["pixel_dice"] for x in m])), 4),
                }
                per.setdefault(precision, []).append(row)
                print(f"fine-tune parity {name} {precision}: {row}", flush=True)
        summary = {}
        for key in ("val_dice", "test_f1", "test_pixel_dice"):
            a = np.array([r[key] for r in per["float32"]])
            b = np.array([r[key] for r in per[chosen]])
            se = float(np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b)))
            summary[key] = {
                "float32": [round(float(a.mean()), 4), round(float(a.std(ddof=1)), 4)],
                chosen: [round(float(b.mean()), 4), round(float(b.std(ddof=1)), 4)],
                "gap": round(float(b.mean() - a.mean()), 4),
                "gap_se": round(se, 4),
            }
        out[name] = {"runs": per, "summary": summary}
        print(f"fine-tune parity {name}: {json.dumps(summary)}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--patch", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--predict-size", type=int, default=2048)
    ap.add_argument("--parity", action="store_true", help="also the accuracy parity runs")
    ap.add_argument("--only-parity", action="store_true", help="only the accuracy parity runs")
    ap.add_argument(
        "--finetune-parity",
        action="store_true",
        help="only the fine-tuning parity runs (bundled model, 4 seeds per precision)",
    )
    ap.add_argument(
        "--only-train",
        action="store_true",
        help="only the training figures (no prediction, no agreement)",
    )
    ap.add_argument(
        "--only-predict",
        action="store_true",
        help="only UNet.predict on the mosaic (alternating rounds), network and the rest apart",
    )
    ap.add_argument("--epochs", type=int, default=6, help="epochs (of 20 steps) per parity run")
    ap.add_argument(
        "--precision",
        default=None,
        help="compare float32 with this one instead of the automatic choice",
    )
    args = ap.parse_args()
    os.environ.pop("NAPARI_UNET_PRECISION", None)

    from napari_unet.core import UNet, import_tensorflow
    from napari_unet.core.hardware import (
        compute_dtype_policy,
        cpu_bfloat16_units,
        has_gpu,
        onednn_enabled,
    )

    tf = import_tensorflow()
    from training_throughput import conv_flops

    from napari_unet.core.config import UNetConfig
    from napari_unet.core.network.architecture import build_unet
    from napari_unet.core.training.loop import _Trainer

    auto = compute_dtype_policy()
    units = cpu_bfloat16_units()
    info = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "gpu": has_gpu(),
        "bfloat16_units": units,
        "onednn": onednn_enabled(),
        "automatic_precision": POLICY_NAME[auto],
        "tensorflow": tf.__version__,
    }
    print(json.dumps(info, indent=1), flush=True)
    if units is None and not info["gpu"]:
        print(
            "this CPU has no bfloat16 matrix units (no AMX-BF16, no AVX512-BF16): the "
            "default stays float32; bfloat16 below runs on emulated kernels",
            flush=True,
        )
    elif units == "avx512_bf16":
        print("this CPU has AVX512-BF16 but no AMX tiles: the default stays float32")
    chosen = args.precision or (POLICY_NAME[auto] if auto != "float32" else "bfloat16")
    precisions = ("float32", chosen)
    out = ROOT / "benchmarks" / "out"
    if args.finetune_parity:
        res = finetune_parity(chosen)
        out.mkdir(parents=True, exist_ok=True)
        (out / "precision_finetune_parity.json").write_text(json.dumps(res, indent=1))
        return
    if args.only_predict:
        res = predict_only(precisions, args.predict_size, args.rounds)
        res["machine"] = info
        out.mkdir(parents=True, exist_ok=True)
        (out / "precision_predict.json").write_text(json.dumps(res, indent=1))
        return
    if args.only_parity:
        res = parity(chosen, epochs=args.epochs)
        print(json.dumps(res, indent=1))
        out.mkdir(parents=True, exist_ok=True)
        (out / "precision_parity.json").write_text(json.dumps(res, indent=1))
        return

    cfg = UNetConfig()
    plain = build_unet(cfg, dtype_policy="float32")
    flops_fwd_px = conv_flops(plain, args.patch, cfg.depth) / args.patch**2
    flops_step = 3.0 * conv_flops(plain, args.patch, cfg.depth) * args.batch

    # 1. ceilings at the training shapes
    shapes = conv_shapes(cfg, args.patch, args.batch)
    ceiling = {}
    for p, dt in (
        ("float32", tf.float32),
        (chosen, tf.bfloat16 if chosen == "bfloat16" else tf.float16),
    ):
        ceiling[p] = conv_ceiling(shapes, dt)
    print(
        "raw conv2d 3×3 at the layer shapes: "
        + ", ".join(f"{p} {v / 1e9:.0f} GFLOP/s" for p, v in ceiling.items()),
        flush=True,
    )

    image, mask = load_sample()
    big = mosaic(image, args.predict_size // image.shape[0])
    nets, learners, trainers = {}, {}, {}
    rng = np.random.default_rng(0)
    xb = rng.random((args.batch, args.patch, args.patch, 1), dtype=np.float32)
    yb = np.zeros((args.batch, args.patch, args.patch, cfg.n_outputs), np.float32)
    yb[..., 0] = 1.0
    yb[:, 32:96, 32:96, 0], yb[:, 32:96, 32:96, 1] = 0.0, 1.0
    for p in precisions:
        using(p)
        nets[p] = UNet.default()  # predicts (never trained here)
        learners[p] = UNet.default()  # trains
        trainers[p] = _Trainer(nets[p].config, compute_dtype_policy())
        if not args.only_train:
            nets[p].predict(image)  # trace
    train, bare, bare_cpu, produce, pred = ({p: [] for p in precisions} for _ in range(5))
    for r in range(args.rounds):
        for p in precisions:
            using(p)
            rate, prod = train_rate(learners[p], image, mask, args.steps, args.patch, args.batch)
            train[p].append(rate)
            produce[p].append(prod)
            rate, cpu = bare_step_rate(trainers[p], xb, yb, args.steps)
            bare[p].append(rate)
            bare_cpu[p].append(cpu)
            if args.only_train:
                pred[p].append(float("nan"))
            else:
                pred[p].append(args.predict_size**2 / predict_seconds(nets[p], big) / 1e6)
        print(
            f"round {r + 1}: "
            + "; ".join(
                f"{p}: train {train[p][-1]:.2f} steps/s (bare step {bare[p][-1]:.2f}), "
                f"predict {pred[p][-1]:.3f} Mpx/s"
                for p in precisions
            )
            + f"; bfloat16/float32 train {train[chosen][-1] / train['float32'][-1]:.2f}×, "
            f"bare {bare[chosen][-1] / bare['float32'][-1]:.2f}×, "
            f"bare CPU time {bare_cpu['float32'][-1] / bare_cpu[chosen][-1]:.2f}×; "
            f"load {os.getloadavg()[0]:.1f}",
            flush=True,
        )
    # ceilings again, after: the best of both measurements
    for p, dt in (
        ("float32", tf.float32),
        (chosen, tf.bfloat16 if chosen == "bfloat16" else tf.float16),
    ):
        ceiling[p] = max(ceiling[p], conv_ceiling(shapes, dt))

    med = {
        k: {p: float(np.median(v[p])) for p in precisions}
        for k, v in (
            ("train", train),
            ("bare", bare),
            ("bare_cpu", bare_cpu),
            ("predict", pred),
            ("produce", produce),
        )
    }
    rows = []
    for p in precisions:
        tg = med["train"][p] * flops_step / 1e9
        pg = med["predict"][p] * 1e6 * flops_fwd_px / 1e9
        rows.append(
            [
                p,
                f"{med['train'][p]:.2f}",
                f"{med['bare'][p]:.2f}",
                f"{med['bare_cpu'][p] * 1e3:.0f} ms",
                f"{med['produce'][p] * 1e3:.0f} ms",
                f"{tg:.0f}",
                f"{100 * tg / ceiling[chosen] * 1e9:.0f} %",
                f"{med['predict'][p]:.3f}",
                f"{pg:.0f}",
                f"{100 * pg / ceiling[chosen] * 1e9:.0f} %",
                f"{ceiling[p] / 1e9:.0f}",
            ]
        )
    rows.append(
        [
            f"**{chosen} / float32**",
            f"**{med['train'][chosen] / med['train']['float32']:.2f}×**",
            f"{med['bare'][chosen] / med['bare']['float32']:.2f}×",
            f"{med['bare_cpu']['float32'] / med['bare_cpu'][chosen]:.2f}×",
            "",
            "",
            "",
            f"**{med['predict'][chosen] / med['predict']['float32']:.2f}×**",
            "",
            "",
            f"{ceiling[chosen] / ceiling['float32']:.2f}×",
        ]
    )
    header = [
        "precision",
        "UNet.train steps/s",
        "bare step/s",
        "bare step CPU time",
        "batch making (CPU)",
        "train GFLOP/s",
        f"share of {chosen} conv ceiling",
        "UNet.predict Mpx/s",
        "predict GFLOP/s",
        f"share of {chosen} conv ceiling",
        "raw conv2d GFLOP/s",
    ]
    print()
    print(markdown_table(header, rows))

    print(f"load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    result = {
        "machine": info,
        "patch": args.patch,
        "batch": args.batch,
        "rounds": {
            "train": train,
            "bare": bare,
            "bare_cpu": bare_cpu,
            "predict": pred,
            "produce": produce,
        },
        "median": med,
        "conv_ceiling_gflops": {p: v / 1e9 for p, v in ceiling.items()},
        "load_average": os.getloadavg(),
    }
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    if args.only_train:
        os.environ.pop("NAPARI_UNET_PRECISION", None)
        (out / "precision_train.json").write_text(json.dumps(result, indent=1))
        return

    # 5. agreement
    using("float32")
    tests = {"sample 512²": image}
    if CHO.exists():
        import tifffile

        cho = tifffile.imread(CHO / "cho_img.tif")
        for t in (0, 10, 19):
            tests[f"CHO t{t} z2"] = cho[t, 2]
    agree = {}
    for name, img in tests.items():
        a = nets["float32"].predict(img, return_scores=True)
        b = nets[chosen].predict(img, return_scores=True)
        agree[name] = agreement(a, b)
    print()
    print(
        markdown_table(
            [
                "image",
                "max |Δp|",
                "99.99th pct |Δp|",
                "identical labels",
                "same instances (ids matched)",
                "identical fg",
                "instances",
            ],
            [
                [
                    n,
                    a["max_prob_diff"],
                    a["p9999_prob_diff"],
                    f"{100 * a['identical_labels']:.3f} %",
                    f"{100 * a['same_instances']:.3f} %",
                    f"{100 * a['identical_foreground']:.3f} %",
                    "/".join(map(str, a["instances"])),
                ]
                for n, a in agree.items()
            ],
        )
    )
    result["agreement"] = agree
    if args.parity:
        result["parity"] = parity(chosen, epochs=args.epochs)
    os.environ.pop("NAPARI_UNET_PRECISION", None)
    (out / "precision.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
