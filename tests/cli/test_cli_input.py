"""Input as microscopes and people give it: settings out of range, stray labels,
compressed and damaged TIFFs, a full disk. Core checks and the command line (run as a
user runs it, in a separate process)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import tifffile
from cli_helpers import assert_user_error, cli
from helpers import make_blobs

from napari_unet.core import TrainingPair, UNet, UNetConfig, UserInputError
from napari_unet.core.config import LIMITS, TrainConfig, check_diameter, diameter_range
from napari_unet.core.errors import ConfigError
from napari_unet.core.files.images import image_info, read_image
from napari_unet.core.jobs.planning import check_training_pairs, model_file_bytes
from napari_unet.core.training.targets import check_classes_painted

COMPRESSIONS = ("lzw", "zstd", "jpeg")


# --------------------------------------------------------------------------- ranges
@pytest.mark.parametrize(
    "setting, value",
    [
        ("val_fraction", 0.99),
        ("val_fraction", -0.1),
        ("batch_size", 100_000),
        ("patch_size", 4096),
        ("epochs", 0),
        ("time_limit", 10**9),
    ],
)
def test_train_settings_out_of_range_are_refused_with_the_range(setting, value):
    with pytest.raises(ConfigError) as err:
        TrainConfig(**{setting: value})
    assert err.value.field == setting
    assert LIMITS[setting].text() in str(err.value), err.value


def test_a_validation_fraction_in_range_still_holds_pixels_out():
    """The top of the range is no silent zero: half of the blocks are held out."""
    from napari_unet.core.training.samples import prepare_pairs, split_validation

    img, mask = make_blobs(128, 12, seed=1)
    prepared = prepare_pairs([TrainingPair(img, mask=mask)], 1, 1, {"low": 1, "high": 99.8})
    rng = np.random.default_rng(0)
    train, val = split_validation(prepared, LIMITS["val_fraction"].hi, 32, rng)
    assert val[0].sum() > 0.2 * prepared[0].labelled.sum()
    assert train[0].sum() > 0


def test_diameter_range_follows_the_model_and_the_image():
    assert diameter_range(20.0) == (5.0, 160.0)
    assert diameter_range(20.0, (3, 100, 120)) == (5.0, 100.0)  # no wider than the image
    check_diameter(None, 20.0, (512, 512))
    check_diameter(0, 20.0, (512, 512))
    check_diameter(40, 20.0, (512, 512))
    with pytest.raises(ConfigError, match=r"wider than the image for a\.tif \(128×128 px\)"):
        check_diameter(10_000, 20.0, (128, 128), name="a.tif")
    with pytest.raises(ConfigError, match="from 5 to 160 px"):
        check_diameter(400, 20.0, (1024, 1024))
    with pytest.raises(ConfigError, match="from 5 to 160 px"):
        check_diameter(2, 20.0, (1024, 1024))


def test_predict_in_memory_refuses_a_diameter_wider_than_the_image():
    net = UNet.new(UNetConfig(depth=1, base_filters=2))
    net.metadata.object_diameter = 20.0
    with pytest.raises(UserInputError, match="wider than the image"):
        net.predict(np.zeros((64, 64), np.float32), diameter=10_000)


@pytest.fixture(scope="module")
def small_image(tmp_path_factory, sample_image) -> Path:
    path = tmp_path_factory.mktemp("small") / "small.tif"
    tifffile.imwrite(path, sample_image[:128, :128])
    return path


def test_cli_predict_refuses_absurd_diameter_and_tile_size_with_the_range(small_image, tmp_path):
    out = tmp_path / "out"
    line = assert_user_error(
        cli("predict", small_image, "--out", out, "--diameter", "10000"), "--diameter"
    )
    assert "wider than the image" in line and "small.tif" in line and "128×128" in line
    line = assert_user_error(
        cli("predict", small_image, "--out", out, "--diameter", "2"), "--diameter"
    )
    assert "out of reach" in line and "px wide" in line  # the bundled model's range
    assert_user_error(
        cli("predict", small_image, "--out", out, "--tile-size", "100000"),
        "--tile-size",
        LIMITS["tile_size"].text(),
    )
    assert not out.exists() or list(out.iterdir()) == []


@pytest.mark.parametrize(
    "flag, value, fragment",
    [
        ("--val-fraction", "0.99", "from 0 to 0.5"),
        ("--batch-size", "100000", "from 1 to 256"),
        ("--patch-size", "4096", "from 16 to 1024 pixels"),
        ("--time-limit", "1e9", "seconds"),
        ("--diameter", "-3", "must be a number of pixels"),
        ("--diameter", "5000", "is wider than the image"),
    ],
)
def test_cli_train_refuses_settings_out_of_range(flag, value, fragment, small_image, tmp_path):
    out = tmp_path / "m.keras"
    args = ["train", "--image", small_image, "--mask", small_image, "--out", out]
    assert_user_error(cli(*args, "--init", "none", flag, value), flag, fragment)
    assert not out.exists()


def test_cli_depth_for_a_trained_model_names_init_none(small_image, tmp_path):
    out = tmp_path / "m.keras"
    args = ["train", "--image", small_image, "--mask", small_image, "--out", out]
    assert_user_error(cli(*args, "--init", "default", "--depth", "2"), "--init none")


# --------------------------------------------------------------------------- stray labels
def _annotation_with_stray_7():
    ann = np.zeros((64, 64), np.uint8)
    ann[:8] = 1
    ann[10:20, 10:20] = 2
    ann[30:40, 30:40] = 3
    ann[50:52, 7:10] = 7  # the stray stroke
    return ann


def test_a_stray_label_is_refused_naming_value_place_and_count():
    ann = _annotation_with_stray_7()
    with pytest.raises(UserInputError) as err:
        check_classes_painted([("cells.tif", ann)])
    text = str(err.value)
    for fragment in ("cells.tif", "label 7", "6 pixels", "rows 50–51", "columns 7–9"):
        assert fragment in text, text
    assert "4, 5, 6" in text and "given as a mask" in text
    # a model that already has 6 classes may be corrected on class 6 alone
    check_classes_painted([("cells.tif", ann)], known_classes=6)
    ann[ann == 7] = 0
    check_classes_painted([("cells.tif", ann)])  # labels 1–3: fine


def test_training_refuses_a_stray_label_before_anything_trains():
    img = np.random.default_rng(0).random((64, 64)).astype(np.float32)
    net = UNet.new(UNetConfig(depth=1, base_filters=2))
    with pytest.raises(UserInputError, match="label 7"):
        net.train([TrainingPair(img, annotation=_annotation_with_stray_7())])
    assert net.config.n_object_classes == 1  # not widened


def test_a_small_instance_mask_given_as_annotation_is_refused():
    img, mask = make_blobs(96, 12, seed=0, radius=(4, 7))
    assert 6 <= mask.max() <= 33
    pairs = [TrainingPair(img, annotation=mask, name="mask.tif")]
    with pytest.raises(UserInputError, match="looks like an instance mask.*given as a mask"):
        check_training_pairs(pairs, 1)


def test_one_stroke_per_class_is_not_taken_for_a_mask():
    ann = np.zeros((96, 96), np.uint8)
    ann[:30] = 1  # the background stroke: larger than any object
    for k, label in enumerate(range(2, 8)):
        ann[40 + 8 * (k % 3) : 46 + 8 * (k % 3), 10 * k : 10 * k + 6] = label
    check_classes_painted([("six classes.tif", ann)])


def test_cli_train_refuses_an_annotation_with_a_stray_label(tmp_path):
    img = (np.random.default_rng(0).random((64, 64)) * 255).astype(np.uint8)
    tifffile.imwrite(tmp_path / "img.tif", img)
    tifffile.imwrite(tmp_path / "ann.tif", _annotation_with_stray_7())
    out = tmp_path / "m.keras"
    args = ["train", "--image", tmp_path / "img.tif", "--annotation", tmp_path / "ann.tif"]
    assert_user_error(cli(*args, "--out", out, "--init", "none"), "label 7", "rows 50–51")
    assert not out.exists()


# --------------------------------------------------------------------------- compressed TIFFs
@pytest.fixture(scope="module")
def compressed(tmp_path_factory, sample_image) -> dict[str, Path]:
    """The sample's corner as LZW, zstd and JPEG-compressed TIFFs (JPEG: 8-bit)."""
    d = tmp_path_factory.mktemp("compressed")
    img = sample_image[:128, :128]
    img8 = (255 * (img - img.min()) / max(1, np.ptp(img))).astype(np.uint8)
    files = {}
    for kind in COMPRESSIONS:
        files[kind] = d / f"{kind}.tif"
        tifffile.imwrite(files[kind], img8, compression=kind)
        with tifffile.TiffFile(files[kind]) as tif:
            assert tif.pages[0].compression.name.lower().startswith(kind[:3])
    files["plain"] = d / "plain.tif"
    tifffile.imwrite(files["plain"], img8)
    return files


