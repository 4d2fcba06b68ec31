"""Shared pieces of the benchmarks: sample folds, baselines users would otherwise pick,
and a simulated annotator."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

# the folds and the held-out quadrant are those the default model was trained around
from train_default_model import HELD_OUT, QUADRANTS  # noqa: E402, F401 - re-exported


def load_sample():
    import tifffile

    return (
        tifffile.imread(ROOT / "sample_data/img2d.tif"),
        tifffile.imread(ROOT / "sample_data/mask2d.tif"),
    )


def folds(image, mask):
    """Four folds: train on three quadrants, test on the fourth."""
    for test_name, test_q in QUADRANTS.items():
        train = [(image[q], mask[q], name) for name, q in QUADRANTS.items() if name != test_name]
        yield test_name, train, (image[test_q], mask[test_q])


def mosaic(image, reps: int, seed: int = 0) -> np.ndarray:
    """The sample image repeated with random flips (so no two neighbours are equal)."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(reps):
        row = []
        for _ in range(reps):
            t = image
            if rng.random() < 0.5:
                t = t[::-1]
            if rng.random() < 0.5:
                t = t[:, ::-1]
            row.append(t)
        rows.append(np.concatenate(row, 1))
    return np.concatenate(rows, 0)


def best_seconds(fn, reps: int) -> float:
    """The shortest of ``reps`` timed calls of ``fn()``."""
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def second_epoch_stamps(net, image, mask, steps: int, patch: int, batch: int, **settings):
    """``time.perf_counter()`` after each batch of the second of two epochs of
    ``UNet.train`` (traced, pipeline warm); ``settings`` go to :class:`TrainConfig`."""
    from napari_unet.core import TrainConfig, TrainingPair

    stamps = []

    def progress(p):
        if p.kind == "batch":
            stamps.append(time.perf_counter())

    cfg = TrainConfig(
        epochs=2,
        steps_per_epoch=steps,
        patch_size=patch,
        batch_size=batch,
        val_fraction=0.0,
        early_stopping_patience=1000,
        **settings,
    )
    net.train([TrainingPair(image, mask=mask)], cfg, progress=progress)
    return stamps[steps:]


def fmt_row(cells, widths):
    return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"


def markdown_table(header, rows):
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    lines = [fmt_row(header, widths), "| " + " | ".join("-" * w for w in widths) + " |"]
    lines += [fmt_row(r, widths) for r in rows]
    return "\n".join(lines)


