"""``napari-unet export --format bioimageio``: a bioimage.io model package (spec 0.5).

The package is written and inspected without bioimage.io libraries; with the
``bioimageio`` extra installed, ``bioimageio.core``'s own ``test_model`` runs on it
offline (every weight format reproduces the test output).
"""

from __future__ import annotations

import os
import socket
import zipfile
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import tomllib

from napari_unet import cli
from napari_unet.core import UNet, UNetConfig
from napari_unet.core.files.bioimageio import read_package_metadata

ROOT = Path(__file__).resolve().parents[2]


def extra_missing(name: str = "bioimageio") -> str | None:
    """Why the optional dependencies ``name`` are not all installed (``None``: they are)."""
    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for spec in project["optional-dependencies"][name]:
        req = Requirement(spec)
        try:
            version = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            return f"{req.name} is not installed"
        if not req.specifier.contains(version, prereleases=True):
            return f"{req.name} {version} does not satisfy {req}"
    return None


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    """A tiny trained-shape model exported through the command line."""
    tmp = tmp_path_factory.mktemp("bioimageio")
    net = UNet.new(UNetConfig(depth=2, base_filters=8), seed=0)
    model = net.save(tmp / "tiny.keras")
    out = tmp / "tiny.zip"
    argv = ["export", "--model", str(model), "--format", "bioimageio", "--out", str(out)]
    assert cli.main([*argv, "--author", "A. Person"]) == 0
    return out, model


def test_package_holds_weights_tensors_cover_and_documentation(package):
    out, model = package
    names = set(zipfile.ZipFile(out).namelist())
    for name in ("rdf.yaml", "weights.keras", "tf_saved_model.zip", "test_input.npy",
                 "test_output.npy", "cover.png", "README.md"):  # fmt: skip
        assert name in names, name
    # the Keras weights are the napari-unet model file itself
    assert zipfile.ZipFile(out).read("weights.keras") == model.read_bytes()
    rdf = read_package_metadata(out)
    assert rdf["format_version"].startswith("0.5.")
    assert rdf["type"] == "model"
    assert rdf["authors"] == [{"name": "A. Person"}]
    assert rdf["license"] == "CC-BY-4.0"
    assert "10.1007/978-3-319-24574-4_28" in [c.get("doi") for c in rdf["cite"]]
    assert rdf["covers"] == ["cover.png"] and rdf["documentation"] == "README.md"
    weights = rdf["weights"]
    assert weights["keras_v3"]["backend"][0] == "tensorflow"
    assert weights["tensorflow_saved_model_bundle"]["parent"] == "keras_v3"

    (inp,) = rdf["inputs"]
    (step,) = inp["preprocessing"]
    # napari-unet's own percentile normalisation, per image and channel, not clipped
    net = UNet.load(model)
    assert step["id"] == "scale_range"
    assert step["kwargs"] == {
        "axes": ["y", "x"],
        "min_percentile": net.normalization["low"],
        "max_percentile": net.normalization["high"],
    }
    y_in = inp["axes"][1]
    assert y_in["size"]["step"] == 4  # 2 ** depth
    (outp,) = rdf["outputs"]
    y_out = outp["axes"][1]
    assert y_out["halo"] == 64 and y_out["size"] == {"tensor_id": "raw", "axis_id": "y",
                                                    "offset": 0}  # fmt: skip
    assert y_in["size"]["min"] > 2 * y_out["halo"]
    assert outp["axes"][-1]["channel_names"] == ["background", "object", "boundary"]

    with zipfile.ZipFile(out) as z:
        x = np.load(z.open("test_input.npy"))
        y = np.load(z.open("test_output.npy"))
        readme = z.read("README.md").decode()
    assert x.dtype == np.float32 and x.shape[0] == 1 and x.shape[-1] == 1
    assert (x.shape[1] - y_in["size"]["min"]) % y_in["size"]["step"] == 0
    assert y.shape == (*x.shape[:3], 3)
    np.testing.assert_allclose(y.sum(axis=-1), 1.0, atol=1e-4)  # softmax
    assert "watershed" in readme and "scale_range" in readme
    # a new network reads a stained slide as its haematoxylin: said to the tools that run it
    assert rdf["config"]["napari_unet"]["colour_reading"] == "stains"
    assert "haematoxylin density" in readme


def test_onnx_weights_match_keras(package):
    pytest.importorskip("tf2onnx", reason="ONNX export needs the bioimageio extra (tf2onnx)")
    onnxruntime = pytest.importorskip("onnxruntime")
    out, model = package
    rdf = read_package_metadata(out)
    assert rdf["weights"]["onnx"]["parent"] == "keras_v3"
    assert rdf["weights"]["onnx"]["opset_version"] >= 7
    with zipfile.ZipFile(out) as z:
        x = np.load(z.open("test_input.npy"))
        y = np.load(z.open("test_output.npy"))
        session = onnxruntime.InferenceSession(z.read("weights.onnx"))
    # the test output is the Keras model's answer to the preprocessed test input
    from napari_unet.core.files.bioimageio import _scale_range

    (got,) = session.run(None, {session.get_inputs()[0].name: _scale_range(x, 1.0, 99.8)})
    assert np.abs(got - y).max() < 1e-4


