"""Shared fixtures: the real sample data and tiny synthetic images."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from helpers import SAMPLE_IMAGE, SAMPLE_MASK, SEED_OFFSET, make_blobs

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The suite checks exact properties (tiles reproduce a whole pass to 1e-5, seeded runs
# repeat bit for bit) that hold in float32; on a CPU with AMX the automatic precision
# would be bfloat16. core/test_precision.py checks bfloat16 and the automatic choice.
os.environ.setdefault("NAPARI_UNET_PRECISION", "float32")
# pytest-qt takes the first binding it finds (PyQt6 before PyQt5) unless told: follow
# QT_API, so that with both installed (CI) the PyQt5 pass really runs PyQt5.
os.environ.setdefault("PYTEST_QT_API", os.environ.get("QT_API", "pyqt5").lower())


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
