"""A model's metadata, typed (:class:`ModelMetadata`): written and read in one place, the
model file's JSON of today (format version 1) and older files read, nothing lost."""

from __future__ import annotations

import hashlib
import json
import zipfile

import pytest
from helpers import with_metadata

from napari_unet.core.network.metadata import ModelMetadata
from napari_unet.core.network.model_file import BUNDLED_MODELS, FORMAT_VERSION, read_metadata

#: A model file of today, written by napari-unet (format version 1): the bundled nuclei model.
NUCLEI_MODEL = BUNDLED_MODELS["nuclei"]


def _file_json(path) -> dict:
    with zipfile.ZipFile(path) as z:
        return json.loads(z.read("napari_unet.json"))


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory):
    from napari_unet.core import UNet, UNetConfig

    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    UNet.new(UNetConfig(depth=1, base_filters=2), seed=0).save(path)
    return path


def test_a_record_goes_to_json_and_back_unchanged():
    meta = ModelMetadata(
        normalization={"method": "percentile", "low": 2.0, "high": 99.0},
        history={"loss": [1.0, 0.5]},
        training_runs=[{"epochs": 2, "data": [{"name": "a.tif"}]}],
        classes=["background", "nucleus", "boundary"],
        patch_size=64,
        object_diameter=12.5,
        width_measure="interior",
        postprocessing={"threshold": 0.4},
        description="nuclei",
        trained_by="a test",
        held_out_scores={"img": {"ap50": 0.9}},
        extra={"a_later_field": [1, 2]},
    )
    d = meta.to_dict()
    assert json.loads(json.dumps(d)) == d  # plain JSON, flat
    assert d["object_diameter"] == 12.5 and d["a_later_field"] == [1, 2]
    assert d["width_measure"] == "interior"
    assert "extra" not in d and "source_path" not in d and "format_version" not in d
    again = ModelMetadata.from_dict(d)
    assert again == meta
    # unknown fields are left out, not written as null
    assert "description" not in ModelMetadata().to_dict()


def test_a_version_1_file_of_today_migrates_to_typed_fields_and_writes_back_the_same():
    raw = _file_json(NUCLEI_MODEL)  # a bundled model: format version 1
    assert raw["format_version"] == 1 == FORMAT_VERSION
    meta = read_metadata(NUCLEI_MODEL)
    assert isinstance(meta, ModelMetadata) and meta.format_version == 1
    assert meta.object_diameter == raw["object_diameter"]
    assert meta.classes == raw["classes"] and meta.patch_size == raw["patch_size"]
    assert meta.architecture == raw["architecture"]
    assert meta.training_runs == raw["training_runs"]
    assert meta.normalization == raw["normalization"]
    # keys of its own this version has no field for stay, and the JSON written back has
    # the file's shape: nothing renamed, added or lost
    assert meta.extra == {"held_out_scores_note": raw["held_out_scores_note"]}
    written = meta.to_dict()
    assert written == {k: v for k, v in raw.items() if k not in ("format", "format_version")}
    # an untyped dict (a version-1 record in memory) migrates the same way
    assert ModelMetadata.from_dict(raw).to_dict() == written


def test_an_older_file_without_a_version_is_read(tiny_file, tmp_path):
    def old(m):
        del m["format_version"]
        del m["classes"]  # before classes were recorded

    path = with_metadata(tiny_file, tmp_path / "old.keras", old)
    meta = read_metadata(path)
    assert meta.format_version == 0 and meta.classes is None
    from napari_unet.core import UNet

    net = UNet.load(path)
    assert net.metadata.classes == ["background", "object", "boundary"]


def test_unknown_keys_survive_loading_and_saving(tiny_file, tmp_path):
    from napari_unet.core import UNet

    note = {"by": "a later napari-unet", "values": [1, 2, 3]}
    path = with_metadata(tiny_file, tmp_path / "later.keras", lambda m: m.update(note=note))
    net = UNet.load(path)
    assert net.metadata.extra == {"note": note}
    net.metadata.description = "edited here"
    saved = _file_json(net.save(tmp_path / "resaved.keras"))
    assert saved["note"] == note and saved["description"] == "edited here"
    assert saved["format_version"] == FORMAT_VERSION and "source_path" not in saved
    assert UNet.load(tmp_path / "resaved.keras").metadata.extra == {"note": note}


def test_loading_the_bundled_model_gives_typed_fields_and_leaves_its_file_alone():
    from napari_unet.core import UNet

    before = hashlib.sha256(NUCLEI_MODEL.read_bytes()).hexdigest()
    net = UNet.load(NUCLEI_MODEL)
    meta = net.metadata
    assert isinstance(meta, ModelMetadata)
    assert isinstance(meta.object_diameter, float) and meta.object_diameter > 0
    assert net.object_diameter == meta.object_diameter
    assert isinstance(meta.patch_size, int) and isinstance(meta.training_runs, list)
    assert meta.classes == ["background", "object", "boundary"]
    assert meta.normalization["low"] == 1.0 and meta.normalization["high"] == 99.8
    assert meta.source_path == str(NUCLEI_MODEL.resolve())
    assert net.pretrained
    copy = net.copy()
    copy.metadata.training_runs.append({"epochs": 1})  # a copy's record is its own
    assert len(copy.metadata.training_runs) == len(meta.training_runs) + 1
    assert hashlib.sha256(NUCLEI_MODEL.read_bytes()).hexdigest() == before
