"""Import TensorFlow so that it cannot clash with an OpenGL driver's LLVM (Linux).

Mesa's OpenGL drivers (llvmpipe under Xvfb, radeonsi, and every driver of Mesa's
single ``libgallium``) load their own ``libLLVM`` into the global symbol scope when
napari creates its canvas. TensorFlow's ``libtensorflow_framework.so`` carries another
LLVM and is loaded with ``RTLD_GLOBAL``. Whichever comes second binds part of its LLVM
to the other copy: importing TensorFlow after a napari viewer exists segfaults in
LLVM's static initialisers, and importing it before makes the process abort at exit
(``free(): invalid pointer`` in ``llvm::cl::opt`` destructors).

Loading TensorFlow's libraries with ``RTLD_DEEPBIND`` (their own symbols first) and
without ``RTLD_GLOBAL`` (their symbols stay private) keeps the two LLVMs apart in both
orders. :func:`import_tensorflow` does that, explicitly, when napari-unet first needs
TensorFlow; importing this module changes nothing. Set ``NAPARI_UNET_PLAIN_TF_IMPORT=1``
to turn it off.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import types
from contextlib import contextmanager

_GLOBAL_FLAGS_MODULE = "tensorflow.python.pywrap_dlopen_global_flags"


def applicable() -> bool:
    """Whether the isolated import is possible and wanted here."""
    return (
        sys.platform.startswith("linux")
        and hasattr(os, "RTLD_DEEPBIND")
        and hasattr(sys, "setdlopenflags")
        and os.environ.get("NAPARI_UNET_PLAIN_TF_IMPORT", "0") in ("0", "", "false", "False")
    )


@contextmanager
def isolated_dlopen():
    """Extension modules loaded inside keep their symbols to themselves."""
    old = sys.getdlopenflags()
    stub = types.ModuleType(_GLOBAL_FLAGS_MODULE)
    # TensorFlow would switch to RTLD_GLOBAL here; keep the flags set below instead
    stub.set_dlopen_flags = stub.reset_dlopen_flags = lambda: None
    had = _GLOBAL_FLAGS_MODULE in sys.modules
    if not had:
        sys.modules[_GLOBAL_FLAGS_MODULE] = stub
    sys.setdlopenflags((old & ~os.RTLD_GLOBAL) | os.RTLD_DEEPBIND)
    try:
        yield
    finally:
        sys.setdlopenflags(old)
        if not had and sys.modules.get(_GLOBAL_FLAGS_MODULE) is stub:
            del sys.modules[_GLOBAL_FLAGS_MODULE]


_warned = {"done": False}
#: One thread imports TensorFlow at a time: another one (a preload in the background,
#: a Segment or Train worker) waits for the import to finish rather than finding a
#: half-initialised module in ``sys.modules``.
_IMPORT_LOCK = threading.RLock()


def import_tensorflow():
    """Import TensorFlow the way napari-unet needs it inside a napari process.

    The first import of the process loads TensorFlow's libraries isolated (see the
    module docstring); later calls return the module at once. napari-unet calls this
    before it touches TensorFlow or Keras (the widgets' workers, the command line, and
    :func:`~napari_unet.core.network.architecture.build_unet` for scripts and notebooks), and nothing
    is changed for anybody else: no import hook, no interpreter-wide flags left behind.

    When TensorFlow was imported before (by another plugin, a notebook cell, a plain
    ``import keras``), its libraries are already loaded the usual way; this warns once,
    because such a process may crash once napari draws (Mesa's LLVM) — import napari-unet's
    models first, or set ``NAPARI_UNET_PLAIN_TF_IMPORT=1`` to silence it.

    Keras is imported with it, and threads take turns: one that calls this while
    another imports waits for the import to finish.
    """
    with _IMPORT_LOCK:
        tf = _import_tensorflow()
        import keras  # noqa: F401 - under the lock too: its modules import TensorFlow's
    return tf


def _import_tensorflow():
    if "tensorflow" not in sys.modules:
        if applicable():
            with isolated_dlopen():
                import tensorflow
            tensorflow._napari_unet_isolated = True
            return tensorflow
        import tensorflow

        tensorflow._napari_unet_isolated = True  # nothing to isolate here: no warning
        return tensorflow
    if (
        applicable()
        and not _warned["done"]
        and not getattr(sys.modules["tensorflow"], "_napari_unet_isolated", False)
    ):
        _warned["done"] = True
        import warnings

        warnings.warn(
            "TensorFlow was imported before napari-unet could load it isolated from "
            "OpenGL's LLVM; if napari crashes while drawing, start napari-unet's "
            "widgets (or call napari_unet.core.import_tensorflow()) before importing "
            "TensorFlow elsewhere",
            RuntimeWarning,
            stacklevel=2,
        )
    return sys.modules["tensorflow"]


# TensorFlow's C++ logging before absl is initialised ignores TF_CPP_MIN_LOG_LEVEL;
# these are the harmless start-up lines (a CUDA error on machines without a GPU among
# them) that quiet_import_tensorflow keeps off the terminal.
TF_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\)"
    r"|[IW]\d{4} "
    r"|E\d{4} .*(cuInit|cuda_platform|cuda_dnn|cuda_fft|cuda_blas|Unable to register)"
    r"|To enable the following instructions:"
    r"|.*This TensorFlow binary is optimized to use available CPU instructions)"
)


def quiet_import_tensorflow():
    """:func:`import_tensorflow` and device discovery with TensorFlow's C++ start-up
    lines filtered out of the process's stderr (other lines written meanwhile pass)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with _IMPORT_LOCK:  # a thread importing meanwhile finishes first
        if "tensorflow" in sys.modules:
            import keras  # noqa: F401 - as import_tensorflow does

            return sys.modules["tensorflow"]
        return _quiet_import()


def _quiet_import():
    import tempfile

    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, AttributeError, ValueError):  # no usable stderr descriptor
        return import_tensorflow()
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            tf = import_tensorflow()
            tf.config.list_physical_devices()  # device discovery logs here too
            # TensorFlow's Python-side notices (tf.function retracing for a new tile
            # shape, …) are for developers, not for a napari session's terminal
            tf.get_logger().setLevel("ERROR")
        finally:
            try:
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode("utf-8", errors="replace")
            kept = [ln for ln in text.splitlines() if ln.strip() and not TF_NOISE.match(ln)]
            if kept:
                print("\n".join(kept), file=sys.stderr, flush=True)
    return tf
