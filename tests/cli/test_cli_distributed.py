"""`napari-unet predict` on a real dask.distributed cluster (worker processes): the same
labels as in one process, and one plain line with nothing left behind when the
scheduler cannot be reached or a worker dies mid-run."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

import numpy as np
import pytest
import tifffile
import zarr
from helpers import make_blobs

from napari_unet import cli
from napari_unet.core.jobs import file_jobs as batch
from napari_unet.core.prediction import cluster as cluster_module


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from napari_unet.core.network.model_file import bundled_model_path

    d = tmp_path_factory.mktemp("dist")
    model = bundled_model_path("nuclei")  # real objects to stitch
    rows = [
        np.concatenate([make_blobs(128, 14, seed=60 + 3 * i + j)[0] for j in range(3)], 1)
        for i in range(3)
    ]
    image = d / "plate.tif"
    tifffile.imwrite(image, np.concatenate(rows, 0))  # 384², 3 × 3 blocks of 128
    return {"model": model, "image": image}


@pytest.fixture
def small_blocks(monkeypatch):
    monkeypatch.setattr(batch, "LARGE_BLOCK", 128)


def _predict(setup, out, *extra) -> int:
    argv = ["predict", str(setup["image"]), "--model", str(setup["model"]), "--out", str(out)]
    return cli.main(argv + ["--format", "zarr", *extra])


def _labels(out):
    return zarr.open_array(str(out / "plate_labels.zarr" / "0"), mode="r")[...]


@pytest.fixture(scope="module")
def cluster():
    """Two worker processes; a task whose worker dies is not retried (allowed-failures
    0), so a dead worker ends the run at once."""
    import dask
    from distributed import Client, LocalCluster

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        lc = LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        )
        client = Client(lc)
        yield lc, client
        client.close()
        lc.close()


def test_a_cluster_gives_the_labels_of_one_process(setup, small_blocks, tmp_path, cluster, capsys):
    # at the image's own scale: 3 × 3 blocks, every block stitched with 8 neighbours
    assert _predict(setup, tmp_path / "one", "--diameter", "0") == 0
    here = _labels(tmp_path / "one")
    assert here.max() > 50 and len(np.unique(here)) == here.max() + 1
    lc, _ = cluster
    sched = ["--scheduler", lc.scheduler_address, "--diameter", "0"]
    assert _predict(setup, tmp_path / "sched", *sched) == 0
    np.testing.assert_array_equal(_labels(tmp_path / "sched"), here)
    err = capsys.readouterr().err
    assert "predicting on dask: 2 workers of tcp://" in err and "stitched block 9/9" in err
    assert "Traceback" not in err


def test_workers_flag_starts_its_own_cluster(setup, small_blocks, tmp_path, capsys):
    # one worker (a busy machine); the object size measured, the blocks seen rescaled
    assert _predict(setup, tmp_path / "own", "--workers", "1") == 0
    said = capsys.readouterr()
    assert "1 worker process here" in said.err and "rescaled" in said.out, said
    assert _labels(tmp_path / "own").max() > 50


def test_an_unreachable_scheduler_is_one_line(setup, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cluster_module, "SCHEDULER_TIMEOUT", 2)
    out = tmp_path / "out"
    assert _predict(setup, out, "--scheduler", "tcp://127.0.0.1:9") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot reach the dask scheduler at tcp://127.0.0.1:9" in err[0]
    assert not out.exists() or list(out.iterdir()) == []


def test_a_worker_dying_mid_run_is_one_line_and_leaves_nothing(
    setup, small_blocks, tmp_path, cluster, capsys
):
    lc, client = cluster
    out = tmp_path / "out"
    result = {}
    run = threading.Thread(
        target=lambda: result.update(rc=_predict(setup, out, "--scheduler", lc.scheduler_address))
    )
    run.start()
    victim = None
    deadline = time.monotonic() + 120
    while victim is None and time.monotonic() < deadline and run.is_alive():
        for worker, keys in client.processing().items():
            if any("napari-unet-predict" in str(k) for k in keys):
                victim = worker
                break
        time.sleep(0.05)
    assert victim is not None, "no block was ever running"
    pid = client.run(os.getpid, workers=[victim])[victim]
    os.kill(pid, signal.SIGKILL)
    run.join(timeout=180)
    assert not run.is_alive()
    assert result["rc"] == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if "error" in ln]
    assert len(err) == 1 and "a dask worker died while running predict block" in err[0], err
    assert list(out.iterdir()) == [], "partial or temporary outputs were left behind"
