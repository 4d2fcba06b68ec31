"""What the machine offers, and the precision the network computes in there.

* A GPU: convolutions in float16 on tensor cores with float32 weights and a float32
  softmax output (Keras ``mixed_float16``); Keras compiles training steps with XLA by
  itself there (``jit_compile="auto"``), and :func:`inference_jit` turns it on for
  prediction.
* A CPU with bfloat16 matrix units (Intel AMX-BF16: Xeon Sapphire Rapids and later)
  and TensorFlow's oneDNN kernels on: ``mixed_bfloat16``, float32 weights. oneDNN runs
  the convolutions on the AMX tiles; ``benchmarks/precision.py`` measures the gain and
  the agreement with float32 side by side.
* Any other CPU: float32, no XLA (which does not pay off for convolutions on CPUs).
  That includes CPUs with AVX512-BF16 but no AMX (Cooper Lake, AMD Zen 4 and 5):
  with oneDNN capped at that instruction set (``ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16``)
  on an AMX machine, bfloat16 trained at 0.6–0.97× and predicted at 0.6–0.7× the
  speed of float32 (benchmarks/RESULTS.md).

``NAPARI_UNET_PRECISION`` forces one: ``float32``, ``bfloat16`` or ``float16`` (both
mixed, float32 weights). Model files are float32 whatever computed them.
"""

from __future__ import annotations

import functools
import os
import sys

#: oneDNN's names for instruction-set caps (``ONEDNN_MAX_CPU_ISA``) that still allow
#: the AMX tiles, and those that stop at AVX512 with bfloat16 dot products.
_ISA_WITH_AMX = ("AMX", "ALL", "DEFAULT")
_ISA_WITH_AVX512_BF16 = ("AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX10_1_512")


@functools.lru_cache(maxsize=1)
def has_gpu() -> bool:
    """True when TensorFlow sees at least one GPU."""
    from ._tfload import import_tensorflow

    tf = import_tensorflow()

    return bool(tf.config.list_physical_devices("GPU"))


def _cpu_flags(cpuinfo: str) -> set[str]:
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


@functools.lru_cache(maxsize=4)
def _cpuinfo_flags(path: str = "/proc/cpuinfo") -> frozenset[str]:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return frozenset(_cpu_flags(f.read()))
    except OSError:
        return frozenset()


def cpu_bfloat16_units(flags: set[str] | frozenset[str] | None = None) -> str | None:
    """The CPU's bfloat16 matrix hardware as oneDNN may use it: ``"amx"``,
    ``"avx512_bf16"`` or ``None``.

    Read from the CPU flags (``/proc/cpuinfo``; other systems report ``None``) and
    capped by ``ONEDNN_MAX_CPU_ISA`` as oneDNN caps itself.
    """
    if flags is None:
        if not sys.platform.startswith("linux"):
            return None
        flags = _cpuinfo_flags()
    found = None
    if "amx_bf16" in flags and "amx_tile" in flags:
        found = "amx"
    elif "avx512_bf16" in flags:
        found = "avx512_bf16"
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper()
    if found is None or not cap or any(k in cap for k in _ISA_WITH_AMX):
        return found
    if any(cap.startswith(k) for k in _ISA_WITH_AVX512_BF16) and "avx512_bf16" in flags:
        return "avx512_bf16"
    return None


def onednn_enabled() -> bool:
    """Whether TensorFlow runs its oneDNN kernels (``TF_ENABLE_ONEDNN_OPTS``); bfloat16
    without them falls back on slow generic kernels."""
    try:
        from tensorflow.python.util import _pywrap_util_port

        return bool(_pywrap_util_port.IsMklEnabled())
    except Exception:  # noqa: BLE001 - a TensorFlow without that probe: read the switch
        return os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1") not in ("0", "false", "False")


def forced_policy() -> str | None:
    """The policy ``NAPARI_UNET_PRECISION`` forces, or ``None``."""
    forced = os.environ.get("NAPARI_UNET_PRECISION", "").strip().lower()
    if forced in ("float32", "fp32"):
        return "float32"
    if forced in ("bfloat16", "bf16", "mixed_bfloat16"):
        return "mixed_bfloat16"
    if forced in ("float16", "fp16", "mixed_float16"):
        return "mixed_float16"
    return None


def automatic_policy(gpu: bool, bf16_units: str | None, onednn: bool) -> str:
    """The policy the hardware gets when nothing is forced (see the module docstring)."""
    if gpu:
        return "mixed_float16"
    if bf16_units == "amx" and onednn:
        return "mixed_bfloat16"
    return "float32"


def compute_dtype_policy() -> str:
    """The Keras dtype policy for new networks: ``NAPARI_UNET_PRECISION`` if set, else
    ``mixed_float16`` on a GPU, ``mixed_bfloat16`` on a CPU with AMX-BF16 and oneDNN,
    ``float32`` elsewhere."""
    forced = forced_policy()
    if forced is not None:
        return forced
    gpu = has_gpu()
    units = None if gpu else cpu_bfloat16_units()
    return automatic_policy(gpu, units, onednn_enabled() if units else False)


def inference_jit() -> bool:
    """Whether to XLA-compile the prediction function."""
    return has_gpu() and os.environ.get("NAPARI_UNET_XLA", "1") != "0"


def allow_gpu_memory_growth() -> None:
    """Let TensorFlow allocate GPU memory as it needs it instead of all of it at its
    first use, so the napari process (its canvas, other plugins) keeps the rest. Must
    run before TensorFlow touches a GPU; later it is a no-op."""
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except (RuntimeError, ValueError):  # already initialised: leave it
            pass
