"""The U-Net builder (Ronneberger, Fischer & Brox 2015) and its size arithmetic.

Contracting path: two 3×3 convolutions (+ batch norm) + ReLU per level, 2×2 max pooling,
filters doubling per level. Expanding path: 2×2 transposed convolution, concatenation
with the skip connection (centre-cropped for unpadded convolutions), two 3×3
convolutions. A 1×1 convolution gives softmax scores for background, each object class
and the object boundary.
"""

from __future__ import annotations

from ..config import UNetConfig
from ..errors import UserInputError


def _valid_trace(config: UNetConfig, size: int) -> list[int] | None:
    """Sizes along the contracting path for an unpadded U-Net, or None if invalid."""
    sizes = []
    n = size
    for _ in range(config.depth):
        n -= 4
        if n <= 0 or n % 2:
            return None
        sizes.append(n)
        n //= 2
    n -= 4
    if n <= 0:
        return None
    for level in reversed(range(config.depth)):
        n = 2 * n
        if n > sizes[level]:
            return None
        n -= 4
        if n <= 0:
            return None
    return sizes + [n]


def output_size(config: UNetConfig, size: int) -> int:
    """Output edge length for an input edge of ``size`` pixels.

    Raises
    ------
    UserInputError
        If ``size`` is not a valid input size for this architecture.
    """
    if config.padding == "same":
        if size <= 0 or size % config.size_multiple:
            raise UserInputError(
                f"input size {size} is not a multiple of {config.size_multiple} "
                f"(2**depth); pad the image or pick another size"
            )
        return size
    trace = _valid_trace(config, size)
    if trace is None:
        near = valid_input_sizes(config, max(1, size - 64), size + 64)
        hint = ", ".join(str(s) for s in near[:6]) or "none nearby"
        raise UserInputError(
            f"{size} px is not a valid input size for an unpadded U-Net of depth "
            f"{config.depth}; valid sizes near it: {hint}"
        )
    return trace[-1]


