"""``napari-unet predict --suggest K`` (issue 24): OUT/<stem>_suggestions.json, at most K
places to check, most doubtful first, with one line per image; a bad K is one line and
exit 2, a file napari-unet did not write is never replaced."""

from __future__ import annotations

import json

import numpy as np
import tifffile
from cli_helpers import assert_user_error, cli


def test_predict_suggest_writes_the_k_most_doubtful_places(sample_image, tmp_path):
    # a part of the sample where the model doubts 2-4 objects, with or without 2 % noise or
    # a slight blur (a margin for other CPUs)
    crop = sample_image[64:224, :160]
    tifffile.imwrite(tmp_path / "nuclei.tif", crop)
    out = tmp_path / "out"
    proc = cli("predict", tmp_path / "nuclei.tif", "--out", out, "--suggest", 3)
    assert proc.returncode == 0, proc.stderr
    path = out / "nuclei_suggestions.json"
    entries = json.loads(path.read_text())
    assert 1 <= len(entries) <= 3, entries
    labels = tifffile.imread(out / "nuclei_labels.tif")
    for e in entries:
        assert set(e) == {"bbox", "score", "reason", "label"}
        y0, x0, y1, x1 = e["bbox"]
        assert 0 <= y0 < y1 <= crop.shape[0] and 0 <= x0 < x1 <= crop.shape[1]
        assert 0 < e["score"] <= 1 and isinstance(e["reason"], str)
        if e["label"]:
            assert (labels[y0:y1, x0:x1] == e["label"]).any()
    scores = [e["score"] for e in entries]
    assert scores == sorted(scores, reverse=True)
    lines = proc.stdout.splitlines()
    assert len(lines) == 2 and "nuclei_labels.tif" in lines[0], proc.stdout
    assert lines[1].startswith(f"nuclei.tif: {len(entries)} suggestion"), lines[1]
    assert str(path) in lines[1] and entries[0]["reason"] in lines[1]

    # a bad K: one line, exit 2, before any work
    for bad in ("0", "-2", "two"):
        line = assert_user_error(
            cli("predict", tmp_path / "nuclei.tif", "--out", out, "--suggest", bad), "--suggest"
        )
        assert bad in line
    # a JSON file napari-unet did not write is refused, nothing written
    foreign = tmp_path / "other"
    foreign.mkdir()
    (foreign / "nuclei_suggestions.json").write_text('{"mine": true}\n')
    assert_user_error(
        cli("predict", tmp_path / "nuclei.tif", "--out", foreign, "--suggest", 3),
        "nuclei_suggestions.json", "--overwrite",
    )  # fmt: skip
    assert not (foreign / "nuclei_labels.tif").exists()
    assert json.loads((foreign / "nuclei_suggestions.json").read_text()) == {"mine": True}
    assert np.array_equal(tifffile.imread(out / "nuclei_labels.tif"), labels)
