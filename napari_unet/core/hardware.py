"""What the machine offers: a GPU gets mixed precision and XLA, a CPU plain float32.

On a GPU, convolutions run in float16 on tensor cores with float32 weights and a float32
softmax output (Keras ``mixed_float16``); Keras compiles training steps with XLA by
itself there (``jit_compile="auto"``), and :func:`inference_jit` turns it on for
prediction. On a CPU-only machine nothing changes: float32 and no XLA (which does not pay
off for convolutions on CPUs). ``NAPARI_UNET_PRECISION=float32`` forces float32
everywhere.
"""

from __future__ import annotations

import functools
import os


@functools.lru_cache(maxsize=1)
def has_gpu() -> bool:
    """True when TensorFlow sees at least one GPU."""
    from ._tfload import import_tensorflow

    tf = import_tensorflow()

    return bool(tf.config.list_physical_devices("GPU"))


def compute_dtype_policy() -> str:
    """The Keras dtype policy for new layers: ``mixed_float16`` on a GPU, else float32.

    ``NAPARI_UNET_PRECISION`` forces one: ``float32``, ``bfloat16`` (mixed, float32
    weights; for CPUs with bfloat16 matrix units, see benchmarks/adaptation.py for why
    it is not the default yet) or ``float16`` (mixed).
    """
    forced = os.environ.get("NAPARI_UNET_PRECISION", "").lower()
    if forced in ("float32", "fp32"):
        return "float32"
    if forced in ("bfloat16", "bf16", "mixed_bfloat16"):
        return "mixed_bfloat16"
    if forced in ("float16", "fp16", "mixed_float16"):
        return "mixed_float16"
    return "mixed_float16" if has_gpu() else "float32"


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