def valid_input_sizes(config: UNetConfig, min_size: int = 1, max_size: int = 1024) -> list[int]:
    """All input edge lengths in ``[min_size, max_size]`` the network accepts."""
    if config.padding == "same":
        m = config.size_multiple
        first = max(m, -(-min_size // m) * m)
        return list(range(first, max_size + 1, m))
    return [s for s in range(max(1, min_size), max_size + 1) if _valid_trace(config, s)]


def skip_crops(config: UNetConfig) -> list[int]:
    """Pixels cropped on each side of every skip connection (0 for ``same``)."""
    if config.padding == "same":
        return [0] * config.depth
    size = valid_input_sizes(config, 1, 4096)[0]
    sizes = _valid_trace(config, size)[: config.depth]
    crops = [0] * config.depth
    n = sizes[-1] // 2 - 4
    for level in reversed(range(config.depth)):
        n = 2 * n
        crops[level] = (sizes[level] - n) // 2
        n -= 4
    return crops


def encoder_layers(config: UNetConfig) -> list[str]:
    """The layers :func:`build_unet` names for the end of the encoder: the bottleneck's
    last activation and the deepest level of the contracting path's."""
    return ["bottleneck_relu2", f"down{config.depth - 1}_relu2"]


def receptive_field_radius(config: UNetConfig) -> int:
    """Upper bound on how far (in pixels) an input pixel influences an output pixel.

    Two 3×3 convolutions per level and path, plus pooling and up-sampling offsets.
    Tiles with at least this much context per side reproduce a whole-image pass.
    """
    d = config.depth
    per_level = sum(2 * 2**lvl + 2 * 2**lvl + 2**lvl + 2**lvl for lvl in range(d))
    return per_level + 2 * 2**d


def build_unet(
    config: UNetConfig,
    name: str = "unet",
    dtype_policy: str | None = None,
    fused: bool = False,
):
    """Build the Keras U-Net for ``config`` (input shape ``(None, None, channels)``).

    ``dtype_policy`` defaults to :func:`~napari_unet.core.hardware.compute_dtype_policy`
    (mixed float16 on a GPU, mixed bfloat16 on a CPU with bfloat16 matrix units,
    float32 elsewhere); weights are float32 either way, so model files do not depend on
    where they were made. ``fused=True`` normalises through TensorFlow's fused kernel
    (:class:`~napari_unet.core.network.fused_kernels.FusedBatchNormalization`, same weights and
    results, several times faster on a CPU), up-convolves as a 1×1 convolution and
    computes the scores' softmax elementwise (:mod:`~napari_unet.core.network.fused_kernels`): that is
    the network that trains and predicts. The default, plain Keras layers only, is what model files hold.

    Returns
    -------
    keras.Model
        Softmax output with ``config.n_outputs`` channels, float32 even under a
        mixed-precision policy.
    """
    from .._tfload import import_tensorflow

    import_tensorflow()  # first: isolated from OpenGL's LLVM inside napari
    import keras
    from keras import layers

    from ..hardware import compute_dtype_policy

    policy = dtype_policy or compute_dtype_policy()
    pad = config.padding
    bn = config.batch_norm
    BatchNorm, UpConv, Conv = layers.BatchNormalization, layers.Conv2DTranspose, layers.Conv2D
    Scores = layers.Conv2D
    if fused:
        from .fused_kernels import FoldingConv2D as Conv
        from .fused_kernels import FusedBatchNormalization as BatchNorm
        from .fused_kernels import ScoresConv2D as Scores
        from .fused_kernels import UpConvolution as UpConv

    # bfloat16 keeps 8 significant bits: the image would lose its fine grey levels, and
    # rounding the first level's kernels moves the probabilities most (up to 0.06 on the
    # bundled model), so the first level (about 5 % of the work) computes in float32
    first = "float32" if policy == "mixed_bfloat16" else policy

    def conv_block(x, filters: int, prefix: str):
        for i in (1, 2):
            dtype = first if prefix == "down0" else policy
            conv = (Conv if bn else layers.Conv2D)(
                filters,
                3,
                padding=pad,
                use_bias=not bn,
                kernel_initializer="he_normal",
                name=f"{prefix}_conv{i}",
                dtype=dtype,
            )
            x = conv(x)
            if bn:
                norm = BatchNorm(name=f"{prefix}_bn{i}", dtype=dtype)
                x = norm(x)
                if fused:
                    conv.fold(norm)
            x = layers.Activation("relu", name=f"{prefix}_relu{i}", dtype=dtype)(x)
        return x

    inputs = keras.Input((None, None, config.input_channels), name="image")
    x = inputs
    skips = []
    for level in range(config.depth):
        x = conv_block(x, config.base_filters * 2**level, f"down{level}")
        skips.append(x)
        # the first level's pooling in its own dtype: a quarter of the pixels to cast to
        # the next level's (max commutes with rounding: the same values either way)
        x = layers.MaxPooling2D(2, name=f"pool{level}", dtype=first if level == 0 else policy)(x)
    x = conv_block(x, config.base_filters * 2**config.depth, "bottleneck")
    if config.dropout > 0:
        x = layers.Dropout(config.dropout, name="bottleneck_dropout", dtype=policy)(x)
    crops = skip_crops(config)
    for level in reversed(range(config.depth)):
        filters = config.base_filters * 2**level
        x = UpConv(
            filters,
            2,
            strides=2,
            kernel_initializer="he_normal",
            name=f"up{level}_transpose",
            dtype=policy,
        )(x)
        skip = skips[level]
        if crops[level]:
            skip = layers.Cropping2D(crops[level], name=f"up{level}_crop", dtype=policy)(skip)
        x = layers.Concatenate(name=f"up{level}_concat", dtype=policy)([skip, x])
        x = conv_block(x, filters, f"up{level}")
    outputs = Scores(config.n_outputs, 1, activation="softmax", dtype="float32", name="scores")(x)
    return keras.Model(inputs, outputs, name=name)


def initialise_weights(model, seed: int) -> None:
    """Draw every kernel again from its layer's own initializer, seeded from ``seed``.

    Reproducible without seeding the process-wide generators (Python's, NumPy's,
    TensorFlow's) that napari, other plugins and the user's notebook share: each layer
    gets its own integer seed from a local NumPy generator. Biases and batch
    normalisation keep their constant starting values.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        init = getattr(layer, "kernel_initializer", None)
        kernel = getattr(layer, "kernel", None)
        if init is None or kernel is None:
            continue
        config = {**init.get_config(), "seed": int(rng.integers(2**31 - 1))}
        kernel.assign(init.__class__.from_config(config)(tuple(kernel.shape), kernel.dtype))


def reseed_random_layers(model, seed: int) -> None:
    """Restart the random layers' own generators (dropout) from ``seed``, so a training
    run is reproducible without touching any process-wide random state."""
    for i, layer in enumerate(model.layers):
        gen = getattr(layer, "seed_generator", None)
        if gen is not None:
            gen.state.assign([int(seed) + i, 0])


#: Layer classes a napari-unet model may contain; anything else (Lambda above all)
#: makes a model file foreign.
ALLOWED_LAYER_CLASSES = frozenset(
    {
        "InputLayer",
        "Conv2D",
        "BatchNormalization",
        "Activation",
        "MaxPooling2D",
        "Dropout",
        "Conv2DTranspose",
        "Cropping2D",
        "Concatenate",
        "Functional",
        "Model",
    }
)
