"""Shared fixtures: the real sample data and tiny synthetic images."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The suite checks exact properties (tiles reproduce a whole pass to 1e-5, seeded runs
# repeat bit for bit) that hold in float32; on a CPU with AMX the automatic precision
# would be bfloat16. test_core_precision.py checks bfloat16 and the automatic choice.
os.environ.setdefault("NAPARI_UNET_PRECISION", "float32")
# pytest-qt takes the first binding it finds (PyQt6 before PyQt5) unless told: follow
# QT_API, so that with both installed (CI) the PyQt5 pass really runs PyQt5.
os.environ.setdefault("PYTEST_QT_API", os.environ.get("QT_API", "pyqt5").lower())

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_IMAGE = ROOT / "sample_data" / "img2d.tif"
SAMPLE_MASK = ROOT / "sample_data" / "mask2d.tif"


# ---------------------------------------------------------------------- learned results
# A test of a learned result (accuracy, F1, a loss going down) must hold on any x86-64 CPU:
# oneDNN picks other float32 kernels on AMD than on Intel, so training takes another path.
# Such tests are marked `learned`, take their seeds through `seeded` and assert through
# `margin`; scripts/learned_margins.py reruns them with other seeds and prints the margins.
SEED_OFFSET = int(os.environ.get("NAPARI_UNET_TEST_SEED", "0"))


def seeded(seed: int) -> int:
    """A seed of a learned-result test, shifted by ``NAPARI_UNET_TEST_SEED``."""
    return seed + SEED_OFFSET


@pytest.fixture
def margin(request):
    """``margin(name, value, threshold)`` asserts ``value > threshold`` and, when
    ``NAPARI_UNET_MARGINS`` names a file, appends the figure to it (one JSON per line)."""
    import json

    def check(name: str, value: float, threshold: float, detail=None) -> None:
        out = os.environ.get("NAPARI_UNET_MARGINS")
        if out:
            record = {
                "test": request.node.nodeid,
                "name": name,
                "value": float(value),
                "threshold": float(threshold),
                "seed_offset": SEED_OFFSET,
            }
            with open(out, "a") as f:
                f.write(json.dumps(record) + "\n")
        assert value > threshold, (name, float(value), threshold, detail)

    return check


@pytest.fixture(scope="session")
def sample_image() -> np.ndarray:
    import tifffile

    return tifffile.imread(SAMPLE_IMAGE)


@pytest.fixture(scope="session")
def sample_mask() -> np.ndarray:
    import tifffile

    return tifffile.imread(SAMPLE_MASK)


def make_blobs(size: int = 128, n: int = 12, seed: int = 0, radius=(5, 10)):
    """A synthetic fluorescence image of round blobs and its instance mask."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    mask = np.zeros((size, size), np.uint16)
    image = np.zeros((size, size), np.float32)
    placed = 0
    for _ in range(n * 20):
        if placed == n:
            break
        r = rng.uniform(*radius)
        cy, cx = rng.uniform(r, size - r, 2)
        disk = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        if (mask[disk] > 0).any():
            continue
        placed += 1
        mask[disk] = placed
        image[disk] = rng.uniform(0.6, 1.0)
    image = image + rng.normal(0, 0.05, image.shape).astype(np.float32)
    return np.clip(image * 1000 + 200, 0, 65535).astype(np.uint16), mask


@pytest.fixture
def blobs():
    return make_blobs()


# ---------------------------------------------------------------------- napari (GUI tests)
@pytest.fixture
def viewer(make_napari_viewer):
    """A real viewer with the plugin's sample image (and its hidden ground truth)."""
    v = make_napari_viewer()
    v.open_sample("napari-unet", "nuclei")
    return v


@pytest.fixture
def notes():
    """Notifications shown during the test."""
    from napari.utils.notifications import notification_manager

    start = len(notification_manager.records)
    yield lambda: [str(n.message) for n in notification_manager.records[start:]]


def make_two_classes(size: int = 128, n: int = 14, seed: int = 0, **kwargs):
    """Bright round blobs (class 1) and dim rods (class 2): see
    ``scripts/synthetic_classes.py``. Returns image, instance mask, class map."""
    import sys

    sys.path.insert(0, str(ROOT / "scripts"))
    from synthetic_classes import two_class_image

    return two_class_image(size, n, seed, **kwargs)


def with_metadata(path: Path, out: Path, edit) -> Path:
    """A copy of the model file ``path`` at ``out`` whose napari-unet metadata ``edit``
    (a function of the metadata dict) has changed in place: a file that lies."""
    import json
    import zipfile

    with zipfile.ZipFile(path) as z:
        items = {n: z.read(n) for n in z.namelist()}
    meta = json.loads(items["napari_unet.json"])
    edit(meta)
    items["napari_unet.json"] = json.dumps(meta).encode()
    with zipfile.ZipFile(out, "w") as z:
        for name, data in items.items():
            z.writestr(name, data)
    return out


# ---------------------------------------------------------------------- failing disks
@pytest.fixture
def small_disk(tmp_path):
    """``mount(size, read_only=False)``: a real tmpfs of ``size`` bytes mounted in
    ``tmp_path``, unmounted afterwards. Real failures of the kind a person meets (a full
    disk, a read-only one) where ``chmod`` cannot make one (the tests run as root);
    skipped where this process may not mount."""
    import shutil
    import subprocess

    mounted = []

    def mount(size: int, read_only: bool = False) -> Path:
        where = tmp_path / f"disk{len(mounted)}"
        where.mkdir()
        options = f"size={int(size)}" + (",ro" if read_only else "")
        tool = shutil.which("mount")
        done = tool and subprocess.run(
            [tool, "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True
        )
        if not done or done.returncode != 0:
            pytest.skip("cannot mount a small file system here (needs root)")
        mounted.append(where)
        return where

    yield mount
    for where in mounted:
        subprocess.run(["umount", str(where)], capture_output=True)