def test_bioimageio_core_test_model_passes_offline(package, monkeypatch):
    why = extra_missing()
    if why:
        pytest.skip(f"the bioimageio extra is not installed ({why})")
    from napari_unet.core.files.bioimageio import run_bioimageio_test, validate_package

    def offline(*args, **kwargs):
        raise OSError("offline: the package must be tested without the network")

    monkeypatch.setattr(socket.socket, "connect", offline)
    out, _ = package
    assert validate_package(out).startswith("0.5.")
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    result = run_bioimageio_test(out)
    # bioimageio.core writes its backend into os.environ; later subprocesses
    # (the CLI tests) would inherit "torch" and fail to import Keras
    assert "KERAS_BACKEND" not in os.environ
    failed = [d for d in result["details"] if d["status"] != "passed"]
    assert result["status"] == "passed", failed
    reproduced = {d["name"] for d in result["details"] if d["name"].startswith("Reproduce")}
    for fmt in ("keras_v3", "onnx", "tensorflow_saved_model_bundle"):
        assert any(fmt in name for name in reproduced), (fmt, reproduced)


def test_export_never_overwrites_and_explains_bad_input(package, tmp_path, capsys):
    out, model = package
    before = out.read_bytes()
    argv = ["export", "--model", str(model), "--format", "bioimageio", "--out", str(out)]
    assert cli.main(argv) == 2
    assert "exists" in capsys.readouterr().err
    assert out.read_bytes() == before
    not_model = tmp_path / "notes.keras"
    not_model.write_text("not a model")
    argv = ["export", "--model", str(not_model), "--format", "bioimageio"]
    assert cli.main([*argv, "--out", str(tmp_path / "p.zip")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a napari-unet model" in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.keras"]


def test_a_two_class_model_exports_with_its_class_names(tmp_path, monkeypatch):
    """A model of two object classes: four named output channels, documented."""
    from napari_unet.core.files.bioimageio import export_bioimageio

    net = UNet.new(UNetConfig(depth=2, base_filters=4, n_object_classes=2), seed=0)
    net.metadata.classes = ["background", "round cell", "rod", "boundary"]
    model = net.save(tmp_path / "two.keras")
    out = tmp_path / "two.zip"
    result = export_bioimageio(model, out, authors=["A. Person"])
    assert "keras_v3" in result.weight_formats
    rdf = read_package_metadata(out)
    (outp,) = rdf["outputs"]
    assert outp["axes"][-1]["channel_names"] == ["background", "round_cell", "rod", "boundary"]
    with zipfile.ZipFile(out) as z:
        y = np.load(z.open("test_output.npy"))
        readme = z.read("README.md").decode()
    assert y.shape[-1] == 4
    np.testing.assert_allclose(y.sum(axis=-1), 1.0, atol=1e-4)
    assert "2 object classes apart (round cell, rod)" in readme
    if extra_missing() is None:
        from napari_unet.core.files.bioimageio import validate_package

        monkeypatch.setattr(socket.socket, "connect", _offline)
        assert validate_package(out).startswith("0.5.")


def _offline(*args, **kwargs):
    raise OSError("offline: the package must be checked without the network")


def test_a_package_opens_as_the_model_inside_it(package, tmp_path, monkeypatch, capsys):
    """A colleague's package is opened as it is: the model inside it, taken out once into
    the cache, the package only read; the command line predicts with it."""
    import tifffile

    from napari_unet.core.network import model_file

    out, model = package
    cache = tmp_path / "cache"
    monkeypatch.setattr(model_file, "package_cache", lambda: cache)
    before = out.read_bytes()
    net, same = UNet.load(out), UNet.load(model)
    for a, b in zip(net.keras_model.get_weights(), same.keras_model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert net.metadata.source_path == str(out.resolve())
    assert model_file.read_metadata(out).architecture == same.metadata.architecture
    (inner,) = cache.glob("*/tiny.keras")
    assert inner.read_bytes() == model.read_bytes()
    taken = inner.stat().st_mtime_ns
    UNet.load(out)  # taken out once
    assert inner.stat().st_mtime_ns == taken
    assert out.read_bytes() == before
    # and read once: the same package is not opened again in this process
    monkeypatch.setattr(model_file, "package_cache", lambda: tmp_path / "elsewhere")
    assert model_file.keras_file(out) == inner and not (tmp_path / "elsewhere").exists()

    image = np.zeros((96, 96), np.uint8)
    image[20:40, 30:50] = 200
    tifffile.imwrite(tmp_path / "cells.tif", image)
    argv = ["predict", str(tmp_path / "cells.tif"), "--model", str(out)]
    assert cli.main([*argv, "--out", str(tmp_path / "labels"), "--diameter", "0"]) == 0
    assert (tmp_path / "labels" / "cells_labels.tif").is_file()


def test_a_package_of_another_tool_or_a_damaged_one_is_refused_in_one_line(
    package, tmp_path, monkeypatch, capsys
):
    import tifffile

    from napari_unet.core import ModelFileError
    from napari_unet.core.network import model_file

    monkeypatch.setattr(model_file, "package_cache", lambda: tmp_path / "cache")
    foreign = tmp_path / "stardist.zip"
    with zipfile.ZipFile(foreign, "w") as z:
        z.writestr("rdf.yaml", "type: model\n")
        z.writestr("weights.h5", b"\0" * 16)
    with pytest.raises(ModelFileError, match="without a napari-unet model in it"):
        UNet.load(foreign)
    damaged = tmp_path / "damaged.zip"
    with zipfile.ZipFile(damaged, "w") as z:
        z.writestr("rdf.yaml", "type: model\n")
        z.writestr("weights.keras", b"not a keras archive")
    with pytest.raises(ModelFileError, match=r"damaged\.zip \(its weights\.keras\)"):
        UNet.load(damaged)
    image = tmp_path / "cells.tif"
    tifffile.imwrite(image, np.zeros((64, 64), np.uint8))
    for package_path in (foreign, damaged):
        argv = ["predict", str(image), "--model", str(package_path), "--out", str(tmp_path / "o")]
        assert cli.main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and package_path.name in err[0], err
    assert not (tmp_path / "o").exists()