@pytest.mark.parametrize("kind", COMPRESSIONS)
def test_compressed_tiffs_are_read(compressed, kind):
    plain = read_image(compressed["plain"]).astype(float)
    data = read_image(compressed[kind])
    assert image_info(compressed[kind]) == ((128, 128), np.dtype(np.uint8))
    if kind == "jpeg":  # lossy
        assert np.abs(data - plain).mean() < 3
    else:
        assert np.array_equal(data, plain)


def test_cli_predicts_compressed_tiffs(compressed, tmp_path):
    model = tmp_path / "tiny.keras"
    UNet.new(UNetConfig(depth=2, base_filters=4)).save(model)
    out = tmp_path / "out"
    proc = cli("predict", *(compressed[k] for k in COMPRESSIONS), "--model", model, "--out", out)
    assert proc.returncode == 0, proc.stderr
    for kind in COMPRESSIONS:
        assert tifffile.imread(out / f"{kind}_labels.tif").shape == (128, 128)


def test_the_training_set_reader_reads_compressed_images(compressed, tmp_path):
    from napari_unet._reader import get_reader
    from napari_unet.core.files.training_sets import Entry, write_training_set

    img = read_image(compressed["plain"])
    ann = np.zeros(img.shape, np.uint8)
    ann[:10], ann[50:60, 50:60] = 1, 2
    folder = tmp_path / "set"
    write_training_set(folder, [Entry("cells", img, ann)])
    for path in (folder / "images").iterdir():  # as Fiji would save it again
        tifffile.imwrite(path, tifffile.imread(path), compression="lzw")
    layers = get_reader(str(folder))(str(folder))
    assert np.array_equal(np.asarray(layers[0][0]), img)


