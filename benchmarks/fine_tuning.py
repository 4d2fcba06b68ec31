"""How reliably does ONE annotated image improve the bundled model? Development series
for the fine-tuning recipe (issue 22 item 4), kept apart from the images the
benchmarks report.

Each series is one experiment (the same sample and instrument): its first image is
annotated, the next ``--scored`` are scored; with ``--annotate N`` each of its first N
images is annotated in turn and the others scored, and the series' figures are the means
(one annotated image decides much of a series' figure: see benchmarks/RESULTS.md,
"Touching objects forgotten after one image"). For each series the bundled model is
scored zero-shot, after fine-tuning on the annotated image's mask ("dense") and after
fine-tuning on scribbles of it (``common.scribbles``) and, with ``--kinds corrected``,
after the product's main loop (Segment, *Use prediction as annotation*, the
:data:`CORRECTED` worst objects corrected: :func:`corrected_copy`), as ``generalist.py`` fine-tunes
(the same steps, batch and seed), and the same again in each precision asked for
(``--precisions``; bfloat16 is what a CPU with AMX computes in by default). A recipe
that is reliable improves every series, and in every precision by about as much: a
figure that moves by 0.05 when only the rounding changes is a coin that fell one way.

Series (each skipped with a message when its data are absent):

* synthetic: ``--series`` per modality of ``scripts/synthetic_modalities.py``, seeds
  900 000 + 10 000·m + 1000·k (m the modality's index, k the series), where neither
  training (below 700 000), the development images (850 000–893 000) nor the benchmarks
  (1 000 000+) draw; rods in the phase look, as the benchmark's;
* ``cho``: CHO frame 0 plane z1 annotated (its silver labels), frames 1, 3, 5, 7 planes
  z1 and z2 scored (``generalist.py`` scores frames 10–19).

Prints one line per series and precision, then the means and how many series each
fine-tuning lowered.

    python benchmarks/fine_tuning.py [--sets rods he cho …] [--series 2] [--steps 120]
        [--kinds dense scribbles corrected] [--precisions float32 bfloat16] [--annotate 3]
        [--verdict] [--json OUT.json]

(35 min for every series in both precisions on a 2-core Xeon with AMX. Without AMX only
float32 runs unless asked: bfloat16 would be emulated, slowly.)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
from common import ROOT, finetune_config, scribbles

sys.path.insert(0, str(ROOT / "scripts"))
from synthetic_modalities import MODALITIES, synth_series  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
#: where these series' seeds start (see the module's docstring)
SERIES_SEEDS = 900_000
#: objects a person corrects in the copied prediction (kind "corrected")
CORRECTED = 10


def series(sets: set[str] | None, n: int, scored: int, annotate: int = 1) -> dict[str, list]:
    """``{name: [(annotated image, its mask, [(image, truth), …]), …]}``: one entry per
    image annotated in turn (``annotate``). A synthetic series is ``scored + 1`` fields;
    each of its first ``annotate`` fields is annotated once, the others then scored. CHO
    annotates plane z1 of frames 0, 2, 4, … and scores the same planes each time."""
    out = {}
    for m, modality in enumerate(MODALITIES):
        if sets and modality not in sets:
            continue
        pinned = {"look": "phase"} if modality == "rods" else {}
        for k in range(n):
            seed = SERIES_SEEDS + 10_000 * m + 1000 * k
            pool = synth_series(modality, scored + 1, 256, seed, **pinned)
            out[f"{modality} {seed}"] = [
                (*pool[a], [p for j, p in enumerate(pool) if j != a])
                for a in range(min(annotate, len(pool)))
            ]
    if not sets or "cho" in sets:
        cho = DATA / "cho3d"
        if (cho / "cho_img.tif").exists():
            import tifffile

            img = tifffile.imread(cho / "cho_img.tif")
            lab = tifffile.imread(cho / "cho_labels.tif")
            scored_planes = [(img[t, z], lab[t, z]) for t in (1, 3, 5, 7) for z in (1, 2)]
            frames = range(0, min(2 * annotate, img.shape[0]), 2)
            out["cho t0 z1"] = [(img[t, 1], lab[t, 1], scored_planes) for t in frames]
        else:
            print(f"cho: {cho} not found, skipped", flush=True)
    return out


def ruler_width(mask: np.ndarray) -> float:
    """The object width a person would type (Segment's *object diameter*): the median over
    the objects of the widest circle inside each (a round object's diameter, a rod's
    thickness), in whole pixels."""
    from scipy import ndimage as ndi

    from napari_unet.core.training.targets import instance_boundaries

    mask = np.asarray(mask)
    ids = np.unique(mask[mask > 0])
    # each object's own distance to its outline (touching objects kept apart by their rims)
    inside = ndi.distance_transform_edt((mask > 0) & ~instance_boundaries(mask)) + 1.0
    widest = ndi.maximum(inside, mask, ids)
    return float(round(2.0 * float(np.median(widest))))


def f1_on(net, pairs, diameter: float | str | None = "auto") -> tuple[float, list[float]]:
    """Mean F1 over ``pairs`` and the scale of each; a typed ``diameter`` the model
    refuses (out of its reach) scores 0 at scale 0, as a person would get no result."""
    from napari_unet.core import UserInputError, evaluate

    f1, scales = [], []
    for image, truth in pairs:
        try:
            p = net.predict(image, diameter=diameter)
        except UserInputError as e:
            print(f"  refused: {e}", flush=True)
            f1.append(0.0)
            scales.append(0.0)
            continue
        f1.append(float(evaluate(p.labels, truth)["f1"]))
        scales.append(float(p.scale))
    return float(np.mean(f1)), scales


def corrected_copy(net, image, mask, typed="auto", k: int = CORRECTED) -> tuple:
    """What a person brings to Train after Segment, *Use prediction as annotation* and a
    few corrections: ``net``'s prediction copied (object 2, background 1), then the ``k``
    worst disagreements with ``mask`` corrected as ``human_in_the_loop.py`` corrects them
    (a missed, merged or split object painted with a background ring; a false one erased);
    returns the annotation, the painted pixels and how many objects were corrected."""
    from human_in_the_loop import correct, disagreements

    from napari_unet.core import mask_to_annotation

    mask = np.asarray(mask)
    pred = np.asarray(net.predict(image, diameter=typed).labels)
    copied = mask_to_annotation(pred)
    ann = copied.copy()
    missed, false = disagreements(pred, mask)
    todo = [("truth", t) for t in missed] + [("pred", p) for p in false]
    correct(ann, pred, mask, todo[:k])
    # painted: what differs from the copy (as the Annotate widget tells Train)
    return ann, ann != copied, min(k, len(todo))


def print_verdicts(tallies: dict, kinds: list[str]) -> None:
    """How often Train's verdict (``tallies[rule][kind][effect, verdict]``) agreed with
    what the fine-tuning did on the other images (raised / level / lowered: F1 moved by
    more than 0.01 from zero-shot), for each rule: Train's, and the raw figures'
    (any figure moving by more than ``SAME_WITHIN``, Train's rule before the held-out
    objects were weighed)."""
    verdicts = ("better", "same", "worse", "untested")
    for rule, tally in tallies.items():
        for kind in kinds:
            print(f"{kind}, {rule}: verdict on the held-out annotation (rows: the other images)")
            print(f"  {'':8s} " + " ".join(f"{v:>9s}" for v in verdicts))
            for effect in ("raised", "level", "lowered"):
                counts = [tally[kind][effect, v] for v in verdicts]
                print(f"  {effect:8s} " + " ".join(f"{n:9d}" for n in counts))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sets", nargs="*", default=None, help=f"{' '.join(MODALITIES)} cho")
    ap.add_argument("--series", type=int, default=2, help="series per synthetic modality")
    ap.add_argument("--scored", type=int, default=4, help="images scored per synthetic series")
    ap.add_argument(
        "--annotate",
        type=int,
        default=1,
        help="images of each series annotated in turn (the figures are their means)",
    )
    ap.add_argument("--steps", type=int, default=120, help="fine-tuning steps (as generalist.py)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument(
        "--precisions",
        nargs="*",
        default=None,
        help="NAPARI_UNET_PRECISION for each pass (float32, and bfloat16 where the CPU has AMX)",
    )
    ap.add_argument(
        "--kinds",
        nargs="*",
        default=["dense", "scribbles"],
        help="which fine-tunings to run (dense, scribbles; annotated: the mask as an\n"
        "annotation layer holds it; corrected: the bundled model's prediction copied and\n"
        f"its {CORRECTED} worst objects corrected; with --typed also\n"
        "dense_given, scribbles_given: the typed width given to training)",
    )
    ap.add_argument(
        "--typed",
        action="store_true",
        help="a person typed the annotated image's object width (ruler_width) in Segment:\n"
        "every model predicts with it; kinds dense_given / scribbles_given train with it",
    )
    ap.add_argument(
        "--verdict",
        action="store_true",
        help="train as Train does, 10 %% of the annotation held out, and tally Train's\n"
        "before/after verdict there against the change on the other images\n"
        "(the fine-tuned figures then differ a little from a run without it)",
    )
    ap.add_argument("--json", default=None, help="write the per-series figures here")
    args = ap.parse_args()

    from napari_unet.core import TrainConfig, TrainingPair, UNet, mask_to_annotation
    from napari_unet.core.hardware import cpu_bfloat16_units
    from napari_unet.core.training.comparison import compare, judge

    if args.precisions is None:  # bfloat16 without AMX is emulated, slow and not the default
        args.precisions = ["float32"] + (["bfloat16"] if cpu_bfloat16_units() == "amx" else [])

    todo = series(set(args.sets) if args.sets else None, args.series, args.scored, args.annotate)
    cfg = finetune_config(args.steps, args.batch)
    # --verdict: Train's verdicts, and the raw figures' (any move by > SAME_WITHIN)
    tallies: dict = {r: {k: Counter() for k in args.kinds} for r in ("Train", "raw figures")}
    if args.verdict:
        cfg = replace(cfg, val_fraction=TrainConfig().val_fraction)  # as Train holds out
    rows: dict = {}
    t_all = time.perf_counter()
    for precision in args.precisions:
        os.environ["NAPARI_UNET_PRECISION"] = precision
        base = UNet.default()
        for name, turns in todo.items():
            t0 = time.perf_counter()
            each = []
            for image, mask, pairs in turns:
                # --typed: the person typed the annotated image's object width in Segment
                typed = ruler_width(mask) if args.typed else "auto"
                zero, zs = f1_on(base, pairs, typed)
                strokes = scribbles(np.asarray(mask), seed=0)
                given = {"diameter": typed} if args.typed else {}
                pair = {
                    "dense": TrainingPair(image, mask=mask, name=name),
                    # the same truth painted as an annotation layer holds it (object 2,
                    # background 1, touching lines unlabelled): no instance ids
                    "annotated": TrainingPair(
                        image, annotation=mask_to_annotation(mask), name=f"{name} annotated"
                    ),
                    "scribbles": TrainingPair(image, annotation=strokes, name=f"{name} scribbles"),
                    "dense_given": TrainingPair(image, mask=mask, name=name, **given),
                    "scribbles_given": TrainingPair(
                        image, annotation=strokes, name=f"{name} scribbles", **given
                    ),
                }
                turn = {"zero_shot": zero, "scales": {"zero_shot": zs}, "taught": {}}
                if args.typed:
                    turn["typed"] = typed
                if "corrected" in args.kinds:  # Segment, copy, correct a few objects
                    ann, painted, fixed = corrected_copy(base, image, mask, typed)
                    pair["corrected"] = TrainingPair(
                        image, annotation=ann, painted=painted, name=f"{name} corrected"
                    )
                    turn["corrected_objects"] = fixed
                for kind in args.kinds:
                    net = base.copy()
                    result = net.train([pair[kind]], cfg)
                    turn[kind], turn["scales"][kind] = f1_on(net, pairs, typed)
                    turn["taught"][kind] = net.metadata.taught_scale
                    if args.verdict:  # as Train judges the run
                        c = judge(base, net, result.held_out)
                        raw = c
                        if c.before is not None:  # the same figures, handed in whole
                            whole = replace(c.before, units=None), replace(c.after, units=None)
                            raw = compare(*whole)
                        d = turn[kind] - turn["zero_shot"]
                        effect = "raised" if d > 0.01 else "lowered" if d < -0.01 else "level"
                        tallies["Train"][kind][effect, c.verdict] += 1
                        tallies["raw figures"][kind][effect, raw.verdict] += 1
                        turn.setdefault("verdict", {})[kind] = {
                            "verdict": c.verdict,
                            "raw": raw.verdict,
                            "before": c.before.figures() if c.before else None,
                            "after": c.after.figures(),
                            "objects": c.after.objects,
                            "units": c.units,
                        }
                        print(
                            f"  {name} {kind}: {c.summary()} [raw: {raw.verdict}; "
                            f"other images {turn['zero_shot']:.3f} → {turn[kind]:.3f}]",
                            flush=True,
                        )
                each.append(turn)
            # the series' figures: the means over the images annotated in turn
            row = {k: float(np.mean([t[k] for t in each])) for k in ("zero_shot", *args.kinds)}
            row.update(scales=each[0]["scales"], taught=each[0]["taught"])
            if len(each) > 1:
                row["turns"] = each
            rows.setdefault(name, {})[precision] = row
            if len(each) > 1:
                done = "  ".join(
                    f"{k} {row[k]:.3f} ({' '.join(f'{t[k]:.3f}' for t in each)})"
                    for k in ("zero_shot", *args.kinds)
                )
            else:
                zero = row["zero_shot"]
                done = f"zero-shot {zero:.3f}  " + "  ".join(
                    f"{k} {row[k]:.3f} (taught {row['taught'][k]})" for k in args.kinds
                )
            if args.typed:
                done += "  typed " + " ".join(f"{t['typed']:.0f}" for t in each) + " px"
            print(
                f"{precision:8s} {name:22s} {done}  {time.perf_counter() - t0:.0f} s",
                flush=True,
            )
    print()
    for precision in args.precisions:
        got = [r[precision] for r in rows.values()]
        words = [f"zero-shot {np.mean([g['zero_shot'] for g in got]):.3f}"]
        for k in args.kinds:
            lower = sum(g[k] < g["zero_shot"] - 0.01 for g in got)
            words.append(f"{k} {np.mean([g[k] for g in got]):.3f} ({lower} lower by > 0.01)")
        print(f"{precision:8s} mean of {len(got)} series: " + ", ".join(words))
    if len(args.precisions) > 1:
        a, b = args.precisions[:2]
        for k in ("zero_shot", *args.kinds):
            gaps = [abs(r[a][k] - r[b][k]) for r in rows.values()]
            print(f"{k:9s} |{a} − {b}|: mean {np.mean(gaps):.3f}, largest {max(gaps):.3f}")
    if args.verdict:
        print_verdicts(tallies, args.kinds)
    print(f"({time.perf_counter() - t_all:.0f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
