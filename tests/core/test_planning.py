"""core/jobs/planning.py: the decisions the command line and the widgets share, without Qt."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_unet.core import TrainConfig, TrainingPair, UNetConfig, UserInputError
from napari_unet.core.errors import ConfigError, DefaultModelMissing
from napari_unet.core.jobs.planning import (
    ModelSpec,
    check_model_target,
    check_training_pairs,
    load_training_pairs,
    model_file,
    plan_network,
    resolve_model,
)


@pytest.fixture
def no_default_model(monkeypatch, tmp_path):
    monkeypatch.setenv("NAPARI_UNET_DEFAULT_MODEL", str(tmp_path / "absent.keras"))


def test_command_line_words_name_a_model():
    assert ModelSpec.parse(None).kind == "default"
    assert ModelSpec.parse("none", depth=2, base_filters=4).architecture == UNetConfig(
        depth=2, base_filters=4
    )
    assert ModelSpec.parse("my.keras").path == "my.keras"
    with pytest.raises(UserInputError, match="only apply to a new network"):
        ModelSpec.parse("my.keras", depth=2)
    with pytest.raises(ConfigError) as e:
        ModelSpec.parse("none", depth=9)
    assert e.value.field == "depth"
    with pytest.raises(UserInputError, match="unknown model choice"):
        ModelSpec("bundled")


def test_a_bundled_model_is_named_by_its_name_and_a_file_of_that_name_wins(
    tmp_path, monkeypatch, tiny_net
):
    from napari_unet.core.network.model_file import BUNDLED_MODELS, DEFAULT_MODEL_NAME

    assert DEFAULT_MODEL_NAME == "generalist" and set(BUNDLED_MODELS) == {"generalist", "nuclei"}
    assert BUNDLED_MODELS["nuclei"].name == "default_nuclei.keras"
    nuclei = ModelSpec.parse("nuclei")
    assert nuclei.kind == "file" and nuclei.path == str(BUNDLED_MODELS["nuclei"])
    assert nuclei.describe() == "bundled nuclei model"
    assert ModelSpec.parse(None).describe() == "bundled generalist model"
    path, meta = model_file("nuclei")
    assert path == BUNDLED_MODELS["nuclei"] and meta.classes
    assert plan_network(nuclei).metadata.architecture == meta.architecture
    # an unknown word: one line that names the bundled models
    for words in (lambda w: ModelSpec.parse(w), model_file):
        with pytest.raises(UserInputError) as e:
            words("nucleus")
        assert "\n" not in str(e.value)
        assert "'nucleus' is neither a model file nor a bundled model" in str(e.value)
        assert "generalist (the default), nuclei" in str(e.value)
    # something that looks like a file is a file: said missing as before
    with pytest.raises(UserInputError, match="model file not found"):
        model_file("nucleus.keras")
    # a file that exists wins over a bundled model's name
    monkeypatch.chdir(tmp_path)
    tiny_net.save(tmp_path / "mine.keras")
    (tmp_path / "mine.keras").rename(tmp_path / "nuclei")
    assert ModelSpec.parse("nuclei") == ModelSpec("file", path="nuclei")
    assert model_file("nuclei")[0] == Path("nuclei")
    assert model_file("nuclei")[1].architecture["base_filters"] == tiny_net.config.base_filters


def test_a_bundled_model_not_installed_is_said_by_name(tmp_path, monkeypatch):
    from napari_unet.core.errors import ModelFileError
    from napari_unet.core.network.model_file import BUNDLED_MODELS

    monkeypatch.setitem(BUNDLED_MODELS, "nuclei", tmp_path / "gone.keras")
    for name in ("nuclei", "generalist"):
        if BUNDLED_MODELS[name].exists():
            continue
        with pytest.raises(ModelFileError, match=f"bundled {name} model .*not installed"):
            model_file(name)
        with pytest.raises(ModelFileError, match=f"bundled {name} model .*not installed"):
            ModelSpec.parse(name)


def test_a_missing_default_model_is_one_error_and_training_starts_new(no_default_model):
    with pytest.raises(DefaultModelMissing, match="bundled generalist model .* not installed"):
        model_file(None)
    with pytest.raises(DefaultModelMissing, match="not installed"):
        model_file("default")
    with pytest.raises(DefaultModelMissing, match="not installed"):
        resolve_model(ModelSpec("default"))
    arch = UNetConfig(depth=2, base_filters=4)
    plan = plan_network(ModelSpec.parse("default", depth=2, base_filters=4))
    assert plan.spec.kind == "new" and plan.config == arch and "scratch" in plan.notice


def test_plan_patch_size_from_the_model_and_its_depth():
    plan = plan_network(ModelSpec("new", architecture=UNetConfig(depth=3)))
    assert plan.train_config().patch_size == TrainConfig().patch_size
    with pytest.raises(ConfigError, match="multiple of 8") as e:
        plan.train_config(patch_size=36)
    assert e.value.field == "patch_size"
    with pytest.raises(ConfigError) as e:
        plan.train_config(batch_size=0)
    assert e.value.field == "batch_size" and "from 1 to 256" in e.value.problem
    assert "3 images" in plan.summary(plan.train_config(), 3)


def test_training_pairs_are_refused_before_any_work(tmp_path):
    img = np.zeros((32, 32), np.float32)
    ann = np.zeros((32, 32), np.uint8)
    with pytest.raises(UserInputError, match="empty"):
        check_training_pairs([TrainingPair(img, annotation=ann, name="a")], 1)
    ann[:4] = 1
    with pytest.raises(UserInputError, match="no object"):
        check_training_pairs([TrainingPair(img, annotation=ann, name="a")], 1)
    # together two annotations may hold both kinds
    other = np.where(ann == 1, 2, 0).astype(np.uint8)
    pairs = [TrainingPair(img, annotation=ann, name="a"), TrainingPair(img, annotation=other)]
    check_training_pairs(pairs, 1)
    with pytest.raises(UserInputError, match=r"differ.*2D and 3D"):
        check_training_pairs([TrainingPair(img, mask=np.ones((2, 32, 32), np.uint16))], 1)
    with pytest.raises(UserInputError, match="no background"):
        check_training_pairs([TrainingPair(img, mask=np.ones((32, 32), np.uint16))], 1)

    # from files, with NaN pixels said
    img[3, 3] = np.nan
    tifffile.imwrite(tmp_path / "i.tif", img)
    tifffile.imwrite(
        tmp_path / "a.tif", np.where(np.arange(32) < 16, 1, 2).astype(np.uint8)[None].repeat(32, 0)
    )
    heard = []
    (pair,) = load_training_pairs(
        [(tmp_path / "i.tif", "annotation", tmp_path / "a.tif")], 1, heard.append
    )
    assert pair.name == "i.tif" and pair.kind == "annotation"
    assert heard == ["i.tif: 1 pixel is NaN or infinite; it was read as background"]


def test_model_target_is_checked_before_training(tmp_path):
    assert check_model_target(tmp_path / "m.keras") == tmp_path / "m.keras"
    with pytest.raises(UserInputError, match=".keras"):
        check_model_target(tmp_path / "m.h5")
    with pytest.raises(UserInputError, match="does not exist"):
        check_model_target(tmp_path / "no" / "m.keras")
    (tmp_path / "m.keras").write_text("mine")
    with pytest.raises(UserInputError, match="already exists"):
        check_model_target(tmp_path / "m.keras")
    assert check_model_target(tmp_path / "m.keras", overwrite=True)


# --------------------------------------------------------------------------- saving
def _no_jargon(message: str) -> None:
    for word in ("Errno", "Error:", "Traceback", "requested and"):
        assert word not in message, message


@pytest.fixture
def tiny_net():
    from napari_unet.core import UNet

    return UNet.new(UNetConfig(depth=1, base_filters=2), seed=0)


def test_a_model_file_is_replaced_only_when_asked_and_the_bundled_one_never(
    tmp_path, monkeypatch, tiny_net
):
    from napari_unet.core.jobs.planning import save_model_as

    bundled = tmp_path / "bundled.keras"
    tiny_net.save(bundled)
    monkeypatch.setenv("NAPARI_UNET_DEFAULT_MODEL", str(bundled))
    before = bundled.read_bytes()
    from napari_unet.core.network.model_file import BUNDLED_MODELS

    nuclei = BUNDLED_MODELS["nuclei"]
    stamp = nuclei.stat().st_mtime_ns, nuclei.stat().st_size
    for overwrite in (False, True):
        with pytest.raises(UserInputError, match="the default model .* never replaced"):
            save_model_as(tiny_net, None, bundled, overwrite=overwrite)
        with pytest.raises(UserInputError, match="never replaced"):
            check_model_target(bundled, overwrite=overwrite)
        # every bundled model, not only the default one
        with pytest.raises(UserInputError, match="bundled nuclei model .* never replaced"):
            save_model_as(tiny_net, None, nuclei, overwrite=overwrite)
        with pytest.raises(UserInputError, match="bundled nuclei model .* never replaced"):
            check_model_target(nuclei, overwrite=overwrite)
    assert bundled.read_bytes() == before
    assert (nuclei.stat().st_mtime_ns, nuclei.stat().st_size) == stamp
    mine = tmp_path / "mine.keras"
    mine.write_bytes(b"a model the person saved")
    with pytest.raises(UserInputError, match="already exists .* confirm"):
        save_model_as(tiny_net, None, mine)
    assert mine.read_bytes() == b"a model the person saved"
    assert save_model_as(tiny_net, None, mine, overwrite=True) == mine
    assert mine.stat().st_size > 1000
    # a model still to be loaded saved onto its own file: nothing to do, nothing asked
    assert save_model_as(None, mine, mine) == mine


def test_failed_model_saves_say_what_to_do_and_keep_the_model(tmp_path, small_disk, tiny_net):
    from napari_unet.core.jobs.planning import save_model_as

    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    with pytest.raises(UserInputError) as e:
        save_model_as(tiny_net, None, a_file / "m.keras")
    assert "not a folder" in str(e.value) and "choose another folder" in str(e.value)
    _no_jargon(str(e.value))
    for disk, said in (
        (small_disk(1 << 20, read_only=True), "Read-only file system"),
        (small_disk(16 * 1024), "No space left on device"),
    ):
        with pytest.raises(UserInputError) as e:
            save_model_as(tiny_net, None, disk / "m.keras")
        text = str(e.value)
        assert said in text and "save it somewhere else" in text, text
        _no_jargon(text)
        assert list(disk.iterdir()) == []  # nothing half-written
    # the model is still here and saves elsewhere
    assert save_model_as(tiny_net, None, tmp_path / "m.keras").is_file()


def test_training_set_saves_check_free_space_and_fail_plainly(tmp_path, small_disk, tiny_net):
    from napari_unet.core.files.training_sets import Entry, write_training_set

    ann = np.ones((64, 64), np.uint8)
    ann[20:40, 20:40] = 2
    entry = Entry("cells", np.random.default_rng(0).random((64, 64), np.float32), ann)
    # an image far larger than any disk (no memory behind it): refused before a byte
    huge = Entry(
        "huge",
        np.broadcast_to(np.float32(0), (400_000, 400_000)),
        np.broadcast_to(np.uint8(1), (400_000, 400_000)),
    )
    with pytest.raises(UserInputError, match="not enough disk space .* free some space"):
        write_training_set(tmp_path / "set", [huge])
    assert not (tmp_path / "set").exists()
    # a disk nearly full: the free-space check refuses, nothing is left
    full = small_disk(256 * 1024)
    with pytest.raises(UserInputError, match="not enough disk space"):
        write_training_set(full / "set", [entry], model=tiny_net)
    assert list(full.iterdir()) == []
    # a read-only disk: the write fails in plain words, nothing is left
    ro = small_disk(8 << 20, read_only=True)
    with pytest.raises(UserInputError) as e:
        write_training_set(ro / "set", [entry], model=tiny_net)
    text = str(e.value)
    assert "could not save the training set" in text and "somewhere else" in text, text
    _no_jargon(text)
    assert write_training_set(tmp_path / "ok", [entry], model=tiny_net)
