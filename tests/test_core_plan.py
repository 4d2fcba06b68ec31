"""core/plan.py: the decisions the command line and the widgets share, without Qt."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_unet.core import TrainConfig, TrainingPair, UNetConfig, UserInputError
from napari_unet.core.errors import ConfigError, DefaultModelMissing
from napari_unet.core.plan import (
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


def test_a_missing_default_model_is_one_error_and_training_starts_new(no_default_model):
    with pytest.raises(DefaultModelMissing, match="not installed"):
        model_file(None)
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
