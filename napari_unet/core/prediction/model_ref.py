"""What a process that runs block tasks needs (this one, or a dask worker anywhere):
the network, reached by reference (:class:`ModelRef`: a file and a digest, loaded
once per process, never pickled), and a heap that gives freed block buffers back to
the system (:func:`bound_heap`).
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class ModelRef:
    """What a task needs to find the network: a ``.keras`` path every worker can read,
    a digest of the weights (the cache key) and the function that loads such a file
    (``UNet.load``: the graph is handed the network's class, never imports it).
    Pickles as two strings and a name."""

    path: str
    key: str
    load: Callable = field(compare=False)


_NETS: dict[str, object] = {}
_NETS_LOCK = threading.Lock()


def weights_digest(net) -> str:
    """A digest of a network's weights and architecture (cache key of :class:`ModelRef`)."""
    h = hashlib.sha1(repr(sorted(net.config.to_dict().items())).encode())
    for w in net.keras_model.get_weights():
        h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest()[:16]


def model_ref(
    net, model_path: str | os.PathLike | None, folder: str | os.PathLike, save: bool = True
) -> ModelRef:
    """A reference to ``net`` for tasks: ``model_path`` when it is the file ``net`` was
    loaded from unchanged, else a copy saved into ``folder`` (which workers can read;
    not saved when ``save`` is false: every task runs in this process).

    ``net`` is also registered in this process, so tasks run here never load it again.
    """
    key = weights_digest(net)
    if model_path is None and not save:
        path = Path(folder) / f"model-{key}.keras"
    elif model_path is None:
        path = Path(folder) / f"model-{key}.keras"
        if not path.exists():
            net.save(path)
    else:
        path = Path(model_path).resolve()
    with _NETS_LOCK:
        _NETS[key] = net
    return ModelRef(str(path), key, type(net).load)


def network(ref: ModelRef):
    """The network of ``ref``, loaded once per process."""
    with _NETS_LOCK:
        net = _NETS.get(ref.key)
        if net is None:
            from .._tfload import quiet_import_tensorflow

            quiet_import_tensorflow()  # a worker's terminal is the user's too
            net = _NETS[ref.key] = ref.load(ref.path)
    return net


_HEAP_BOUNDED = False

#: Buffers from this size up are mapped on their own and unmapped when freed (glibc).
HEAP_MMAP_THRESHOLD = 1 << 20


def bound_heap() -> bool:
    """Make this process give the memory of freed block-sized buffers back to the system
    (glibc on Linux; elsewhere nothing happens). Returns whether it took effect.

    glibc serves a buffer of more than 128 KiB from a mapping of its own, unmapped when
    it is freed, but raises that limit to the size of every such buffer freed, up to
    32 MiB. After the first block, a block's many maps of a few MiB to ~20 MiB come
    from the heap, which fragments and rarely shrinks, so the resident memory of a
    block-wise run crept up block after block (by ~250 MB over the first ten blocks of
    2048²) to settle well above one block's working set. A fixed limit of
    :data:`HEAP_MMAP_THRESHOLD` stops that. It holds for the whole process, so it is
    set only where a process does this work alone: the command line and dask workers
    (``predict_to_zarr(bound_heap=True)``), not napari's.
    """
    global _HEAP_BOUNDED
    if _HEAP_BOUNDED:
        return True
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (or no mallopt): leave the allocator be
        return False
    m_mmap_threshold = -3  # glibc's M_MMAP_THRESHOLD
    _HEAP_BOUNDED = bool(mallopt(m_mmap_threshold, HEAP_MMAP_THRESHOLD))
    return _HEAP_BOUNDED
