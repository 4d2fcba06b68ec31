"""Zero-shot accuracy of the bundled default model on images it has never seen.

* synthetic fluorescence nuclei drawn with seeds the training script never used;
* the held-out bottom-right sample quadrant as a microscope might have recorded it
  differently: 8-bit, dimmer and noisier, with an uneven background, blurred, at half
  and at double the pixel size — next to Otsu + watershed on the same images.

    python benchmarks/generalization.py
"""

from __future__ import annotations

import json

import numpy as np
from common import HELD_OUT, QUADRANTS, ROOT, load_sample, markdown_table, otsu_watershed
from scipy import ndimage as ndi
from synthetic_nuclei import synth_image

from napari_unet.core import UNet, evaluate


def variants(image, mask):
    rng = np.random.default_rng(0)
    img = image.astype(np.float32)
    yy, xx = np.mgrid[: img.shape[0], : img.shape[1]] / img.shape[0]
    out = {"as recorded": (image, mask)}
    out["8-bit"] = ((img / img.max() * 255).astype(np.uint8), mask)
    dim = img * 0.25 + rng.normal(0, 3, img.shape)
    out["dim + noisy"] = (np.clip(dim + 20, 0, None).astype(np.uint16), mask)
    out["uneven background"] = ((img + 120 * (yy + 0.5 * xx)).astype(np.uint16), mask)
    out["blurred"] = (ndi.gaussian_filter(img, 1.5).astype(np.uint16), mask)
    out["half pixel size (2× zoom)"] = (
        ndi.zoom(img, 2, order=1).astype(np.uint16),
        ndi.zoom(mask, 2, order=0),
    )
    out["double pixel size (0.5× zoom)"] = (
        ndi.zoom(img, 0.5, order=1).astype(np.uint16),
        ndi.zoom(mask, 0.5, order=0),
    )
    return out


def main() -> None:
    net = UNet.default()
    image, mask = load_sample()
    q = QUADRANTS[HELD_OUT]
    rows, result = [], {}
    for name, (img, m) in variants(image[q], mask[q]).items():
        ours = evaluate(net.predict(img).labels, m)
        base = evaluate(otsu_watershed(img), m)
        result[name] = {"unet": ours, "otsu_watershed": base}
        rows.append(
            [
                f"sample {HELD_OUT}: {name}",
                f"{ours['f1']:.3f}",
                f"{ours['pixel_dice']:.3f}",
                f"{ours['mean_ap']:.3f}",
                f"{base['f1']:.3f}",
            ]
        )
    synth = []
    for i in range(12):
        img, m = synth_image(256, 9_000_000 + i)
        synth.append((evaluate(net.predict(img).labels, m), evaluate(otsu_watershed(img), m)))
    mean = {k: float(np.mean([s[0][k] for s in synth])) for k in ("f1", "pixel_dice", "mean_ap")}
    mean_base = float(np.mean([s[1]["f1"] for s in synth]))
    result["unseen synthetic (12 images)"] = {"unet": mean, "otsu_watershed_f1": mean_base}
    rows.append(
        [
            "12 unseen synthetic images (mean)",
            f"{mean['f1']:.3f}",
            f"{mean['pixel_dice']:.3f}",
            f"{mean['mean_ap']:.3f}",
            f"{mean_base:.3f}",
        ]
    )
    print(
        markdown_table(
            [
                "image (default model, zero-shot)",
                "F1@0.5",
                "pixel Dice",
                "mAP",
                "Otsu+watershed F1",
            ],
            rows,
        )
    )
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "generalization.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
