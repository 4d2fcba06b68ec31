"""The picture of how the generalist reads a stained slide: scikit-image's IHC slide
(colonic glands, DAB-stained, with a haematoxylin counterstain; acquired at the Center for
Microscopy And Molecular Imaging, no known copyright restrictions), segmented zero-shot
with its colours read as their mean (as models saved before the reading was recorded do)
and as its haematoxylin density (:mod:`napari_unet.core.stains`, the generalist now). No
labels exist for it: the titles give the objects found and the scale the image was seen at.

    python scripts/stains_figure.py --out docs/images/stains.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "docs/images/stains.png")
    args = ap.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from generalist_figure import save_figure  # scripts/ is this script's own folder
    from skimage import data
    from skimage.segmentation import find_boundaries

    from napari_unet.core import UNet

    image = data.immunohistochemistry()
    fig, axes = plt.subplots(1, 2, figsize=(12, 6.6))
    for ax, reading in zip(axes, ("mean", "stains")):
        net = UNet.bundled("generalist")
        net.metadata.colour_reading = reading
        pred = net.predict(image)
        rgb = image.astype(np.float32) / 255.0
        rgb[find_boundaries(pred.labels, mode="inner")] = (0.0, 0.9, 0.0)
        ax.imshow(rgb, interpolation="nearest")
        said = {"mean": "colours read as their mean", "stains": "read as haematoxylin (now)"}
        n = int(pred.labels.max())
        ax.set_title(f"{said[reading]}\n{n} objects, seen at scale {pred.scale:.2f}", fontsize=11)
        ax.axis("off")
        print(f"{reading}: {n} objects at scale {pred.scale:.3f}")
    fig.suptitle(
        "The generalist, zero-shot, on scikit-image's IHC slide (outlines in green)", fontsize=12
    )
    fig.subplots_adjust(left=0.005, right=0.995, bottom=0.005, top=0.87, wspace=0.03)
    save_figure(fig, args.out, dpi=72)


if __name__ == "__main__":
    main()
