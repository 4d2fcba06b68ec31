"""The ``napari-unet`` command line, run as a user runs it: real files, real TensorFlow,
separate processes."""

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

from napari_unet.core import mask_to_annotation
from napari_unet.core.network.model_file import BUNDLED_MODELS

TINY = [
    "--depth", "2", "--base-filters", "8", "--epochs", "2", "--steps-per-epoch", "5",
    "--patch-size", "64", "--batch-size", "4",
]  # fmt: skip
METRICS = ("pixel_dice", "pixel_iou", "precision", "recall", "f1", "mean_ap")
QUADRANTS = {"tl": (0, 0), "tr": (0, 256), "bl": (256, 0), "br": (256, 256)}


@pytest.fixture(scope="module")
def quadrants(tmp_path_factory, sample_image, sample_mask) -> Path:
    """The sample image and mask cut into four 256×256 TIFF pairs (+ one annotation)."""
    d = tmp_path_factory.mktemp("quadrants")
    for name, (y, x) in QUADRANTS.items():
        tifffile.imwrite(d / f"img_{name}.tif", sample_image[y : y + 256, x : x + 256])
        tifffile.imwrite(d / f"mask_{name}.tif", sample_mask[y : y + 256, x : x + 256])
    ann = mask_to_annotation(sample_mask[256:, :256])
    tifffile.imwrite(d / "ann_bl.tif", ann)
    return d


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A small, untrained napari-unet model file."""
    from napari_unet.core import UNet, UNetConfig

    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    UNet.new(UNetConfig(depth=2, base_filters=4)).save(path)
    return path


@pytest.fixture
def out_dir(tmp_path) -> Path:
    d = tmp_path / "out"
    d.mkdir()
    return d


# --------------------------------------------------------------------------- round trip
def test_train_predict_evaluate_round_trip(quadrants, tmp_path):
    q = quadrants
    model = tmp_path / "nuclei.keras"
    train = cli(
        "train",
        "--image", q / "img_tl.tif", "--mask", q / "mask_tl.tif",
        "--image", q / "img_tr.tif", "--mask", q / "mask_tr.tif",
        "--image", q / "img_bl.tif", "--annotation", q / "ann_bl.tif",
        "--out", model, "--init", "none", *TINY,
    )  # fmt: skip
    assert train.returncode == 0, train.stderr
    assert model.is_file()
    assert "Traceback" not in train.stderr
    epoch_lines = [ln for ln in train.stderr.splitlines() if "epoch " in ln]
    assert len(epoch_lines) == 2, train.stderr
    assert "loss" in epoch_lines[0] and "val_dice" in epoch_lines[0]
    assert str(model) in train.stdout and "trained 2 epochs" in train.stdout
    # the model file is no temporary: nothing else was left in its folder
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nuclei.keras"]

    out = tmp_path / "pred"
    out.mkdir()
    pred = cli("predict", q / "img_br.tif", "--model", model, "--out", out, "--tile-size", "192")
    assert pred.returncode == 0, pred.stderr
    assert sorted(p.name for p in out.iterdir()) == ["img_br_labels.tif", "img_br_probability.tif"]
    labels = tifffile.imread(out / "img_br_labels.tif")
    prob = tifffile.imread(out / "img_br_probability.tif")
    assert labels.shape == prob.shape == (256, 256)
    assert labels.dtype == np.uint16
    assert prob.dtype == np.float32
    assert 0.0 <= prob.min() and prob.max() <= 1.0
    if os.name != "nt":  # written like any file, not with a temporary file's 0600
        umask = os.umask(0)
        os.umask(umask)
        assert (out / "img_br_labels.tif").stat().st_mode & 0o777 == 0o666 & ~umask

    ev = cli("evaluate", "--pred", out / "img_br_labels.tif", "--truth", q / "mask_br.tif")
    assert ev.returncode == 0, ev.stderr
    scores = json.loads(ev.stdout)
    for key in METRICS:
        assert 0.0 <= scores[key] <= 1.0, (key, scores)
    assert scores["n_true"] > 0


def test_predict_several_images_writes_each_pair(quadrants, tiny_model, out_dir):
    q = quadrants
    png = out_dir.parent / "rgb.png"
    import imageio.v3 as iio

    gray = tifffile.imread(q / "img_tl.tif")
    rgb = np.repeat((gray / max(1, gray.max()) * 255).astype(np.uint8)[..., None], 3, axis=-1)
    iio.imwrite(png, rgb)
    proc = cli("predict", q / "img_tl.tif", png, "--model", tiny_model, "--out", out_dir)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "img_tl_labels.tif",
        "img_tl_probability.tif",
        "rgb_labels.tif",
        "rgb_probability.tif",
    ]
    assert tifffile.imread(out_dir / "rgb_labels.tif").shape == (256, 256)


def test_predict_writes_to_current_folder_by_default(quadrants, tiny_model, tmp_path):
    proc = cli("predict", quadrants / "img_tr.tif", "--model", tiny_model, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "img_tr_labels.tif").is_file()
    assert (tmp_path / "img_tr_probability.tif").is_file()
    # --threshold 0 is the model's own threshold, as 0 in the Segment widget: the same labels
    zero = tmp_path / "zero"
    proc = cli("predict", quadrants / "img_tr.tif", "--model", tiny_model, "--out", zero,
               "--threshold", "0")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert np.array_equal(
        tifffile.imread(zero / "img_tr_labels.tif"), tifffile.imread(tmp_path / "img_tr_labels.tif")
    )


def test_fine_tune_from_a_model_file_and_default_init(quadrants, tiny_model, tmp_path):
    q = quadrants
    out = tmp_path / "tuned.keras"
    quick = ["--epochs", "1", "--steps-per-epoch", "2", "--patch-size", "32", "--batch-size", "2"]
    proc = cli(
        "train", "--image", q / "img_tl.tif", "--mask", q / "mask_tl.tif",
        "--out", out, "--init", tiny_model, *quick,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    from napari_unet.core.network.model_file import read_metadata

    meta = read_metadata(out)
    assert meta.architecture["base_filters"] == 4  # the tiny model's, not the default
    assert meta.training_runs[-1]["data"][0]["name"] == "img_tl.tif"

    # without a default model (a broken install), --init default trains from scratch
    out2 = tmp_path / "scratch.keras"
    proc = cli(
        "train", "--image", q / "img_tl.tif", "--mask", q / "mask_tl.tif",
        "--out", out2, "--depth", "1", "--base-filters", "4", *quick,
        env_extra={"NAPARI_UNET_DEFAULT_MODEL": str(tmp_path / "absent.keras")},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    notices = [ln for ln in proc.stderr.splitlines() if "no bundled default model" in ln]
    assert notices == ["napari-unet: no bundled default model; training from scratch"]
    assert out2.is_file()


# --------------------------------------------------------------------------- evaluate
def test_evaluate_perfect_prediction(sample_mask, tmp_path):
    truth = tmp_path / "truth.tif"
    tifffile.imwrite(truth, sample_mask)
    relabelled = tmp_path / "relabelled.png"  # same instances, other ids, other format
    ids = np.unique(sample_mask)
    perm = np.zeros(ids.max() + 1, np.uint16)
    perm[ids[1:]] = np.arange(len(ids) - 1, 0, -1)
    import imageio.v3 as iio

    iio.imwrite(relabelled, perm[sample_mask].astype(np.uint16))
    for pred in (truth, relabelled):
        proc = cli("evaluate", "--pred", pred, "--truth", truth)
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == ""
        scores = json.loads(proc.stdout)
        assert all(scores[k] == 1.0 for k in METRICS), scores
        assert scores["n_true"] == scores["n_pred"] == 125


# --------------------------------------------------------------------------- no TensorFlow
@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["--version"],
        ["train", "--help"],
        ["evaluate", "--pred", "sample_data/mask2d.tif", "--truth", "sample_data/mask2d.tif"],
        ["evaluate", "--pred", "missing.tif", "--truth", "sample_data/mask2d.tif"],
        ["predict", "missing.tif"],
    ],
)
def test_help_and_evaluate_do_not_import_tensorflow(argv):
    root = Path(__file__).resolve().parents[2]
    code = (
        "import sys\n"
        "from napari_unet.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = [m for m in ('tensorflow', 'keras') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stdout, proc.stdout


def test_version():
    proc = cli("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip().startswith("napari-unet 0.")
    script = Path(sys.executable).parent / "napari-unet"
    if script.exists():  # the installed console script
        proc = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0 and proc.stdout.startswith("napari-unet ")


# --------------------------------------------------------------------------- bad input
@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, sample_image, sample_mask) -> dict[str, Path]:
    """Files that are wrong in one way each."""
    d = tmp_path_factory.mktemp("bad")
    img, mask = sample_image[:128, :128], sample_mask[:128, :128]
    files = {
        "image": d / "image.tif",
        "mask": d / "mask.tif",
        "text_tif": d / "notes.tif",
        "text_png": d / "notes.png",
        "txt": d / "notes.txt",
        "line": d / "line.tif",
        "five_d": d / "five_d.tif",
        "small_mask": d / "small_mask.tif",
        "float_mask": d / "float_mask.tif",
        "mask_4d": d / "mask_4d.tif",
        "ann_no_object": d / "ann_no_object.tif",
        "ann_no_background": d / "ann_no_background.tif",
        "ann_empty": d / "ann_empty.tif",
        "mask_empty": d / "mask_empty.tif",
        "mask_full": d / "mask_full.tif",
        "foreign_keras": d / "foreign.keras",
        "text_keras": d / "text.keras",
    }
    tifffile.imwrite(files["image"], img)
    tifffile.imwrite(files["mask"], mask)
    for key in ("text_tif", "text_png", "txt", "text_keras"):
        files[key].write_text("this is not an image\n")
    tifffile.imwrite(files["line"], np.arange(100, dtype=np.uint16))
    tifffile.imwrite(files["five_d"], np.zeros((2, 2, 2, 32, 32), np.uint16))
    tifffile.imwrite(files["small_mask"], mask[:64, :64])
    tifffile.imwrite(files["float_mask"], mask.astype(np.float32) / 3)
    tifffile.imwrite(files["mask_4d"], np.zeros((2, 2, 128, 128), np.uint16))
    ann = np.zeros(img.shape, np.uint8)
    ann[:10] = 1
    tifffile.imwrite(files["ann_no_object"], ann)
    tifffile.imwrite(files["ann_no_background"], ann * 2)
    tifffile.imwrite(files["ann_empty"], np.zeros(img.shape, np.uint8))
    tifffile.imwrite(files["mask_empty"], np.zeros(img.shape, np.uint16))
    tifffile.imwrite(files["mask_full"], np.ones(img.shape, np.uint16))
    with zipfile.ZipFile(files["foreign_keras"], "w") as z:  # a Keras-looking archive
        z.writestr("config.json", "{}")
        z.writestr("model.weights.h5", "")
    return files


def _train_args(image, kind, labels, out):
    return ["train", "--image", image, f"--{kind}", labels, "--out", out, "--init", "none"]


TRAIN_CASES = {
    # name: (argv builder(files, out) , fragments expected in the message)
    "missing image": (lambda f, o: _train_args("nope.tif", "mask", f["mask"], o), ["not found"]),
    "missing mask": (lambda f, o: _train_args(f["image"], "mask", "nope.tif", o), ["not found"]),
    "not an image": (lambda f, o: _train_args(f["text_tif"], "mask", f["mask"], o), ["notes.tif"]),
    "unsupported type": (lambda f, o: _train_args(f["txt"], "mask", f["mask"], o), [".txt"]),
    "1D image": (lambda f, o: _train_args(f["line"], "mask", f["mask"], o), ["line.tif"]),
    "shape mismatch": (
        lambda f, o: _train_args(f["image"], "mask", f["small_mask"], o),
        ["shape"],
    ),
    "float mask": (lambda f, o: _train_args(f["image"], "mask", f["float_mask"], o), ["integer"]),
    "4D labels": (lambda f, o: _train_args(f["image"], "mask", f["mask_4d"], o), ["4D"]),
    "annotation without object": (
        lambda f, o: _train_args(f["image"], "annotation", f["ann_no_object"], o),
        ["no object"],
    ),
    "annotation without background": (
        lambda f, o: _train_args(f["image"], "annotation", f["ann_no_background"], o),
        ["no background"],
    ),
    "empty annotation": (
        lambda f, o: _train_args(f["image"], "annotation", f["ann_empty"], o),
        ["empty"],
    ),
    "mask without object": (
        lambda f, o: _train_args(f["image"], "mask", f["mask_empty"], o),
        ["no object"],
    ),
    "mask without background": (
        lambda f, o: _train_args(f["image"], "mask", f["mask_full"], o),
        ["no background"],
    ),
    "out not .keras": (
        lambda f, o: _train_args(f["image"], "mask", f["mask"], o.with_suffix(".h5")),
        [".keras"],
    ),
    "out folder missing": (
        lambda f, o: _train_args(f["image"], "mask", f["mask"], o.parent / "no" / "m.keras"),
        ["does not exist"],
    ),
    "out onto the bundled model": (
        lambda f, o: (
            _train_args(f["image"], "mask", f["mask"], BUNDLED_MODELS["nuclei"]) + ["--overwrite"]
        ),
        ["bundled nuclei model", "never replaced", "another name"],
    ),
    "out folder is a file": (
        lambda f, o: _train_args(f["image"], "mask", f["mask"], f["text_tif"] / "m.keras"),
        ["is not a folder"],
    ),
    "zero epochs": (
        lambda f, o: _train_args(f["image"], "mask", f["mask"], o) + ["--epochs", "0"],
        ["epochs"],
    ),
    "negative epochs": (
        lambda f, o: _train_args(f["image"], "mask", f["mask"], o) + ["--epochs", "-3"],
        ["epochs"],
    ),
    "zero batch size": (
        lambda f, o: _train_args(f["image"], "mask", f["mask"], o) + ["--batch-size", "0"],
        ["batch"],
    ),
    "negative time limit": (
        lambda f, o: _train_args(f["image"], "mask", f["mask"], o) + ["--time-limit", "-1"],
        ["time"],
    ),
    "val fraction 1": (
        lambda f, o: _train_args(f["image"], "mask", f["mask"], o) + ["--val-fraction", "1"],
        ["val"],
    ),
    "epochs not a number": (
        lambda f, o: _train_args(f["image"], "mask", f["mask"], o) + ["--epochs", "many"],
        ["epochs"],
    ),
    "bad depth": (
        lambda f, o: _train_args(f["image"], "mask", f["mask"], o) + ["--depth", "9"],
        ["depth"],
    ),
    "patch size off the grid": (
        lambda f, o: _train_args(f["image"], "mask", f["mask"], o) + ["--patch-size", "40"],
        ["multiple of 16"],
    ),
    "image without labels": (
        lambda f, o: _train_args(f["image"], "mask", f["mask"], o) + ["--image", f["image"]],
        ["2 --image but 1"],
    ),
    "labels without image": (
        lambda f, o: ["train", "--mask", f["mask"], "--out", o],
        ["--image"],
    ),
    "missing init model": (
        lambda f, o: _train_args(f["image"], "mask", f["mask"], o)[:-1] + ["nope.keras"],
        ["not found"],
    ),
    "foreign init model": (
        lambda f, o: _train_args(f["image"], "mask", f["mask"], o)[:-1] + [f["foreign_keras"]],
        ["not a napari-unet model"],
    ),
    "text init model": (
        lambda f, o: _train_args(f["image"], "mask", f["mask"], o)[:-1] + [f["text_keras"]],
        ["not a napari-unet model"],
    ),
}


@pytest.mark.parametrize("case", list(TRAIN_CASES))
def test_train_bad_input(case, bad_files, out_dir):
    build, fragments = TRAIN_CASES[case]
    model = out_dir / "model.keras"
    proc = cli(*build(bad_files, model))
    assert_user_error(proc, *fragments)
    assert list(out_dir.iterdir()) == []


PREDICT_CASES = {
    "missing image": (lambda f, m: ["nope.tif", "--model", m], ["not found"]),
    "not an image": (lambda f, m: [f["text_tif"], "--model", m], ["notes.tif"]),
    "png that is not an image": (lambda f, m: [f["text_png"], "--model", m], ["notes.png"]),
    "unsupported type": (lambda f, m: [f["txt"], "--model", m], ["unsupported"]),
    "1D image": (lambda f, m: [f["line"], "--model", m], ["line.tif"]),
    "5D image": (lambda f, m: [f["five_d"], "--model", m], ["five_d.tif", "not supported"]),
    "missing model": (lambda f, m: [f["image"], "--model", "nope.keras"], ["not found"]),
    "foreign model": (
        lambda f, m: [f["image"], "--model", f["foreign_keras"]],
        ["not a napari-unet model"],
    ),
    "text file as model": (
        lambda f, m: [f["image"], "--model", f["text_keras"]],
        ["not a napari-unet model"],
    ),
    "image as model": (lambda f, m: [f["image"], "--model", f["image"]], ["not a napari-unet"]),
    "second of several images is bad": (
        lambda f, m: [f["image"], f["text_tif"], "--model", m],
        ["notes.tif"],
    ),
    "two images with one name": (
        lambda f, m: [f["image"], f["image"], "--model", m],
        ["would both write"],
    ),
    "zero tile size": (lambda f, m: [f["image"], "--model", m, "--tile-size", "0"], ["tile"]),
    "tile size too small": (
        lambda f, m: [f["image"], "--model", m, "--tile-size", "8"],
        ["--tile-size", "from 128"],
    ),
}


@pytest.mark.parametrize("case", list(PREDICT_CASES))
def test_predict_bad_input(case, bad_files, tiny_model, out_dir):
    build, fragments = PREDICT_CASES[case]
    proc = cli("predict", *build(bad_files, tiny_model), "--out", out_dir)
    assert_user_error(proc, *fragments)
    assert list(out_dir.iterdir()) == []


def test_predict_creates_a_missing_output_folder(bad_files, tiny_model, tmp_path):
    missing = tmp_path / "results" / "run1"
    proc = cli("predict", bad_files["image"], "--model", tiny_model, "--out", missing)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in missing.iterdir()) == [
        "image_labels.tif",
        "image_probability.tif",
    ]


def test_predict_without_bundled_model(bad_files, out_dir, tmp_path):
    missing = {"NAPARI_UNET_DEFAULT_MODEL": str(tmp_path / "absent.keras")}
    proc = cli("predict", bad_files["image"], "--out", out_dir, env_extra=missing)
    assert_user_error(proc, "--model")
    assert list(out_dir.iterdir()) == []


def test_model_nuclei_is_the_bundled_nuclei_model(bad_files, tmp_path):
    """--model nuclei predicts with the bundled nuclei file, whatever the default is."""
    missing = {"NAPARI_UNET_DEFAULT_MODEL": str(tmp_path / "absent.keras")}
    probabilities = []
    for model in ("nuclei", BUNDLED_MODELS["nuclei"]):
        out = tmp_path / f"out_{len(probabilities)}"
        args = ("predict", bad_files["image"], "--model", model, "--diameter", "0")
        proc = cli(*args, "--out", out, env_extra=missing)
        assert proc.returncode == 0, proc.stderr
        probabilities.append(tifffile.imread(out / "image_probability.tif"))
    assert probabilities[0].max() > 0.5  # the sample's nuclei are found
    np.testing.assert_array_equal(probabilities[0], probabilities[1])


def test_an_unknown_model_name_is_one_line_naming_the_bundled_models(bad_files, out_dir):
    for args in (
        ("predict", bad_files["image"], "--out", out_dir, "--model", "nucleus"),
        ("train", "--image", bad_files["image"], "--mask", bad_files["mask"],
         "--out", out_dir / "m.keras", "--init", "nucleus"),
        ("export", "--model", "nucleus", "--format", "bioimageio", "--out", out_dir / "p.zip"),
    ):  # fmt: skip
        proc = cli(*args)
        line = assert_user_error(proc, "'nucleus'", "generalist (the default), nuclei")
        assert "neither a model file nor a bundled model" in line
        assert list(out_dir.iterdir()) == []


EVALUATE_CASES = {
    "missing prediction": (lambda f: ["--pred", "nope.tif", "--truth", f["mask"]], ["not found"]),
    "shape mismatch": (
        lambda f: ["--pred", f["small_mask"], "--truth", f["mask"]],
        ["differ in shape"],
    ),
    "float labels": (lambda f: ["--pred", f["float_mask"], "--truth", f["mask"]], ["integer"]),
    "not an image": (lambda f: ["--pred", f["text_tif"], "--truth", f["mask"]], ["notes.tif"]),
    "missing argument": (lambda f: ["--pred", f["mask"]], ["--truth"]),
}


@pytest.mark.parametrize("case", list(EVALUATE_CASES))
def test_evaluate_bad_input(case, bad_files):
    build, fragments = EVALUATE_CASES[case]
    proc = cli("evaluate", *build(bad_files))
    assert_user_error(proc, *fragments)
    assert proc.stdout == ""


def test_no_command_is_one_line():
    assert_user_error(cli(), "command")


# --------------------------------------------------------------------------- Ctrl-C
@pytest.mark.skipif(os.name == "nt", reason="POSIX signals")
def test_ctrl_c_stops_training_without_a_model_file(bad_files, out_dir):
    model = out_dir / "model.keras"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    argv = _train_args(bad_files["image"], "mask", bad_files["mask"], model)
    argv += ["--depth", "1", "--base-filters", "4", "--patch-size", "32", "--batch-size", "2"]
    argv += ["--epochs", "1000", "--steps-per-epoch", "5"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "napari_unet.cli", *map(str, argv)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        lines = []
        for line in proc.stderr:  # wait until training is really running
            lines.append(line)
            if "epoch 1/" in line:
                break
        assert any("epoch 1/" in ln for ln in lines), "".join(lines)
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, "".join(lines) + rest
    assert "Traceback" not in rest
    assert "interrupted" in rest
    assert list(out_dir.iterdir()) == []


def test_predict_tells_a_person_at_the_terminal_each_stage(quadrants, tmp_path):
    """Issue 20: with stderr on a terminal, predict says what it is doing, stage by
    stage; piped into a log (every other test here) it prints only its result lines."""
    import pty

    main, other = pty.openpty()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    src = quadrants / "img_tl.tif"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "napari_unet.cli",
            "predict",
            str(src),
            "--out",
            str(tmp_path),
            "--model",
            "nuclei",
        ],
        stdout=subprocess.PIPE,
        stderr=other,
        env=env,
    )
    os.close(other)
    said = b""
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        said += chunk
    out, _ = proc.communicate(timeout=300)
    os.close(main)
    assert proc.returncode == 0, said
    lines = [ln.strip() for ln in said.decode().splitlines() if ln.strip()]
    stages = [
        "napari-unet: importing TensorFlow…",
        "napari-unet: loading the model…",
        "napari-unet: img_tl.tif: estimating the object size…",
        "napari-unet: img_tl.tif: predicting…",
        "napari-unet: img_tl.tif: post-processing…",
    ]
    assert [ln for ln in lines if ln in stages] == stages, lines
    assert b"objects ->" in out


def test_predict_diameter_rescales_and_refuses_nonsense(quadrants, tmp_path):
    src = quadrants / "img_tl.tif"
    out = tmp_path
    proc = cli(
        "predict", src, "--out", out, "--diameter", "42", "--model", "nuclei"
    )  # objects twice as wide
    assert proc.returncode == 0, proc.stderr
    assert "rescaled x0.5" in proc.stdout, proc.stdout
    assert (out / "img_tl_labels.tif").exists()
    assert_user_error(cli("predict", src, "--out", out, "--diameter", "-3"), "--diameter")
    assert_user_error(cli("predict", src, "--out", out, "--diameter", "nan"), "--diameter")


def test_train_brings_the_images_to_the_model_s_scale_from_a_diameter_given(quadrants, tmp_path):
    """``train --diameter PX`` reads the width as ``predict --diameter`` does: the image
    is learned at the scale prediction would see it at (the model's ``taught_scale``)."""
    from napari_unet.core.network.model_file import read_metadata
    from napari_unet.core.network.unet import UNet
    from napari_unet.core.prediction.object_size import clip_scale, given_scale

    default = UNet.default()
    out = tmp_path / "tuned.keras"
    proc = cli(
        "train", "--image", quadrants / "img_bl.tif", "--annotation", quadrants / "ann_bl.tif",
        "--out", out, "--diameter", "60", "--epochs", "1", "--steps-per-epoch", "1",
        "--patch-size", "64", "--batch-size", "1",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    want = clip_scale(given_scale(60, default.object_diameter, default.mask_diameter))
    assert want < 0.9  # shrunk: not the scale the painted nuclei measure
    assert read_metadata(out).taught_scale == pytest.approx(want, abs=1e-4)


def test_cli_training_widget_and_predict_agree_on_an_rgba_image(tmp_path):
    """One rule for channels: an RGBA picture and a 3-channel model are read the same way
    (colours, alpha dropped) by `predict`, `train`, the widgets and ``UNet.predict``."""
    import imageio.v3 as iio
    from helpers import make_blobs

    from napari_unet._widgets._workers import SegmentJob, _layout
    from napari_unet.core import TrainConfig, TrainingPair, UNet, UNetConfig
    from napari_unet.core.axes import channel_layout

    grey, mask = make_blobs(96, 8, seed=4)
    colour = (grey / grey.max() * 255).astype(np.uint8)
    rng = np.random.default_rng(0)
    rgba = np.stack(
        [colour, colour // 2, 255 - colour, rng.integers(0, 256, colour.shape, np.uint8)], -1
    )
    png, mask_path = tmp_path / "cells.png", tmp_path / "cells_mask.tif"
    iio.imwrite(png, rgba)
    tifffile.imwrite(mask_path, mask)
    model = tmp_path / "rgb.keras"
    UNet.new(UNetConfig(depth=2, base_filters=4, input_channels=3), seed=0).save(model)
    net = UNet.load(model)

    # one decision, whoever asks: the widget (napari says rgb=True) and the shape rule
    decided = channel_layout(rgba.shape, 3)
    assert decided.axis == 2 and decided.drop_alpha
    assert _layout(SegmentJob(rgba, "cells", rgb=True), 3) == decided

    # predict: the alpha channel (random here) changes nothing
    direct = net.predict(rgba, diameter=0)
    np.testing.assert_array_equal(direct.labels, net.predict(rgba[..., :3], diameter=0).labels)

    # the command line writes what UNet.predict gives
    out = tmp_path / "out"
    proc = cli("predict", png, "--model", model, "--out", out, "--diameter", "0")
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_allclose(
        tifffile.imread(out / "cells_probability.tif"), direct.probability, atol=1e-5
    )

    # training takes it, in core and on the command line
    cfg = TrainConfig(epochs=1, steps_per_epoch=1, patch_size=32, batch_size=1)
    cfg.tune_postprocessing = False
    net.train([TrainingPair(rgba, mask=mask, name="cells.png")], cfg)
    trained = tmp_path / "trained.keras"
    proc = cli(
        "train", "--image", png, "--mask", mask_path, "--init", model, "--out", trained,
        "--epochs", "1", "--steps-per-epoch", "1", "--patch-size", "32", "--batch-size", "1",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert trained.is_file()


def test_train_defaults_are_core_defaults():
    from dataclasses import fields

    from napari_unet.cli import build_parser
    from napari_unet.core import TrainConfig

    args = build_parser().parse_args(["train", "--image", "a", "--mask", "b", "--out", "m.keras"])
    core = TrainConfig()
    for name in ("epochs", "steps_per_epoch", "batch_size", "val_fraction", "seed"):
        assert getattr(args, name) == getattr(core, name), name
    # normalisation travels with the model, not with the training settings
    assert "normalization" not in {f.name for f in fields(TrainConfig)}