# --------------------------------------------------------------------------- damaged TIFF
def damaged_tiff(path: Path, h: int = 200_000, w: int = 200_000, size: int = 150) -> Path:
    """A TIFF cut short: its header promises ``h × w`` 8-bit pixels, the file has
    ``size`` bytes."""
    tags = [(256, 4, w), (257, 4, h), (258, 3, 8), (259, 3, 1), (262, 3, 1),
            (273, 4, 0), (277, 3, 1), (278, 4, h), (279, 4, 0)]  # fmt: skip
    start = 8 + 2 + 12 * len(tags) + 4
    raw = b"II*\x00" + struct.pack("<IH", 8, len(tags))
    for tag, kind, value in tags:
        value = {273: start, 279: size - start}.get(tag, value)
        packed = struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value)
        raw += struct.pack("<HHI", tag, kind, 1) + packed
    raw += struct.pack("<I", 0)
    path.write_bytes(raw + b"\x00" * (size - len(raw)))
    return path


def test_a_damaged_tiff_is_called_damaged_not_too_large(tmp_path):
    path = damaged_tiff(tmp_path / "cut.tif")
    for read in (image_info, read_image):
        with pytest.raises(UserInputError, match="cut.tif is damaged.*200000×200000.*150 bytes"):
            read(path)
    out = tmp_path / "out"
    line = assert_user_error(cli("predict", path, "--out", out), "damaged", "copy")
    assert "disk space" not in line
    # a file cut inside its tags: tifffile logs each tag it cannot read, which the one
    # line leaves unsaid
    whole = tmp_path / "whole.tif"
    tifffile.imwrite(whole, np.zeros((64, 64), np.uint8))
    (tmp_path / "tags.tif").write_bytes(whole.read_bytes()[:200])
    assert_user_error(cli("predict", tmp_path / "tags.tif", "--out", out), "tags.tif is damaged")


def test_a_one_bit_tiff_is_read_and_one_cut_short_is_damaged(tmp_path):
    """A bilevel TIFF (a mask saved as 1 bit per pixel) holds an eighth of its decoded
    bytes: it is whole, not damaged; the same file cut short is."""
    mask = np.zeros((64, 64), bool)
    mask[10:30, 12:40] = True
    path = tmp_path / "mask.tif"
    tifffile.imwrite(path, mask)
    with tifffile.TiffFile(path) as tif:
        assert tif.pages[0].bitspersample == 1  # stored as bits
    for read in (image_info, read_image):
        read(path)
    np.testing.assert_array_equal(read_image(path), mask)
    cut = tmp_path / "cut.tif"
    cut.write_bytes(path.read_bytes()[:-300])
    with pytest.raises(UserInputError, match="cut.tif is damaged"):
        image_info(cut)


# --------------------------------------------------------------------------- free space
@pytest.fixture
def tiny_disk(small_disk):
    """A 2 MB file system (tmpfs), to fill up."""
    return small_disk(2 << 20)


def test_model_size_estimate_covers_the_bundled_model():
    from napari_unet.core.network.model_file import default_model_path

    path = default_model_path()
    if not path.exists():
        pytest.skip("bundled model not installed")
    size = path.stat().st_size
    assert size <= model_file_bytes(UNetConfig()) <= 1.5 * size


