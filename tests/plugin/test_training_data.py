"""_training_data.py: what the Train widget shows about a run, without Qt or a viewer."""

from __future__ import annotations

import sys

import pytest

from napari_unet._training_data import ModelChoice, fraction_done, stop_reason
from napari_unet.core.training.comparison import Scores, compare
from napari_unet.core.training.loop import ProgressKind, TrainProgress


def _batch(step: int, elapsed: float, total: int = 100) -> TrainProgress:
    return TrainProgress(ProgressKind.BATCH, step, total, 1, loss=0.5, elapsed=elapsed)


def test_progress_follows_epochs_or_the_time_limit_whichever_ends_first():
    assert fraction_done(_batch(25, 10.0), None) == (0.25, 100)
    # 10 of 40 s gone but only 5 of 100 steps: a quarter done, about 21 steps in all
    done, expected = fraction_done(_batch(5, 10.0), 40.0)
    assert done == pytest.approx(0.25) and expected == 21
    assert fraction_done(_batch(100, 50.0), 40.0) == (1.0, 100)
    assert fraction_done(_batch(0, 0.5), 40.0)[1] == 100  # too early to tell


def test_why_a_run_ended_in_plain_words():
    assert stop_reason("time_limit") == "time limit reached"
    assert stop_reason("stop_event") == "stopped by you"
    assert stop_reason("something_new") == "something new"


def test_the_before_and_after_panel_says_which_model_is_current():
    before, after = Scores(0.9, None, 500, 0), Scores(0.7, None, 500, 0)
    worse = compare(before, after, where="on 500 held-out pixels")
    choice = ModelChoice(("new", "n", None), ("old", "bundled nuclei model", None), worse)
    choice.current = "previous"
    text = choice.text()
    assert text.startswith(worse.summary())
    assert "scored worse, so the previous model stays current" in text
    assert text.endswith("Measured on 500 held-out pixels.")
    choice.current = "new"
    assert "'Go back to the previous one' restores bundled nuclei model." in choice.text()
    alone = ModelChoice(("new", "n", None), None, compare(None, after))
    assert "there was no model before it" in alone.text()
    # a drop on one of ten held-out objects: not clearly worse, the new model is current
    # (tp, fp, fn, right, painted, itp, ifp, ifn per object)
    each = (100, 5, 5, 0, 0, 0, 0, 0)
    units_before = (each,) * 10
    units_after = (each,) * 9 + ((60, 5, 45, 0, 0, 0, 0, 0),)
    unclear = compare(
        Scores(0.952, None, 2000, 0, units=units_before),
        Scores(0.932, None, 2000, 0, units=units_after),  # 1920 / 2060
        where="on 2,000 held-out pixels",
    )
    assert unclear.verdict == "same" and not unclear.worse
    shown = ModelChoice(("new", "n", None), ("old", "bundled nuclei model", None), unclear)
    assert "— neither clearly better nor worse across the 10 annotated objects" in shown.text()
    assert "The new model is current; 'Go back to the previous one' restores" in shown.text()


def test_the_module_imports_no_qt():
    import subprocess

    code = (
        "import sys, napari_unet._training_data;"
        "bad=[m for m in ('qtpy','PyQt5','magicgui','tensorflow') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
