"""The README's picture of the generalist model: one image of each kind, zero-shot, with
the outlines of the objects found and the instance F1 against the truth.

Images the model never learned from: the held-out bottom-right quadrant of the CC0 sample
and, per synthetic modality, the first scored field of view of the experiment that
``benchmarks/generalist.py`` scores (seeds from ``BENCHMARK_SEEDS``, which no training
draws; rods in phase contrast, as there), so each panel is one of the images its table
averages. Each title also gives the F1 of the older nuclei model on the same image. No
image of ``../shared/data`` is drawn: those may not be committed.

    python scripts/generalist_figure.py --out docs/images/generalist.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import tifffile

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from synthetic_modalities import BENCHMARK_SEEDS, MODALITIES, synth_series  # noqa: E402

from napari_unet.core import UNet, default_model_path, evaluate  # noqa: E402
from napari_unet.core.network.model_file import BUNDLED_MODELS  # noqa: E402

PANELS = (
    ("fluo_nuclei", "fluorescent nuclei"),
    ("fluo_cytoplasm", "fluorescent cells"),
    ("fluo_membrane", "fluorescent membranes"),
    ("brightfield", "brightfield"),
    ("phase", "phase contrast"),
    ("he", "H&E-like RGB"),
    ("rods", "touching rods"),
)


def display(image: np.ndarray) -> np.ndarray:
    """RGB float in [0, 1] for showing: grey images stretched between percentiles."""
    img = np.asarray(image, np.float32)
    lo, hi = np.percentile(img, (0.5, 99.5))
    img = np.clip((img - lo) / max(hi - lo, 1e-6), 0, 1)
    return img if img.ndim == 3 else np.repeat(img[..., None], 3, axis=-1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", type=Path, default=None, help="default: the bundled default")
    ap.add_argument("--out", type=Path, default=ROOT / "docs/images/generalist.png")
    ap.add_argument("--size", type=int, default=256)
    args = ap.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from skimage.segmentation import find_boundaries

    net = UNet.load(args.model or default_model_path())
    old = UNet.load(BUNDLED_MODELS["nuclei"])
    image = tifffile.imread(ROOT / "sample_data/img2d.tif")[256:, 256:]
    mask = tifffile.imread(ROOT / "sample_data/mask2d.tif")[256:, 256:]
    cases = [("sample, held-out quadrant", image, mask)]
    for modality, name in PANELS:
        # the benchmark's experiment for this modality; field 0 is its annotated image
        seed = BENCHMARK_SEEDS + 1000 * MODALITIES.index(modality)
        pinned = {"look": "phase"} if modality == "rods" else {}
        img, m = synth_series(modality, 2, args.size, seed, **pinned)[1]
        cases.append((name + " (synthetic)", img, m))

    fig, axes = plt.subplots(2, 4, figsize=(14, 8.2))
    for ax, (name, img, truth) in zip(axes.ravel(), cases):
        labels = net.predict(img).labels
        f1 = evaluate(labels, truth)["f1"]
        f1_old = evaluate(old.predict(img).labels, truth)["f1"]
        rgb = display(img)
        edge = find_boundaries(labels, mode="inner")
        rgb[edge] = (1.0, 0.85, 0.0)
        ax.imshow(rgb, interpolation="nearest")
        ax.set_title(
            f"{name}\n{int(labels.max())} objects, F1 {f1:.2f} (nuclei model {f1_old:.2f})",
            fontsize=10,
        )
        ax.axis("off")
        print(f"{name}: {int(labels.max())} objects, F1 {f1:.3f}, nuclei model {f1_old:.3f}")
    fig.suptitle(
        f"{Path(args.model or default_model_path()).name}, zero-shot (outlines in yellow): "
        "no setting chosen, object size measured",
        fontsize=12,
    )
    fig.subplots_adjust(left=0.005, right=0.995, bottom=0.005, top=0.89, wspace=0.03, hspace=0.2)
    save_figure(fig, args.out, dpi=64)


def save_figure(fig, out: Path, dpi: int) -> None:
    """Write a README picture: ``fig`` as a PNG in a 256-colour palette, which keeps it
    small (the outlines are one colour)."""
    from PIL import Image

    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    Image.open(out).convert("RGB").quantize(256).save(out, optimize=True)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
