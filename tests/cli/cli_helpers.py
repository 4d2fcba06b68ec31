"""Helpers of the command-line tests: run ``napari-unet`` in a subprocess, check a plain
user error."""

from __future__ import annotations

import os
import subprocess
import sys


def cli(*args, cwd=None, timeout=300, env_extra=None) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1", **(env_extra or {}))
    return subprocess.run(
        [sys.executable, "-m", "napari_unet.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
    )


def assert_user_error(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit code 2, exactly one line on stderr, no traceback; return that line."""
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1, proc.stderr
    line = lines[0]
    assert line.startswith("napari-unet: error: ") and len(line) > 25, line
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment.lower() in line.lower(), line
    return line
