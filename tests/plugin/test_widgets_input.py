"""What the widgets say about what a person gives them: settings out of range (with the
range), the annotation counts after Undo, images with NaN pixels, a disk too full for
the model, compressed TIFFs opened in the viewer. A real viewer under pytest-qt."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from widget_helpers import dock, wait_idle

from napari_unet.core.config import LIMITS

pytestmark = pytest.mark.gui


def test_spin_box_ranges_are_cores(make_napari_viewer):
    viewer = make_napari_viewer()
    train = dock(viewer, "Train")
    boxes = {
        "epochs": train._epochs,
        "steps_per_epoch": train._steps,
        "patch_size": train._patch,
        "batch_size": train._batch,
        "val_fraction": train._val,
        "early_stopping_patience": train._patience,
    }
    for name, box in boxes.items():
        assert (box.min, box.max) == (LIMITS[name].lo, LIMITS[name].hi), name
    assert train._time.max == LIMITS["time_limit"].hi
    segment = dock(viewer, "Segment")
    assert segment._tile.max == LIMITS["tile_size"].hi
    assert LIMITS["tile_size"].text() in segment._tile.tooltip


def test_segment_refuses_absurd_settings_with_the_range(viewer, qtbot, notes):
    segment = dock(viewer, "Segment")
    segment._tile.value = 64  # below the smallest tile
    assert segment._on_segment("nuclei") is None
    assert LIMITS["tile_size"].text() in notes()[-1], notes()
    assert segment.run_button.isEnabled()
    segment._tile.value = 0
    segment._model.value = "default"
    segment._diameter.value = 10_000  # wider than the 512×512 sample
    segment._on_segment("nuclei")
    wait_idle(qtbot, segment, 120_000)
    assert any("wider than the image" in n and "512×512" in n for n in notes()), notes()
    assert "nuclei labels" not in [layer.name for layer in viewer.layers]
    assert segment.run_button.isEnabled()


def test_the_counts_follow_undo_on_the_annotation(viewer, qtbot):
    annotate = dock(viewer, "Annotate")
    annotate._image.value = "nuclei"
    layer = annotate._on_create()
    layer.brush_size = 9
    layer.paint((200, 200), 2)
    qtbot.waitUntil(lambda: annotate.last_counts.get("nuclei", {}).get(2, 0) > 0, timeout=5000)
    assert annotate.table.item(0, 2).text() != "0"
    layer.undo()  # Ctrl+Z in the viewer
    qtbot.waitUntil(lambda: annotate.last_counts["nuclei"].get(2, 0) == 0, timeout=5000)
    assert annotate.table.item(0, 2).text() == "0"
    layer.redo()
    qtbot.waitUntil(lambda: annotate.last_counts["nuclei"].get(2, 0) > 0, timeout=5000)


def _painted(viewer, annotate, name="nuclei"):
    annotate._image.value = name
    layer = annotate._on_create()
    data = np.zeros(layer.data.shape, np.uint8)
    data[:20] = 1
    data[100:120, 100:120] = 2
    layer.data = data
    return layer


def test_train_says_how_many_pixels_are_nan_as_segment_does(make_napari_viewer, notes):
    from napari_unet.core.normalize import nonfinite_message

    viewer = make_napari_viewer()
    img = np.random.default_rng(0).random((128, 128)).astype(np.float32)
    img[5, :7] = np.nan
    img[6, 0] = np.inf
    viewer.add_image(img, name="holey")
    annotate, train = dock(viewer, "Annotate"), dock(viewer, "Train")
    _painted(viewer, annotate, "holey")
    train._init.value = "new"
    train.make_job()  # what Train reads before the run starts
    assert f"Train: {nonfinite_message('holey', 8)}" in notes(), notes()
    assert "8 pixels are NaN or infinite" in nonfinite_message("holey", 8)


@pytest.fixture
def tiny_home(small_disk, monkeypatch):
    """A 4 MB file system (tmpfs) as the home folder."""
    home = small_disk(4 << 20)
    monkeypatch.setenv("HOME", str(home))
    return home


def test_train_warns_before_training_when_the_disk_cannot_hold_the_model(viewer, tiny_home, notes):
    annotate, train = dock(viewer, "Annotate"), dock(viewer, "Train")
    _painted(viewer, annotate)
    train._init.value = "new"
    train._depth.value, train._filters.value = 4, 32  # ~ 31 MB of weights
    train.make_job()
    assert any("not enough disk space" in n and str(tiny_home) in n for n in notes()), notes()
    notes_before = len(notes())
    train._depth.value, train._filters.value = 2, 8  # fits
    train.make_job()
    assert not any("disk space" in n for n in notes()[notes_before:])


@pytest.mark.parametrize("kind", ["lzw", "zstd", "jpeg"])
def test_compressed_tiffs_open_in_the_viewer_and_segment(
    make_napari_viewer, qtbot, tmp_path, sample_image, kind
):
    img = sample_image[:128, :128]
    img8 = (255 * (img - img.min()) / max(1, np.ptp(img))).astype(np.uint8)
    path = tmp_path / f"{kind}.tif"
    tifffile.imwrite(path, img8, compression=kind)
    viewer = make_napari_viewer()
    viewer.open(str(path))
    layer = viewer.layers[kind]
    assert layer.data.shape == (128, 128)
    if kind != "jpeg":
        assert np.array_equal(np.asarray(layer.data), img8)
    if kind == "lzw":  # and Segment takes it like any image
        segment = dock(viewer, "Segment")
        segment._model.value = "default"
        segment._on_segment(kind)
        wait_idle(qtbot, segment, 120_000)
        assert viewer.layers[f"{kind} labels"].data.max() > 0


def test_evaluate_counts_follow_edits_and_undo_of_the_prediction(viewer, qtbot):
    truth = viewer.layers["nuclei ground truth"]
    pred = viewer.add_labels(np.array(truth.data), name="nuclei labels")
    evaluate = dock(viewer, "Evaluate")
    evaluate._on_evaluate("nuclei labels", "nuclei ground truth")
    qtbot.waitUntil(lambda: evaluate.scores is not None and not evaluate._busy, timeout=30_000)
    n = evaluate.scores["n_pred"]
    assert evaluate.scores["tp"] == n
    pred.brush_size = 15
    pred.paint((5, 5), int(pred.data.max()) + 1)  # a new object painted in a corner
    qtbot.waitUntil(lambda: evaluate.scores["n_pred"] == n + 1, timeout=10_000)
    assert f"{n + 1} predicted" in evaluate.counts.text()
    pred.undo()  # Ctrl+Z
    qtbot.waitUntil(lambda: evaluate.scores["n_pred"] == n, timeout=10_000)
    assert f"{n} predicted" in evaluate.counts.text()


def test_segment_and_train_read_the_settings_meanings_from_core(make_napari_viewer):
    """Segment's diameter means what --diameter means (empty: measured; 0: the image as it
    is); a new network for colour pictures takes their colours, as core says."""
    from napari_unet.core.config import MEASURE_DIAMETER

    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((32, 32), np.float32), name="blank")
    segment = dock(viewer, "Segment")
    segment.reset_choices()
    segment._image.value = "blank"
    box = segment._diameter
    assert box.value == box.min and box.native.specialValueText() == "auto"  # shown so
    assert segment.job().diameter == MEASURE_DIAMETER
    segment._diameter.value = 0
    assert segment.job().diameter == 0.0
    segment._diameter.value = 30
    assert segment.job().diameter == 30.0

    train = dock(viewer, "Train")
    assert (train._depth.min, train._depth.max) == (LIMITS["depth"].lo, LIMITS["depth"].hi)
    rgb = viewer.add_image(np.zeros((32, 32, 3), np.uint8), name="photo", rgb=True)
    grey = viewer.layers["blank"]
    from napari_unet._layers import Pair

    train._init.value = "new"
    spec = train.init_spec([Pair(rgb, None)])
    assert spec.kind == "new" and spec.architecture.input_channels == 3
    assert train.init_spec([Pair(rgb, None), Pair(grey, None)]).architecture.input_channels == 1


def test_train_learns_an_image_at_the_diameter_typed_in_segment(viewer, qtbot):
    """A width typed in Segment is the image's width for Train too (kept on the image
    layer), so the model learns the image at the scale it was segmented at; segmented
    with the width measured again, training measures it as before."""
    from helpers import make_blobs

    from napari_unet._layers import DIAMETER_KEY
    from napari_unet._training_data import painted_pairs

    img, mask = make_blobs(128, 8, seed=3)
    layer = viewer.add_image(img, name="cells")
    viewer.add_labels(np.where(mask > 0, 2, 1).astype(np.uint8), name="cells annotation")
    segment = dock(viewer, "Segment")
    segment._model.value = "default"
    segment._diameter.value = 24
    segment._on_segment("cells")
    wait_idle(qtbot, segment, 120_000)
    assert layer.metadata[DIAMETER_KEY] == 24.0
    assert [p.diameter for p in painted_pairs(viewer)[1]] == [24.0]

    # one step from the bundled model: it learns the image where Segment saw it
    from napari_unet.core import UNet
    from napari_unet.core.prediction.object_size import clip_scale, given_scale

    train = dock(viewer, "Train")
    train._init.value = "default"
    train._epochs.value, train._steps.value, train._time.value = 1, 1, 0
    train._patch.value, train._batch.value = 64, 2
    train._preview.value = None
    train._on_train()
    wait_idle(qtbot, train, 120_000)
    assert "Learned cells at 24 px: the width typed in Segment." in train.status.text()
    bundled = UNet.default()
    seen_at = clip_scale(given_scale(24, bundled.object_diameter, bundled.mask_diameter))
    assert train.outcome.model.metadata.taught_scale == pytest.approx(seen_at, abs=1e-4)

    segment._diameter.value = segment._diameter.min  # auto: measured in the image
    segment._on_segment("cells")
    wait_idle(qtbot, segment, 120_000)
    assert DIAMETER_KEY not in layer.metadata
    assert [p.diameter for p in painted_pairs(viewer)[1]] == [None]


def test_a_stained_slide_is_segmented_as_its_haematoxylin_and_the_status_says_so(
    viewer, qtbot, tmp_path
):
    # scikit-image's IHC slide (no known copyright restrictions): brown DAB glands, blue
    # nuclei. The default model reads it as its haematoxylin and says so; the same
    # picture in grey is segmented without that line
    from skimage import data

    slide = data.immunohistochemistry()[:256, 256:]
    viewer.add_image(slide, name="slide", rgb=True)
    viewer.add_image(slide.mean(-1).astype(np.uint8), name="grey")
    segment = dock(viewer, "Segment")
    segment._model.value = "default"
    segment._on_segment("slide")
    wait_idle(qtbot, segment, 120_000)
    assert "a stained slide: its haematoxylin" in segment.status.text()
    assert viewer.layers["slide labels"].data.max() > 30  # nuclei, not a few glands
    segment._on_segment("grey")
    wait_idle(qtbot, segment, 120_000)
    assert viewer.layers["grey labels"].data.max() > 0
    assert "haematoxylin" not in segment.status.text()
    # the same slide from a slide scanner (an Aperio .svs: JPEG tiles, a thumbnail, two
    # halvings), which napari cannot open itself: the plugin opens it as one lazy RGB
    # pyramid, and Segment reads its full resolution block by block, as a stained slide
    from helpers import write_aperio_slide

    from napari_unet._layers import layer_array
    from napari_unet._reader import get_slide_reader, read_slide_layers

    path = tmp_path / "biopsy 7.svs"
    write_aperio_slide(path, slide, levels=3)
    assert get_slide_reader(str(path)) is read_slide_layers
    assert get_slide_reader(str(tmp_path / "image.tif")) is None  # left to napari
    (layer,) = viewer.open(str(path), plugin="napari-unet")
    assert layer.name == "biopsy 7" and layer.rgb and layer.multiscale
    assert [tuple(level.shape) for level in layer.data] == [
        (256, 256, 3),
        (128, 128, 3),
        (64, 64, 3),
    ]
    segment._on_segment("biopsy 7")
    wait_idle(qtbot, segment, 120_000)
    assert "block by block" in segment.status.text()
    assert "a stained slide: its haematoxylin" in segment.status.text()
    labels = layer_array(viewer.layers["biopsy 7 labels"])  # its full resolution
    assert labels.shape == (256, 256) and int(np.asarray(labels).max()) > 30


def test_a_bioimageio_package_is_loaded_in_a_worker_and_a_foreign_one_refused(
    viewer, qtbot, tmp_path, notes, monkeypatch
):
    """Train's Load model… on a package: its model is taken out in a worker (the window
    goes on), then it is the current model; another tool's package is refused in one
    line and the current model stays."""
    import zipfile

    from napari_unet.core import UNet, UNetConfig
    from napari_unet.core.network import model_file

    monkeypatch.setattr(model_file, "package_cache", lambda: tmp_path / "cache")
    train = dock(viewer, "Train")
    before = train.state.path
    model = UNet.new(UNetConfig(depth=2, base_filters=8), seed=0).save(tmp_path / "tiny.keras")
    package = tmp_path / "colleague.zip"
    with zipfile.ZipFile(package, "w") as z:
        z.writestr("rdf.yaml", "type: model\n")
        z.write(model, "weights.keras")
    assert train._on_load(str(package)) is None  # not yet: the worker checks it
    qtbot.waitUntil(lambda: train.state.path == str(package), timeout=30_000)
    assert train.state.model is None and train.state.name == "colleague"
    assert "current model: colleague.zip" in notes()[-1]
    assert len(list((tmp_path / "cache").rglob("colleague.keras"))) == 1

    foreign = tmp_path / "stardist.zip"
    with zipfile.ZipFile(foreign, "w") as z:
        z.writestr("rdf.yaml", "type: model\n")
        z.writestr("weights.h5", b"\0" * 16)
    train._on_load(str(foreign))
    qtbot.waitUntil(lambda: "without a napari-unet model" in " ".join(notes()), timeout=30_000)
    assert "stardist.zip" in notes()[-1]
    assert train.state.path == str(package) != before
