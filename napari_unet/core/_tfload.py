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
orders. :func:`install` (run when this module is imported) arranges that for the first ``import tensorflow`` of the
process, whoever triggers it (``import keras`` included); it imports nothing itself.
Set ``NAPARI_UNET_PLAIN_TF_IMPORT=1`` to turn it off.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import re
import sys
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


class _Loader(importlib.abc.Loader):
    """Runs TensorFlow's package ``__init__`` (which loads its libraries) isolated."""

    def __init__(self, inner) -> None:
        self._inner = inner

    def create_module(self, spec):
        return self._inner.create_module(spec)

    def exec_module(self, module) -> None:
        module.__loader__ = self._inner
        if module.__spec__ is not None:
            module.__spec__.loader = self._inner
        with isolated_dlopen():
            self._inner.exec_module(module)

    def __getattr__(self, name):
        return getattr(self._inner, name)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname != "tensorflow":
            return None
        uninstall()  # once is enough: later imports find the module loaded
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _Loader(spec.loader)
        return spec


_finder = _Finder()


def install() -> None:
    """Route the process's first ``import tensorflow`` through :func:`isolated_dlopen`."""
    if applicable() and "tensorflow" not in sys.modules and _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)


def uninstall() -> None:
    if _finder in sys.meta_path:
        sys.meta_path.remove(_finder)


def import_tensorflow():
    """``import tensorflow``, isolated when it is the first import in the process."""
    if "tensorflow" not in sys.modules and applicable():
        with isolated_dlopen():
            import tensorflow
        return tensorflow
    import tensorflow

    return tensorflow


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
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
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


install()  # importing this module (napari_unet.core does) is enough