def test_cli_train_checks_free_space_before_training(tiny_disk, small_image):
    out = tiny_disk / "m.keras"
    args = ["train", "--image", small_image, "--mask", small_image, "--out", out]
    line = assert_user_error(
        cli(*args, "--init", "none", "--depth", "4", "--base-filters", "16"),
        "not enough disk space",
        "trained model",
    )
    assert "epoch" not in line
    assert list(tiny_disk.iterdir()) == []


# --------------------------------------------------------------------------- full disk
def _fill_with_chunks(folder: Path) -> None:
    """Assign an array of 64 uncompressed 256 kB chunks into ``folder`` on a 2 MB disk:
    zarr writes them concurrently and the first ENOSPC reaches us while the other
    writes are still queued (as when a block's results fill the disk)."""
    import zarr

    z = zarr.open_array(
        str(folder / "kept.zarr"),
        mode="w",
        shape=(64, 256, 256),
        chunks=(1, 256, 256),
        dtype=np.uint32,
        zarr_format=2,
        compressor=None,
        fill_value=0,
    )
    with pytest.raises(OSError) as err:
        z[:] = np.random.default_rng(0).integers(1, 1000, z.shape, dtype=np.uint32)
    assert err.value.errno == 28  # no space left on device


def test_a_work_folder_is_gone_after_a_full_disk_even_with_writes_in_flight(tiny_disk):
    """The race behind a hidden work folder left in --out: removing it while zarr's
    queued chunk writes go on lets them recreate it (the removal frees the disk)."""
    from napari_unet.core.files.outputs import AtomicWrite, remove_folder, settle_zarr_writes

    work = tiny_disk / ".img.napari-unet-work"
    work.mkdir()
    _fill_with_chunks(work)
    remove_folder(work)
    settle_zarr_writes()  # whatever was still queued has run now
    assert list(tiny_disk.iterdir()) == []

    outputs = AtomicWrite(tiny_disk / "img_labels.zarr", folder=True)
    _fill_with_chunks(outputs.temps[0])
    outputs.discard()
    settle_zarr_writes()
    assert list(tiny_disk.iterdir()) == []


def test_a_large_prediction_that_fills_the_disk_leaves_nothing_of_ours(tiny_disk):
    import dask.array as da

    net = UNet.new(UNetConfig(depth=1, base_filters=2))
    img = np.random.default_rng(0).random((1024, 1024)).astype(np.float32)
    with pytest.raises(OSError):
        net.predict_dask(
            da.from_array(img, chunks=256), out=tiny_disk / "res", block_size=256, diameter=None
        )
    from napari_unet.core.files.outputs import settle_zarr_writes

    settle_zarr_writes()
    assert list(tiny_disk.rglob("*")) == [tiny_disk / "res"]  # the folder asked for, empty


def test_predict_reads_a_stained_slide_as_its_haematoxylin_and_says_so(tmp_path):
    # scikit-image's IHC slide (no known copyright restrictions) as a PNG: the default
    # model segments its nuclei, in memory and block by block alike, and the line says
    # which colours it read; a grey picture's line does not
    import imageio.v3 as iio
    from helpers import write_aperio_slide
    from skimage import data

    slide = data.immunohistochemistry()[:256, 256:]
    iio.imwrite(tmp_path / "slide.png", slide)
    iio.imwrite(tmp_path / "grey.png", slide.mean(-1).astype(np.uint8))
    # the same slide from a slide scanner (an Aperio .svs pyramid, JPEG tiles): read at
    # full resolution, named after the file
    write_aperio_slide(tmp_path / "scan.svs", slide, levels=3)

    def lines(proc) -> dict[str, str]:
        """Each image's line of the output, by file name."""
        assert proc.returncode == 0, proc.stderr
        return {
            name: line
            for line in proc.stdout.splitlines()
            for name in ("slide.png", "grey.png", "scan.svs")
            if line.lstrip().startswith(f"{name}: ")
        }

    def count(line: str) -> int:
        return int(line.split(": ")[1].split(" objects")[0])

    tiff = lines(
        cli(
            "predict",
            *(tmp_path / n for n in ("slide.png", "grey.png", "scan.svs")),
            "--out",
            tmp_path / "tiff",
        )
    )
    zarr = lines(
        cli("predict", tmp_path / "slide.png", "--out", tmp_path / "zarr", "--format", "zarr")
    )
    for line in (tiff["slide.png"], tiff["scan.svs"], zarr["slide.png"]):
        assert "a stained slide, its haematoxylin segmented" in line, line
    assert "haematoxylin" not in tiff["grey.png"], tiff["grey.png"]
    n = count(tiff["slide.png"])
    assert n > 30 and abs(n - count(zarr["slide.png"])) <= 0.1 * n
    assert abs(count(tiff["scan.svs"]) - n) <= 0.15 * n
    assert tifffile.imread(tmp_path / "tiff" / "scan_labels.tif").shape == slide.shape[:2]
