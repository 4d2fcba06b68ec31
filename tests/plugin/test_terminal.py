"""The GUI's TensorFlow start-up leaves the terminal quiet, as the CLI's does."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from napari_unet.core._tfload import TF_NOISE


def _stderr_of(code: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


def test_widget_workers_import_tensorflow_without_its_cpp_start_up_lines():
    plain = _stderr_of("import tensorflow as tf; tf.config.list_physical_devices()")
    noise = [ln for ln in plain.splitlines() if TF_NOISE.match(ln)]
    if not noise:
        pytest.skip("TensorFlow prints no start-up lines on this machine")
    quiet = _stderr_of(
        "import sys\n"
        "from napari_unet._widgets._workers import prepare_tensorflow\n"
        "prepare_tensorflow()\n"
        "assert 'tensorflow' in sys.modules\n"
        "import logging, tensorflow as tf\n"
        "assert tf.get_logger().level >= logging.ERROR  # no retracing notices either\n"
        "print('a line of our own', file=sys.stderr)\n"
    )
    assert [ln for ln in quiet.splitlines() if TF_NOISE.match(ln)] == []
    assert "a line of our own" in quiet
