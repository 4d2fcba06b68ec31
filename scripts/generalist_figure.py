"""The README's picture of the generalist model: one image of each kind, zero-shot, with
the outlines of the objects found and the instance F1 against the truth.

Images the model never learned from: the held-out bottom-right quadrant of the CC0 sample
and one field of view per synthetic modality drawn from ``BENCHMARK_SEEDS`` (no training
draws there). No image of ``../shared/data`` is drawn: those may not be committed.

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

from synthetic_modalities import BENCHMARK_SEEDS, synth  # noqa: E402

from napari_unet.core import UNet, default_model_path, evaluate  # noqa: E402

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
    image = tifffile.imread(ROOT / "sample_data/img2d.tif")[256:, 256:]
    mask = tifffile.imread(ROOT / "sample_data/mask2d.tif")[256:, 256:]
    cases = [("sample, held-out quadrant", image, mask)]
    for k, (modality, name) in enumerate(PANELS):
        img, m = synth(modality, args.size, seed=BENCHMARK_SEEDS + 500 + k)
        cases.append((name + " (synthetic)", img, m))

    fig, axes = plt.subplots(2, 4, figsize=(16, 8.4))
    for ax, (name, img, truth) in zip(axes.ravel(), cases):
        labels = net.predict(img).labels
        f1 = evaluate(labels, truth)["f1"]
        rgb = display(img)
        edge = find_boundaries(labels, mode="inner")
        rgb[edge] = (1.0, 0.85, 0.0)
        ax.imshow(rgb, interpolation="nearest")
        ax.set_title(f"{name}\n{int(labels.max())} objects, F1 {f1:.2f}", fontsize=11)
        ax.axis("off")
        print(f"{name}: {int(labels.max())} objects, F1 {f1:.3f}", flush=True)
    fig.suptitle(
        f"{Path(args.model or default_model_path()).name}, zero-shot: no setting chosen, "
        "object size measured",
        fontsize=13,
    )
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=72)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
