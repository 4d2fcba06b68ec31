"""The reader and the writer use napari's Qt-free glue (``_layers``, ``_state``), never
the widgets: opening or saving a training set imports no Qt, no magicgui, no widget."""

from __future__ import annotations

import subprocess
import sys
import textwrap

WIDGETS_AND_QT = ("qtpy", "magicgui", "PyQt5", "PyQt6", "superqt", "napari_unet._widgets")


def test_reader_and_writer_import_no_qt_and_no_widgets(tmp_path):
    code = textwrap.dedent(
        f"""
        import sys
        import numpy as np
        import napari_unet._reader as reader, napari_unet._writer as writer
        bad = [m for m in {WIDGETS_AND_QT!r} if m in sys.modules]
        assert not bad, f"importing the reader and writer imported {{bad}}"

        # and using them: write a set from layer data, read it back as layers
        ann = np.zeros((16, 16), np.uint8)
        ann[:4] = 1
        ann[8:12, 8:12] = 2
        layer_data = [
            (np.ones((16, 16), np.float32), {{"name": "a", "opacity": 0.5}}, "image"),
            (ann, {{"name": "a annotation"}}, "labels"),
        ]
        writer.write_layers({str(tmp_path / "set")!r}, layer_data, None)
        layers = reader.get_reader({str(tmp_path / "set")!r})({str(tmp_path / "set")!r})
        assert [(m["name"], kind) for _, m, kind in layers] == [
            ("a", "image"), ("a annotation", "labels")
        ]
        assert layers[0][1]["opacity"] == 0.5
        assert (layers[1][0] == ann).all()
        bad = [m for m in {WIDGETS_AND_QT!r} if m in sys.modules]
        assert not bad, f"reading and writing a training set imported {{bad}}"
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_napari_glue_imports_no_qt():
    code = (
        "import sys, napari_unet._layers, napari_unet._state;"
        f"bad = [m for m in {WIDGETS_AND_QT!r} if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
