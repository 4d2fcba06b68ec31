"""Bad input and faults against the core and the files (issue 9's battery, in process).

Nothing the user made is lost, nothing is read outside a training-set folder, a
non-finite model is never saved or loaded, damaged files get a plain message.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tifffile
from helpers import write_aperio_slide

from napari_unet.core import ModelFileError, TrainingFailed, UserInputError
from napari_unet.core.files.training_sets import (
    INDEX_NAME,
    Entry,
    read_training_set,
    write_training_set,
)
from napari_unet.core.normalize import nonfinite_pixels, normalize_image, percentiles

SECRET = "TOP-SECRET-CONTENT"


# ---------------------------------------------------------------------- training sets
def entries(n=1, size=32):
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        ann = np.zeros((size, size), np.uint8)
        ann[:4] = 1
        ann[10:14, 10:14] = 2
        out.append(Entry(f"img{i}", rng.random((size, size)).astype(np.float32), ann))
    return out


def test_saving_into_an_existing_set_keeps_the_users_other_files(tmp_path):
    ts = tmp_path / "my_set"
    write_training_set(ts, entries(3))
    (ts / "notes.txt").write_text("my notes")
    (ts / "analysis").mkdir()
    (ts / "analysis" / "figure.csv").write_text("a,b\n1,2\n")
    (ts / "images" / "my_own_image.tif").write_bytes(b"not ours")

    written = write_training_set(ts, entries(1))
    assert (ts / "notes.txt").read_text() == "my notes"
    assert (ts / "analysis" / "figure.csv").read_text() == "a,b\n1,2\n"
    assert (ts / "images" / "my_own_image.tif").read_bytes() == b"not ours"
    # the set itself was replaced: one pair now, the two stale pairs removed
    back = read_training_set(ts)
    assert [e.name for e in back.entries] == ["img0"]
    assert sorted(p.name for p in (ts / "images").iterdir()) == [
        "00_img0.tif",
        "my_own_image.tif",
    ]
    assert all(Path(p).is_file() for p in written)
    assert not list(ts.rglob(".*"))  # no temporary left, in the subfolders neither


def test_saving_refuses_a_set_whose_subfolder_leads_outside(tmp_path):
    ts = tmp_path / "my_set"
    write_training_set(ts, entries(1))
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    shutil.rmtree(ts / "images")
    (ts / "images").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UserInputError, match="not a plain folder"):
        write_training_set(ts, entries(1))
    assert list(outside.iterdir()) == []


def _edit_index(ts: Path, edit) -> None:
    index = json.loads((ts / INDEX_NAME).read_text())
    edit(index)
    (ts / INDEX_NAME).write_text(json.dumps(index))


@pytest.fixture
def secret_and_set(tmp_path):
    secret = tmp_path / "secret.tif"
    tifffile.imwrite(secret, np.full((32, 32), 7, np.uint8))
    text_secret = tmp_path / "passwd"
    text_secret.write_text(SECRET + "\n" * 10)
    ts = tmp_path / "set"
    write_training_set(ts, entries(1))
    return ts, secret, text_secret


@pytest.mark.parametrize(
    "where",
    ["parent", "absolute", "absolute_text", "symlink", "model", "model_symlink", "dotdot_deep"],
)
def test_training_set_never_reads_outside_its_folder(secret_and_set, where):
    ts, secret, text_secret = secret_and_set
    if where == "parent":
        _edit_index(ts, lambda i: i["pairs"][0].update(image="../secret.tif"))
    elif where == "absolute":
        _edit_index(ts, lambda i: i["pairs"][0].update(image=str(secret)))
    elif where == "absolute_text":
        _edit_index(ts, lambda i: i["pairs"][0].update(annotation=str(text_secret)))
    elif where == "symlink":
        (ts / "images" / "link.tif").symlink_to(secret)
        _edit_index(ts, lambda i: i["pairs"][0].update(image="images/link.tif"))
    elif where == "model":
        shutil.copyfile(secret, ts.parent / "other.keras")
        _edit_index(ts, lambda i: i.update(model="../other.keras"))
    elif where == "model_symlink":
        (ts / "model.keras").symlink_to(text_secret)
        _edit_index(ts, lambda i: i.update(model="model.keras"))
    elif where == "dotdot_deep":
        _edit_index(ts, lambda i: i["pairs"][0].update(image="images/../../secret.tif"))
    with pytest.raises(UserInputError, match="outside|link") as err:
        read_training_set(ts)
    assert SECRET not in str(err.value)


@pytest.mark.parametrize(
    "edit, fragment",
    [
        (lambda i: i.update(pairs=["x"]), "damaged"),
        (lambda i: i.update(pairs="x"), "damaged"),
        (lambda i: i.update(pairs=[{"image": 3, "annotation": None}]), "outside"),
        (lambda i: i.update(format_version="one"), "damaged"),
        (lambda i: i["pairs"][0].pop("annotation"), "damaged"),
    ],
)
def test_a_broken_index_gets_a_plain_message(tmp_path, edit, fragment):
    ts = tmp_path / "set"
    write_training_set(ts, entries(1))
    _edit_index(ts, edit)
    with pytest.raises(UserInputError, match=fragment):
        read_training_set(ts)


def test_a_member_that_is_not_a_tiff_is_not_echoed(tmp_path):
    ts = tmp_path / "set"
    write_training_set(ts, entries(1))
    (ts / "images" / "00_img0.tif").write_text(SECRET)
    with pytest.raises(UserInputError, match="cannot read") as err:
        read_training_set(ts)
    assert SECRET not in str(err.value)


def test_a_deleted_model_file_still_opens_the_set(tmp_path):
    ts = tmp_path / "set"
    write_training_set(ts, entries(1), model_file=_tiny_model_file(tmp_path))
    (ts / "model.keras").unlink()
    assert read_training_set(ts).model_path is None


# ---------------------------------------------------------------------- pixels
def test_nan_and_inf_pixels_do_not_poison_normalisation():
    rng = np.random.default_rng(0)
    img = rng.random((64, 64, 1)).astype(np.float32) * 100
    clean_lo, clean_hi = percentiles(img)
    bad = img.copy()
    bad[10] = np.nan
    bad[20, 5] = np.inf
    bad[30, 7] = -np.inf
    assert nonfinite_pixels(bad) == 64 + 2
    assert nonfinite_pixels(np.zeros((4, 4), np.uint8)) == 0
    lo, hi = percentiles(bad)
    assert np.isfinite([lo, hi]).all()
    assert abs(float(lo[0] - clean_lo[0])) < 2 and abs(float(hi[0] - clean_hi[0])) < 2
    out = normalize_image(bad)
    assert np.isfinite(out).all() and (out[10] == 0).all()


def test_prediction_of_an_image_with_nan_rows_is_finite_and_unchanged_elsewhere(sample_image):
    from napari_unet.core import UNet, evaluate

    net = UNet.default()
    img = sample_image[:256, :256].astype(np.float32)
    ref = net.predict(img, diameter=None)
    bad = img.copy()
    bad[100] = np.nan
    bad[50, 50] = np.inf
    pred = net.predict(bad, diameter=None)
    assert np.isfinite(pred.probability).all()
    assert pred.labels.max() > 10
    assert evaluate(pred.labels, ref.labels)["f1"] > 0.85


# ---------------------------------------------------------------------- model files
def _tiny_model_file(tmp_path: Path) -> Path:
    from napari_unet.core import UNet, UNetConfig

    path = tmp_path / "tiny.keras"
    if not path.exists():
        UNet.new(UNetConfig(depth=2, base_filters=4)).save(path)
    return path


def _rewrite_metadata(src: Path, dst: Path, edit=None, raw: bytes | None = None) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "napari_unet.json":
                if raw is not None:
                    data = raw
                else:
                    meta = json.loads(data)
                    edit(meta)
                    data = json.dumps(meta).encode()
            zout.writestr(item.filename, data)
    return dst


@pytest.mark.parametrize(
    "edit, fragment",
    [
        (lambda m: m["architecture"].update(depth=2.5), "depth"),
        (lambda m: m["architecture"].update(depth="4"), "depth"),
        (lambda m: m.update(architecture=[1, 2]), "architecture"),
        (lambda m: m.update(format_version="x"), "format_version"),
        (lambda m: m.update(normalization="percentile"), "normalization"),
        (lambda m: m["architecture"].update(base_filters=1_000_000), "base_filters"),
        (lambda m: m["architecture"].update(batch_norm="yes"), "batch_norm"),
        (lambda m: m.update(object_diameter="big"), "object_diameter"),
        (lambda m: m.update(taught_scale="x"), "taught_scale"),
        (lambda m: m.update(taught_scale=1e9), "taught_scale"),
        (lambda m: m.update(width_measure="outline"), "width_measure"),
    ],
)
def test_edited_metadata_is_refused_with_a_message(tmp_path, edit, fragment):
    from napari_unet.core import UNet
    from napari_unet.core.network.model_file import read_metadata

    bad = _rewrite_metadata(_tiny_model_file(tmp_path), tmp_path / "edited.keras", edit)
    with pytest.raises(ModelFileError, match=fragment):
        read_metadata(bad)
    with pytest.raises(ModelFileError, match=fragment):
        UNet.load(bad)


def test_a_metadata_bomb_is_refused_unread(tmp_path):
    from napari_unet.core.network.model_file import MAX_JSON_BYTES, read_metadata

    big = b'{"format": "napari-unet-model", "pad": "' + b" " * (MAX_JSON_BYTES + 10) + b'"}'
    bomb = _rewrite_metadata(_tiny_model_file(tmp_path), tmp_path / "bomb.keras", raw=big)
    assert bomb.stat().st_size < 1_000_000  # compresses to almost nothing
    with pytest.raises(ModelFileError, match="implausibly large"):
        read_metadata(bomb)


def test_non_finite_weights_are_never_saved_nor_loaded(tmp_path):
    from napari_unet.core import UNet

    good = _tiny_model_file(tmp_path)
    net = UNet.load(good)
    weights = net.keras_model.get_weights()
    weights[0] = np.full_like(weights[0], np.nan)
    net.keras_model.set_weights(weights)
    before = good.read_bytes()
    with pytest.raises(ModelFileError, match="not finite"):
        net.save(good)
    assert good.read_bytes() == before  # the working model is untouched
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []

    # a file holding NaN weights (written by something else) is refused on load
    from napari_unet.core.network.architecture import build_unet
    from napari_unet.core.network.model_file import save_keras_with_metadata

    twin = build_unet(net.config, dtype_policy="float32")
    twin.set_weights(net.keras_model.get_weights())
    nan_file = tmp_path / "nan.keras"
    with zipfile.ZipFile(good) as z:
        meta = json.loads(z.read("napari_unet.json"))
    twin.save(tmp_path / "raw.keras")
    shutil.copyfile(tmp_path / "raw.keras", nan_file)
    with zipfile.ZipFile(nan_file, "a") as z:
        z.writestr("napari_unet.json", json.dumps(meta))
    with pytest.raises(ModelFileError, match="not finite"):
        UNet.load(nan_file)
    assert callable(save_keras_with_metadata)


def test_a_training_that_diverges_at_once_fails_and_changes_nothing(tmp_path, blobs):
    from napari_unet.core import TrainConfig, TrainingPair, UNet

    net = UNet.load(_tiny_model_file(tmp_path))
    weights = net.keras_model.get_weights()
    weights[-2] = np.full_like(weights[-2], np.nan)  # the output layer: loss NaN at step 1
    net.keras_model.set_weights(weights)
    image, mask = blobs
    cfg = TrainConfig(epochs=2, steps_per_epoch=2, patch_size=32, batch_size=2, seed=1)
    with pytest.raises(TrainingFailed, match="not a number"):
        net.train([TrainingPair(image, mask=mask)], cfg)
    after = net.keras_model.get_weights()
    assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(weights, after, strict=True))


def test_the_save_error_names_the_folder_not_a_hidden_file(tmp_path):
    from napari_unet.core import UNet

    net = UNet.load(_tiny_model_file(tmp_path))
    ro = tmp_path / "readonly"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as root: permissions are not enforced")
        with pytest.raises(OSError) as err:
            net.save(ro / "m.keras")
        assert str(ro) in str(err.value) and "/." not in str(err.value)
    finally:
        ro.chmod(0o700)


# ---------------------------------------------------------------------- image files
def test_png_grey_plus_alpha_is_one_plane(tmp_path):
    import imageio.v3 as iio

    from napari_unet.core.files.images import image_info, read_image

    la = np.zeros((40, 50, 2), np.uint8)
    la[..., 0] = 100
    la[..., 1] = 255
    iio.imwrite(tmp_path / "grey_alpha.png", la)
    img = read_image(tmp_path / "grey_alpha.png")
    assert img.shape == (40, 50) and int(img.max()) == 100
    assert image_info(tmp_path / "grey_alpha.png")[0] == (40, 50)


def test_truncated_and_lying_tiffs_get_a_plain_message(tmp_path):
    from napari_unet.core.files.images import open_lazy

    full = tmp_path / "full.tif"
    tifffile.imwrite(full, np.ones((500, 400), np.uint16))
    cut = tmp_path / "cut.tif"
    cut.write_bytes(full.read_bytes()[:100_000])
    with pytest.raises(UserInputError, match="truncated|damaged"):
        open_lazy(cut)[0:10]

    # a tiny file whose header claims a huge compressed image
    liar = tmp_path / "liar.tif"
    tifffile.imwrite(liar, np.ones((64, 64), np.uint8), compression="zlib")
    data = bytearray(liar.read_bytes())
    with tifffile.TiffFile(liar) as tif:
        tags = tif.pages[0].tags
        for name in ("ImageWidth", "ImageLength"):
            tag = tags[name]
            fmt = "<I" if tag.dtype == 4 else "<H"
            import struct

            struct.pack_into(fmt, data, tag.valueoffset, 50000)
    liar.write_bytes(bytes(data[:400]))
    with pytest.raises(UserInputError):
        lazy = open_lazy(liar)
        lazy[0:256, 0:256]


def test_outputs_we_wrote_may_be_replaced_others_not(tmp_path):
    from napari_unet.core.files.outputs import refuse_to_replace, write_tiff_atomic, written_by_us

    ours = tmp_path / "a_labels.tif"
    write_tiff_atomic(ours, np.zeros((8, 8), np.uint16))
    assert written_by_us(ours)
    refuse_to_replace([ours, tmp_path / "absent.tif"])  # fine
    theirs = tmp_path / "b_labels.tif"
    tifffile.imwrite(theirs, np.ones((8, 8), np.uint16))
    assert not written_by_us(theirs)
    with pytest.raises(UserInputError, match="--overwrite"):
        refuse_to_replace([theirs])


def test_atomic_write_renames_all_or_nothing_and_names_the_target(tmp_path):
    """The one "temporary beside the target, then rename" every output goes through."""
    from napari_unet.core.files.outputs import AtomicWrite

    kept = tmp_path / "kept.txt"
    kept.write_text("the user's")
    new = tmp_path / "new.txt"
    with pytest.raises(RuntimeError), AtomicWrite(new, kept) as (tmp_new, tmp_kept):
        assert tmp_new.parent == tmp_path and tmp_new.name.startswith(".new.txt.")
        assert tmp_new.name.endswith(".txt")  # writers that go by the extension accept it
        tmp_new.write_text("a")
        tmp_kept.write_text("b")
        raise RuntimeError("interrupted")
    assert kept.read_text() == "the user's" and not new.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.txt"]

    # an error about a hidden temporary names the file the person asked for
    with pytest.raises(OSError) as err, AtomicWrite(new) as (tmp,):
        raise OSError(28, "No space left on device", str(tmp))
    assert err.value.filename == str(new) and err.value.errno == 28

    with AtomicWrite(new, kept) as (tmp_new, tmp_kept):
        tmp_new.write_text("a")
        tmp_kept.write_text("b")
    assert (new.read_text(), kept.read_text()) == ("a", "b")
    umask = os.umask(0)
    os.umask(umask)
    assert new.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's owner-only

    folder = tmp_path / "set"
    with AtomicWrite(folder, folder=True) as (tmp,):
        (tmp / "inside.txt").write_text("c")
    assert (folder / "inside.txt").read_text() == "c"
    assert folder.stat().st_mode & 0o777 == 0o777 & ~umask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.txt", "new.txt", "set"]


@pytest.fixture
def tiny_disk(small_disk):
    """A 2 MB file system (tmpfs), to fill up."""
    return small_disk(2 << 20)


def test_a_full_disk_fails_up_front_not_with_sigbus(tiny_disk):
    from napari_unet.core.files.outputs import BlockwiseTiffs, check_free_space

    with pytest.raises(UserInputError, match="not enough disk space"):
        check_free_space(tiny_disk, 10_000_000)
    with pytest.raises(OSError) as err:
        BlockwiseTiffs([(tiny_disk / "big_labels.tif", (2000, 2000), np.dtype(np.float32))])
    assert "No space" in str(err.value) or err.value.errno == 28
    assert list(tiny_disk.iterdir()) == []  # no hidden .part left behind


def test_annotation_dtype_is_checked_when_saving(tmp_path):
    bad = entries(1)
    bad[0].annotation = bad[0].annotation.astype(np.float32)
    with pytest.raises(UserInputError, match="integer"):
        write_training_set(tmp_path / "set", bad)
    assert not (tmp_path / "set").exists()
    assert [p for p in tmp_path.iterdir()] == []


def test_a_slide_scanners_file_is_read_at_full_resolution(tmp_path):
    # an Aperio .svs: a pyramid whose levels tifffile (and zarr) list in no set order;
    # every reader takes the full resolution, napari gets every level
    from napari_unet.core.files.images import image_info, open_lazy, read_image, slide_levels

    rng = np.random.default_rng(0)
    rgb = (rng.random((384, 512, 3)) * 255).astype(np.uint8)
    write_aperio_slide(tmp_path / "slide.svs", rgb, levels=4)
    with tifffile.TiffFile(tmp_path / "slide.svs") as tif:
        assert tif.is_svs
        full = tif.series[0].levels[0].asarray()
    assert image_info(tmp_path / "slide.svs") == ((384, 512, 3), np.dtype(np.uint8))
    for _ in range(4):  # each opening lists the levels anew
        lazy = open_lazy(tmp_path / "slide.svs")
        assert lazy.shape == (384, 512, 3)
        np.testing.assert_array_equal(np.asarray(lazy[100:200, 300:400]), full[100:200, 300:400])
    np.testing.assert_array_equal(read_image(tmp_path / "slide.svs"), full)
    levels = slide_levels(tmp_path / "slide.svs")
    assert [lv.shape[:2] for lv in levels] == [(384, 512), (192, 256), (96, 128), (48, 64)]
    # an unreadable slide says so in one line; an unknown file type names the slides
    (tmp_path / "bad.ndpi").write_bytes(b"not a slide at all")
    with pytest.raises(UserInputError, match="bad.ndpi could not be read"):
        slide_levels(tmp_path / "bad.ndpi")
    (tmp_path / "x.mrxs").write_bytes(b"")
    with pytest.raises(UserInputError, match=r"\.svs, \.ndpi"):
        image_info(tmp_path / "x.mrxs")
