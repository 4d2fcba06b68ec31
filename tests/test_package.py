"""The built wheel is a complete package: sample data, manifest, models, every module.

The repository keeps ``sample_data/`` at the top level; the build maps it into the
package. These tests build the wheel from a copy of the sources (nothing is written into
the checkout), unpack it and use it from a fresh interpreter, the way an installed copy
is used.
"""

from __future__ import annotations

import email
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
import yaml

import napari_unet

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("napari_unet", "sample_data"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(src)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # setuptools prints its deprecation boxes on stderr: the build must be clean
    assert "deprecat" not in (proc.stdout + proc.stderr).lower(), proc.stderr
    (whl,) = out.glob("napari_unet-*.whl")
    return whl


def test_wheel_carries_sample_data_manifest_model_and_every_module(wheel):
    from napari_unet.core.network.model_file import BUNDLED_MODELS

    names = set(zipfile.ZipFile(wheel).namelist())
    models = [f"napari_unet/models/{path.name}" for path in BUNDLED_MODELS.values()]
    assert models == [
        "napari_unet/models/generalist.keras",
        "napari_unet/models/default_nuclei.keras",
    ]
    for data in (
        "napari_unet/napari.yaml",
        *models,  # every bundled model: the generalist (the default) and the nuclei model
        "napari_unet/sample_data/img2d.tif",
        "napari_unet/sample_data/mask2d.tif",
        "napari_unet/sample_data/LICENSE.md",
    ):
        assert data in names, f"{data} is missing from {wheel.name}"
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "napari_unet").rglob("*.py")}
    assert modules, "no modules found in the source tree"
    assert sorted(modules - names) == []


def test_wheel_metadata_declares_version_licence_and_every_import(wheel):
    with zipfile.ZipFile(wheel) as z:
        meta_name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        meta = email.message_from_bytes(z.read(meta_name))
        entry_points = z.read(meta_name.replace("METADATA", "entry_points.txt")).decode()
    assert meta["Version"] == napari_unet.__version__
    assert meta["License-Expression"] == "BSD-3-Clause"
    requires = {
        r.split(";")[0].split(">")[0].split("=")[0].split("<")[0].strip().lower()
        for r in meta.get_all("Requires-Dist")
        if "extra ==" not in r
    }
    for needed in ("napari", "qtpy", "superqt", "magicgui", "tensorflow", "keras", "tifffile"):
        assert needed in requires, f"{needed} is imported but not declared"
    assert "napari-unet = napari_unet:napari.yaml" in entry_points
    assert "napari-unet = napari_unet.cli:run" in entry_points


def test_sample_opens_from_the_unpacked_wheel(wheel, tmp_path):
    """A fresh interpreter that sees only the wheel's copy of napari_unet."""
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    manifest = yaml.safe_load((site / "napari_unet" / "napari.yaml").read_text())
    (sample,) = manifest["contributions"]["sample_data"]
    command = next(c for c in manifest["contributions"]["commands"] if c["id"] == sample["command"])
    module, func = command["python_name"].split(":")
    code = textwrap.dedent(
        f"""
        import importlib, napari_unet
        from pathlib import Path
        assert Path(napari_unet.__file__).is_relative_to({str(site)!r}), napari_unet.__file__
        layers = getattr(importlib.import_module({module!r}), {func!r})()
        from napari_unet._sample_data import sample_dir
        assert sample_dir().is_relative_to({str(site)!r}), sample_dir()
        print([(d.shape, str(d.dtype), meta["name"], kind) for d, meta, kind in layers])
        """
    )
    env = dict(os.environ, PYTHONPATH=str(site))
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "((512, 512), 'uint16', 'nuclei', 'image')" in proc.stdout
    assert "'nuclei ground truth', 'labels')" in proc.stdout


@pytest.mark.parametrize(("pyqt5_exit", "pyqt6_exit"), [(0, 0), (1, 0), (0, 1), (2, 1)])
def test_the_test_script_runs_the_pyqt6_pass_even_when_pyqt5_fails(
    tmp_path, pyqt5_exit, pyqt6_exit
):
    """scripts/test.sh (what CI runs): one failing pass must not hide the other, the
    script fails when either pass failed, and both run in two processes. Run on a copy
    whose set-up steps do nothing and whose interpreter records how it was called."""
    (tmp_path / "scripts").mkdir()
    shutil.copy2(ROOT / "scripts" / "test.sh", tmp_path / "scripts" / "test.sh")
    for name in ("system_deps.sh", "setup_env.sh"):
        (tmp_path / "scripts" / name).write_text("exit 0\n")
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    fake = tmp_path / ".venv" / "bin" / "python"
    fake.write_text(
        textwrap.dedent(
            f"""\
            #!/usr/bin/env bash
            echo "$QT_API $*" >> "{tmp_path}/calls"
            if [ "$QT_API" = pyqt5 ]; then exit {pyqt5_exit}; fi
            exit {pyqt6_exit}
            """
        )
    )
    fake.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "NAPARI_UNET_TEST_WORKERS"}
    script = ["bash", str(tmp_path / "scripts" / "test.sh")]
    proc = subprocess.run(script, capture_output=True, env=env)
    calls = (tmp_path / "calls").read_text().splitlines()
    # two processes, a test file to each (pytest-xdist), in both passes
    two = "-n 2 --dist loadfile"
    assert calls == [f"pyqt5 -m pytest {two}", f"pyqt6 -m pytest {two} -m gui"]
    assert proc.returncode == (pyqt5_exit or pyqt6_exit)
    if pyqt5_exit or pyqt6_exit:
        assert b"FAILED" in proc.stderr
    # asked for one process: pytest alone; arguments go to the PyQt5 pass only
    (tmp_path / "calls").unlink()
    env["NAPARI_UNET_TEST_WORKERS"] = "0"
    subprocess.run([*script, "tests/core"], capture_output=True, env=env)
    assert (tmp_path / "calls").read_text().splitlines() == ["pyqt5 -m pytest tests/core"]