# ----------------------------------------------------------------- baselines
def otsu_watershed(image, min_size: int = 10, min_distance: int = 5):
    """Otsu threshold + distance-transform watershed (the classic recipe)."""
    from scipy import ndimage as ndi
    from skimage.feature import peak_local_max
    from skimage.filters import gaussian, threshold_otsu
    from skimage.segmentation import watershed

    from napari_unet.core.prediction.instances import relabel_and_filter

    sm = gaussian(image.astype(np.float32), 1.0, preserve_range=True)
    fg = sm > threshold_otsu(sm)
    fg = ndi.binary_opening(fg, iterations=1)
    dist = ndi.distance_transform_edt(fg)
    dist = gaussian(dist, 1.0)
    peaks = peak_local_max(
        dist, min_distance=min_distance, labels=ndi.label(fg)[0], exclude_border=False
    )
    markers = np.zeros(image.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    labels = watershed(-dist, markers, mask=fg)
    return relabel_and_filter(labels, min_size)


def _binary_to_instances(fg, min_size=10, min_distance=5):
    from scipy import ndimage as ndi
    from skimage.feature import peak_local_max
    from skimage.filters import gaussian
    from skimage.segmentation import watershed

    from napari_unet.core.prediction.instances import relabel_and_filter

    dist = gaussian(ndi.distance_transform_edt(fg), 1.0)
    peaks = peak_local_max(
        dist, min_distance=min_distance, labels=ndi.label(fg)[0], exclude_border=False
    )
    markers = np.zeros(fg.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    return relabel_and_filter(watershed(-dist, markers, mask=fg), min_size)


def random_forest(train_images, train_annotations, test_image):
    """scikit-image's trainable segmenter (the ilastik / convpaint approach) on the same
    annotations (1 = background, 2 = object), then distance-transform watershed."""
    from functools import partial

    from skimage.feature import multiscale_basic_features
    from skimage.future import fit_segmenter, predict_segmenter
    from sklearn.ensemble import RandomForestClassifier

    feat = partial(
        multiscale_basic_features,
        intensity=True,
        edges=True,
        texture=True,
        sigma_min=1,
        sigma_max=16,
    )

    def norm(im):
        lo, hi = np.percentile(im, [1, 99.8])
        return (im.astype(np.float32) - lo) / max(hi - lo, 1e-6)

    feats = np.concatenate([feat(norm(im)) for im in train_images], axis=1)
    labels = np.concatenate(list(train_annotations), axis=1)
    clf = RandomForestClassifier(
        n_estimators=50, n_jobs=-1, max_depth=12, max_samples=0.1, random_state=0
    )
    clf = fit_segmenter(labels, feats, clf)
    seg = predict_segmenter(feat(norm(test_image)), clf)
    return _binary_to_instances(seg == 2)


def tutorial_unet(train_images, train_masks, test_image, seconds: float, seed: int = 0):
    """The plain Keras-tutorial U-Net: 16–256 filters, sigmoid + binary cross-entropy on
    the foreground, no augmentation, no masking, random crops of the training images;
    instances as connected components of p > 0.5."""
    import keras
    from scipy import ndimage as ndi

    from napari_unet.core.prediction.instances import relabel_and_filter

    keras.utils.set_random_seed(seed)

    def norm(im):
        lo, hi = np.percentile(im, [1, 99.8])
        return (im.astype(np.float32) - lo) / max(hi - lo, 1e-6)

    def block(x, f):
        x = keras.layers.Conv2D(
            f, 3, padding="same", activation="relu", kernel_initializer="he_normal"
        )(x)
        return keras.layers.Conv2D(
            f, 3, padding="same", activation="relu", kernel_initializer="he_normal"
        )(x)

    inp = keras.Input((None, None, 1))
    x, skips = inp, []
    for f in (16, 32, 64, 128):
        x = block(x, f)
        skips.append(x)
        x = keras.layers.MaxPooling2D()(x)
    x = block(x, 256)
    for f, s in zip((128, 64, 32, 16), reversed(skips)):
        x = keras.layers.Conv2DTranspose(f, 2, strides=2, padding="same")(x)
        x = block(keras.layers.Concatenate()([x, s]), f)
    out = keras.layers.Conv2D(1, 1, activation="sigmoid")(x)
    model = keras.Model(inp, out)
    model.compile(keras.optimizers.Adam(1e-3), "binary_crossentropy")
    rng = np.random.default_rng(seed)
    ims = [norm(im) for im in train_images]
    fgs = [(m > 0).astype(np.float32) for m in train_masks]
    p = 128
    xs, ys = [], []
    for _ in range(256):  # pre-made arrays of random crops, as the tutorials do
        i = rng.integers(len(ims))
        y0 = rng.integers(0, ims[i].shape[0] - p + 1)
        x0 = rng.integers(0, ims[i].shape[1] - p + 1)
        xs.append(ims[i][y0 : y0 + p, x0 : x0 + p, None])
        ys.append(fgs[i][y0 : y0 + p, x0 : x0 + p, None])
    xs, ys = np.stack(xs), np.stack(ys)
    # the same CPU budget as our U-Net gets: CPU seconds over all cores
    import os

    limit = seconds * (os.cpu_count() or 1)
    t0 = time.process_time()

    class Budget(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if time.process_time() - t0 > limit:
                self.model.stop_training = True

    model.fit(xs, ys, batch_size=8, epochs=10_000, verbose=0, callbacks=[Budget()])
    prob = model.predict(norm(test_image)[None, ..., None], verbose=0)[0, ..., 0]
    return relabel_and_filter(ndi.label(prob > 0.5)[0], 10)


# ----------------------------------------------------------------- simulated annotator
def scribbles(
    mask,
    object_fraction: float = 1.0,
    bg_lines: int = 2,
    ring_fraction: float = 0.25,
    width: int = 3,
    seed: int = 0,
):
    """A sparse annotation a person would paint: one stroke through each chosen nucleus
    (along its long axis, up to a pixel from its edge), a few background strokes across
    the image that pass close to nuclei, and a thin background arc hugging part of the
    outline of some nuclei (where a person marks an edge that matters)."""
    from scipy import ndimage as ndi
    from skimage.draw import line
    from skimage.measure import regionprops

    rng = np.random.default_rng(seed)
    ann = np.zeros(mask.shape, np.uint8)
    h, w = mask.shape
    objects = mask > 0
    for r in regionprops(mask):
        if rng.random() >= object_fraction:
            continue
        obj = mask == r.label
        inner = ndi.binary_erosion(obj, iterations=1)
        cy, cx = r.centroid
        ang = r.orientation
        half = r.axis_major_length / 2
        y0, x0 = cy - half * np.cos(ang), cx - half * np.sin(ang)
        y1, x1 = cy + half * np.cos(ang), cx + half * np.sin(ang)
        rr, cc = line(int(round(y0)), int(round(x0)), int(round(y1)), int(round(x1)))
        ok = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
        stroke = np.zeros(mask.shape, bool)
        stroke[rr[ok], cc[ok]] = True
        stroke = ndi.binary_dilation(stroke, iterations=width // 2) & inner
        ann[stroke] = 2
        if rng.random() < ring_fraction:
            ring = ndi.binary_dilation(obj, iterations=2) & ~ndi.binary_dilation(
                objects, iterations=1
            )
            ys, xs = np.nonzero(ring)
            if len(ys):
                theta = np.arctan2(ys - cy, xs - cx)
                start = rng.uniform(-np.pi, np.pi)
                arc = np.mod(theta - start, 2 * np.pi) < np.pi  # half of the outline
                ann[ys[arc], xs[arc]] = np.where(
                    ann[ys[arc], xs[arc]] == 0, 1, ann[ys[arc], xs[arc]]
                )
    near_ok = ~ndi.binary_dilation(objects, iterations=1)
    for _ in range(bg_lines):
        y0, x0, y1, x1 = (
            rng.integers(0, h),
            rng.integers(0, w),
            rng.integers(0, h),
            rng.integers(0, w),
        )
        rr, cc = line(y0, x0, y1, x1)
        stroke = np.zeros(mask.shape, bool)
        stroke[rr, cc] = True
        stroke = ndi.binary_dilation(stroke, iterations=width // 2) & near_ok
        ann[stroke & (ann == 0)] = 1
    return ann


def correction(mask, obj_id: int, ring: int = 2):
    """What a person paints to correct one nucleus: its inside as object, a thin ring of
    background around it (which also separates it from touching neighbours)."""
    from scipy import ndimage as ndi

    obj = mask == obj_id
    grown = ndi.binary_dilation(obj, iterations=ring)
    ann = np.zeros(mask.shape, np.uint8)
    ann[grown & (mask == 0)] = 1
    ann[obj] = 2
    # where it touches another nucleus, a 1 px background line separates the two
    touching = obj & ndi.binary_dilation((mask > 0) & ~obj)
    ann[touching] = 1
    return ann


def finetune_config(steps: int, batch: int):
    """The fine-tuning on one image that ``generalist.py`` and ``fine_tuning.py`` measure:
    ``steps`` steps of ``batch`` patches of 128², no validation split, seeded."""
    from napari_unet.core import TrainConfig

    return TrainConfig(
        epochs=2,
        steps_per_epoch=max(1, steps // 2),
        patch_size=128,
        batch_size=batch,
        val_fraction=0.0,
        early_stopping_patience=1000,
        seed=0,
    )
