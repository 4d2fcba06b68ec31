"""Working folders of lazy results shown in napari.

Segment on a huge layer writes its labels and probabilities as OME-Zarr images that
napari reads lazily; they must live on disk as long as a layer shows them. Each run gets
its own folder under :func:`work_root` (the user's cache folder, or
``$NAPARI_UNET_WORK_DIR``: never the image's own folder). A folder is removed when no
layer of the viewer shows it any more (the layers were removed, or a later run replaced
their data), when napari exits, and, for folders left behind by a session that crashed,
the next time Segment writes one. Only folders this module made are ever removed (they
carry :data:`OWNER_FILE`).

napari glue without Qt: it reads layer metadata, never imports qtpy or the widgets.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import tempfile
import threading
import weakref
from pathlib import Path
from typing import Any

#: Layer-metadata key: the working folder whose OME-Zarr images a layer shows.
WORK_KEY = "napari_unet_work"
#: The file that marks a working folder as ours, with the process that owns it.
OWNER_FILE = "napari-unet-work.json"
#: Environment variable naming another place for the working folders (a scratch disk).
ENV = "NAPARI_UNET_WORK_DIR"

_mine: set[Path] = set()
_pinned: set[Path] = set()  # made, not shown yet: kept whatever layers show
_lock = threading.Lock()
_swept = False


def work_root() -> Path:
    """Where the working folders go: ``$NAPARI_UNET_WORK_DIR``, else the user's cache
    folder (``~/.cache/napari-unet/segment`` on Linux), which is on a real disk where
    the temporary folder may be a small RAM disk."""
    env = os.environ.get(ENV)
    if env:
        return Path(env)
    from platformdirs import user_cache_path

    return user_cache_path("napari-unet") / "segment"


def new_work_folder(name: str) -> Path:
    """A new, empty working folder for the results of one run on image ``name``."""
    global _swept
    root = work_root()
    root.mkdir(parents=True, exist_ok=True)
    if not _swept:
        _swept = True
        sweep_stale(root)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:40] or "image"
    folder = Path(tempfile.mkdtemp(prefix=f"{stem}-", dir=root))
    (folder / OWNER_FILE).write_text(json.dumps({"pid": os.getpid(), "image": name}))
    with _lock:
        _mine.add(folder)
        _pinned.add(folder)
    return folder


def unpin(folder: str | os.PathLike) -> None:
    """``folder`` is shown by layers now: from here on it lives as long as they do."""
    with _lock:
        _pinned.discard(Path(folder))


def is_ours(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` is a working folder made by :func:`new_work_folder`."""
    return (Path(folder) / OWNER_FILE).is_file()


def remove(folder: str | os.PathLike) -> None:
    """Remove one of our working folders (anything else is left alone)."""
    folder = Path(folder)
    with _lock:
        _mine.discard(folder)
        _pinned.discard(folder)
    if is_ours(folder):
        shutil.rmtree(folder, ignore_errors=True)


def shown_folders(viewer: Any) -> set[Path]:
    """The working folders that layers of ``viewer`` show."""
    return {Path(f) for layer in viewer.layers if (f := layer.metadata.get(WORK_KEY))}


def release_unused(viewer: Any) -> list[Path]:
    """Remove the folders of this process that no layer of ``viewer`` shows any more;
    returns them. (One viewer per session is napari's way; folders of another viewer
    of this process are kept while it shows them, see :func:`watch`.)"""
    shown = shown_folders(viewer)
    for ref in list(_viewers):
        other = ref()
        if other is None:
            _viewers.remove(ref)
        elif other is not viewer:
            try:
                shown |= shown_folders(other)
            except RuntimeError:  # a closed viewer
                pass
    with _lock:
        unused = [f for f in _mine if f not in shown and f not in _pinned]
    for f in unused:
        remove(f)
    return unused


_viewers: list[weakref.ref] = []  # viewers watched (weakly: a closed one may go)


def watch(viewer: Any) -> None:
    """Release folders when layers of ``viewer`` are removed (idempotent)."""
    if any(ref() is viewer for ref in _viewers):
        return
    _viewers.append(weakref.ref(viewer))
    ref = weakref.ref(viewer)

    def removed(event) -> None:
        v = ref()
        if v is not None:
            release_unused(v)

    viewer.layers.events.removed.connect(removed)


def _pid_alive(pid: int) -> bool:
    try:
        import psutil

        return psutil.pid_exists(pid)
    except Exception:  # noqa: BLE001 - cannot tell: assume it lives
        return True


def sweep_stale(root: Path) -> None:
    """Remove working folders under ``root`` whose process is gone (a crash, a kill)."""
    try:
        entries = list(root.iterdir())
    except OSError:
        return
    for folder in entries:
        marker = folder / OWNER_FILE
        if not marker.is_file():
            continue
        try:
            pid = int(json.loads(marker.read_text())["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if pid != os.getpid() and not _pid_alive(pid):
            shutil.rmtree(folder, ignore_errors=True)


@atexit.register
def _remove_all() -> None:
    for f in list(_mine):
        remove(f)
