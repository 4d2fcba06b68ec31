"""Bad input and faults against the command line, run as a user runs it (issue 9).

Exit code 2 and one plain line for bad input, nothing the user made replaced without
``--overwrite``, nothing half-written left after Ctrl+C or SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tifffile
from cli_helpers import assert_user_error, cli

from napari_unet import cli as cli_module

TRAIN_TINY = [
    "--init", "none", "--depth", "2", "--base-filters", "4", "--epochs", "1",
    "--steps-per-epoch", "2", "--patch-size", "32", "--batch-size", "2",
]  # fmt: skip


@pytest.fixture(scope="module")
def files(tmp_path_factory, sample_image, sample_mask) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("faults")
    img, mask = sample_image[:128, :128], sample_mask[:128, :128]
    out = {"image": d / "cells.tif", "mask": d / "cells_mask.tif", "model": d / "tiny.keras"}
    tifffile.imwrite(out["image"], img)
    tifffile.imwrite(out["mask"], mask)
    nan = img.astype(np.float32)
    nan[40] = np.nan
    nan[5, 5] = np.inf
    out["nan"] = d / "nan_row.tif"
    tifffile.imwrite(out["nan"], nan)
    out["tzyx"] = d / "tzyx.tif"
    tifffile.imwrite(out["tzyx"], np.stack([np.stack([img[:64, :64]] * 2)] * 2))
    from napari_unet.core import UNet, UNetConfig

    UNet.new(UNetConfig(depth=2, base_filters=4)).save(out["model"])
    return out


def _edited_model(src: Path, dst: Path, edit) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "napari_unet.json":
                meta = json.loads(data)
                edit(meta)
                data = json.dumps(meta).encode()
            zout.writestr(item.filename, data)
    return dst


# ---------------------------------------------------------------------- nothing lost
def test_predict_never_replaces_a_file_it_did_not_write(files, tmp_path):
    truth = tmp_path / "cells_labels.tif"
    tifffile.imwrite(truth, np.arange(64, dtype=np.uint16).reshape(8, 8))
    before = truth.read_bytes()
    proc = cli("predict", files["image"], "--model", files["model"], "--out", tmp_path)
    assert_user_error(proc, "cells_labels.tif", "--overwrite")
    assert truth.read_bytes() == before
    assert not (tmp_path / "cells_probability.tif").exists()

    # with --overwrite it is replaced; a later run replaces the tool's own outputs freely
    for extra in (["--overwrite"], []):
        proc = cli("predict", files["image"], "--model", files["model"], "--out", tmp_path, *extra)
        assert proc.returncode == 0, proc.stderr
        assert tifffile.imread(truth).shape == (128, 128)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "cells_labels.tif",
        "cells_probability.tif",
    ]


def test_train_never_replaces_an_existing_model_unasked(files, tmp_path):
    out = tmp_path / "m.keras"
    out.write_bytes(files["model"].read_bytes())
    before = out.read_bytes()
    args = ["train", "--image", files["image"], "--mask", files["mask"], *TRAIN_TINY]
    proc = cli(*args, "--out", out)
    assert_user_error(proc, "already exists", "--overwrite")
    assert out.read_bytes() == before
    proc = cli(*args, "--out", out, "--overwrite")
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes() != before


# ---------------------------------------------------------------------- silent wrong output
def test_nan_pixels_are_said_and_do_not_poison_the_output(files, tmp_path):
    proc = cli("predict", files["nan"], "--model", files["model"], "--out", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "NaN or infinite" in proc.stderr and "Traceback" not in proc.stderr
    prob = tifffile.imread(tmp_path / "nan_row_probability.tif")
    assert np.isfinite(prob).all()


def test_a_four_d_stack_is_segmented(files, tmp_path):
    proc = cli("predict", files["tzyx"], "--model", files["model"], "--out", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert tifffile.imread(tmp_path / "tzyx_labels.tif").shape == (2, 2, 64, 64)


# ---------------------------------------------------------------------- unclear errors
@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["--patch-size", "100000"], "--patch-size"),
        (["--learning-rate", "inf"], "--learning-rate"),
        (["--learning-rate", "nan"], "--learning-rate"),
        (["--time-limit", "nan"], "--time-limit"),
    ],
)
def test_train_refuses_insane_sizes_before_any_work(files, tmp_path, extra, fragment):
    proc = cli(
        "train", "--image", files["image"], "--mask", files["mask"], *TRAIN_TINY, *extra,
        "--out", tmp_path / "m.keras", timeout=60,
    )  # fmt: skip
    assert_user_error(proc, fragment)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "edit, fragment",
    [
        (lambda m: m["architecture"].update(depth=2.5), "depth"),
        (lambda m: m.update(architecture=["x"]), "architecture"),
        (lambda m: m.update(format_version="2b"), "format_version"),
        (lambda m: m.update(normalization="percentile"), "normalization"),
        (lambda m: m["architecture"].update(base_filters=1_000_000), "base_filters"),
    ],
)
def test_edited_model_metadata_is_one_line(files, tmp_path, edit, fragment):
    bad = _edited_model(files["model"], tmp_path / "edited.keras", edit)
    proc = cli("predict", files["image"], "--model", bad, "--out", tmp_path / "out")
    assert_user_error(proc, fragment)
    for args in (["--init", bad], ["--init", bad, "--out", tmp_path / "x.keras"]):
        proc = cli("train", "--image", files["image"], "--mask", files["mask"], *args[:2],
                   "--out", tmp_path / "x.keras")  # fmt: skip
        assert_user_error(proc, fragment)
    assert not (tmp_path / "out").exists() and not (tmp_path / "x.keras").exists()


def test_weights_that_do_not_fit_the_architecture_are_one_line(files, tmp_path):
    """A model file whose metadata names a plausible architecture its weights do not fit
    (depth 1 for a depth-2 network): only Keras can tell, and it warned in six lines of
    its own before the one line that says so."""
    bad = _edited_model(
        files["model"], tmp_path / "edited.keras", lambda m: m["architecture"].update(depth=1)
    )
    proc = cli("predict", files["image"], "--model", bad, "--out", tmp_path / "out")
    assert_user_error(proc, "edited.keras", "do not fit its architecture")
    proc = cli("train", "--image", files["image"], "--mask", files["mask"], "--init", bad,
               "--out", tmp_path / "x.keras")  # fmt: skip
    assert_user_error(proc, "do not fit its architecture")
    assert not (tmp_path / "x.keras").exists()


def test_predict_out_is_a_file(files, tmp_path):
    f = tmp_path / "results"
    f.write_text("a file")
    proc = cli("predict", files["image"], "--model", files["model"], "--out", f)
    assert_user_error(proc, "folder")
    assert f.read_text() == "a file"


# ---------------------------------------------------------------------- signals
class _Finaliser:
    """An object whose finaliser is hit by Ctrl+C or SIGTERM (as a released memory map
    or TensorFlow's tracing can be): Python can only report it as "unraisable"."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def __del__(self):
        raise self.exc


@pytest.mark.parametrize("exc, code", [(cli_module.Terminated(), 143), (KeyboardInterrupt(), 130)])
def test_an_interrupt_caught_by_a_finaliser_still_stops_predict(
    files, tmp_path, monkeypatch, capsys, exc, code
):
    from napari_unet.core import UNet

    predict = UNet.predict

    def predict_then_interrupted(self, *args, **kwargs):
        result = predict(self, *args, **kwargs)
        _Finaliser(exc)  # dropped at once: the interrupt lands in __del__
        return result

    monkeypatch.setattr(UNet, "predict", predict_then_interrupted)
    out = tmp_path / "out"
    argv = ["predict", str(files["image"]), "--model", str(files["model"]), "--out", str(out)]
    assert cli_module.main(argv) == code
    err = capsys.readouterr().err
    assert "interrupted" in err or "terminated" in err
    assert "Traceback" not in err
    assert not out.exists() or list(out.iterdir()) == []  # the image was not written


@pytest.fixture(scope="module")
def large_image(tmp_path_factory) -> Path:
    """An image over the block-wise threshold (16 Mpx), so a predict runs a while."""
    path = tmp_path_factory.mktemp("large") / "large.tif"
    rng = np.random.default_rng(0)
    tifffile.imwrite(path, rng.integers(0, 255, (4200, 4000), dtype=np.uint8))
    return path


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_during_a_large_predict_leaves_nothing_behind(
    files, large_image, tmp_path, sig, code
):
    out = tmp_path / "out"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    # started as a background job would be: Ctrl+C ignored on entry (the CI runner
    # starts the suite that way); the CLI must still answer it
    ignore_sigint = "import signal, runpy; signal.signal(signal.SIGINT, signal.SIG_IGN); "
    ignore_sigint += "runpy.run_module('napari_unet.cli', run_name='__main__')"
    proc = subprocess.Popen(
        [sys.executable, "-c", ignore_sigint, "predict", str(large_image), "--model",
         str(files["model"]), "--out", str(out), "--tile-size", "256"],
        stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    lines = []
    for line in proc.stderr:  # wait until blocks are being written
        lines.append(line)
        if "block 1/" in line:
            break
    proc.send_signal(sig)
    try:
        rest = proc.stderr.read()
        proc.wait(timeout=120)
    finally:
        proc.kill()
    stderr = "".join(lines) + rest
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr
    assert list(out.iterdir()) == [], "partial or temporary files were left behind"
