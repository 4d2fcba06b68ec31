"""Batch normalisation through TensorFlow's fused kernel, for the networks that compute.

Keras 3's ``BatchNormalization`` is written in elementwise operations: it casts its input
to float32, computes the moments with ``tf.nn.moments`` and normalises with
``tf.nn.batch_normalization``, then casts back. On a CPU that is about twenty small
kernels per layer and as many again for the gradient, none of them a oneDNN primitive;
in bfloat16 they and the casts around them cost more than all the convolutions of the
step (``benchmarks/precision.py`` prints the profile). TensorFlow's
``FusedBatchNormV3`` does the same in one oneDNN primitive (forward and gradient), takes
bfloat16 or float16 activations with float32 statistics, and lets TensorFlow's graph
rewriter fold the normalisation and the ReLU after it into the convolution before it
when predicting.

:class:`FusedBatchNormalization` has the variables, the configuration and the results
of ``BatchNormalization`` (same moving averages, with the biased batch variance), so
weights move between the two with ``set_weights``. Only the networks that train and
predict use it; the network written to a model file is built from plain Keras layers
(:func:`~napari_unet.core.network.architecture.build_unet` with ``fused=False``), so files stay
loadable by any Keras.
"""

from __future__ import annotations

from .._tfload import import_tensorflow

tf = import_tensorflow()  # importing this module needs TensorFlow: load it isolated

import weakref  # noqa: E402

import keras  # noqa: E402 - after the isolated TensorFlow import

try:  # reads a float32 variable as float32 inside a mixed-precision layer
    from keras.src.backend import AutocastScope as _AutocastScope
except ImportError:  # pragma: no cover - another Keras: read it autocast (one more rounding)
    _AutocastScope = None


def _float32(variable):
    """``variable``'s value in float32, not rounded to the layer's compute dtype first."""
    if _AutocastScope is None:
        return tf.cast(variable.value, tf.float32)
    with _AutocastScope(None):
        return tf.cast(variable.value, tf.float32)


class FusedBatchNormalization(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` on channels-last images, in one fused kernel.

    Falls back on the Keras implementation for what the fused kernel does not do
    (masks, batch renormalisation, a channel axis other than the last, inputs that are
    not 4-D, an epsilon below 1.001e-5). When predicting, a normalisation folded into
    the convolution before it (:meth:`FoldingConv2D.fold`) passes its input through.
    """

    _folded = False

    def fusable(self, rank: int = 4) -> bool:
        return (
            not self.renorm
            and rank == 4
            and self.axis in (-1, 3)
            and self.epsilon >= 1.001e-5  # the kernel's smallest
        )

    def call(self, inputs, training=None, mask=None):
        if mask is not None or not self.fusable(len(inputs.shape)):
            return super().call(inputs, training=training, mask=mask)
        if self._folded and not (training and self.trainable):
            return inputs  # the convolution before applied it
        x = inputs
        if x.dtype not in (tf.float32, tf.bfloat16, tf.float16):
            x = tf.cast(x, tf.float32)
        channels = tf.shape(x)[-1]
        # statistics, scale and offset stay float32 (the kernel's U type)
        gamma = self.gamma.value if self.scale else tf.ones([channels], tf.float32)
        beta = self.beta.value if self.center else tf.zeros([channels], tf.float32)
        if training and self.trainable:
            y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                x, gamma, beta, epsilon=self.epsilon, is_training=True
            )
            # the kernel reports the unbiased variance; Keras averages the biased one
            n = tf.cast(tf.size(x) // channels, tf.float32)
            variance = variance * ((n - 1.0) / tf.maximum(n, 1.0))
            mean, variance = tf.stop_gradient(mean), tf.stop_gradient(variance)
            m = self.momentum
            self.moving_mean.assign(self.moving_mean.value * m + mean * (1.0 - m))
            self.moving_variance.assign(self.moving_variance.value * m + variance * (1.0 - m))
        else:
            y, _, _ = tf.compat.v1.nn.fused_batch_norm(
                x,
                gamma,
                beta,
                mean=self.moving_mean.value,
                variance=self.moving_variance.value,
                epsilon=self.epsilon,
                is_training=False,
            )
        return tf.cast(y, self.compute_dtype)


class UpConvolution(keras.layers.Conv2DTranspose):
    """``keras.layers.Conv2DTranspose`` with a 2×2 kernel and stride 2, computed as a 1×1
    convolution to four times the filters followed by ``depth_to_space``.

    A stride-2, 2×2 transposed convolution writes each input pixel's 2×2 output block
    from that pixel alone: exactly a 1×1 convolution whose ``4 × filters`` outputs are
    the block's four pixels. oneDNN runs that as a plain convolution with the bias
    fused in (on AMX in bfloat16), where the transposed convolution took a strided
    backward-data kernel plus a separate bias addition. Same variables and results as
    the Keras layer; other kernel sizes and strides use the Keras implementation.
    """

    def call(self, inputs):
        plain = (
            tuple(self.kernel_size) == (2, 2)
            and tuple(self.strides) == (2, 2)
            and tuple(self.dilation_rate) == (1, 1)
            and self.data_format == "channels_last"
            and self.output_padding is None
            and len(inputs.shape) == 4
        )
        if not plain:
            return super().call(inputs)
        kernel = self.kernel  # (2, 2, filters, in), autocast to the compute dtype
        cin = tf.shape(kernel)[3]
        # (in, a, b, filters) -> (1, 1, in, 4·filters): output channel (2a + b)·filters + f
        w = tf.reshape(tf.transpose(kernel, [3, 0, 1, 2]), [1, 1, cin, 4 * self.filters])
        y = tf.nn.conv2d(inputs, w, 1, "VALID")
        if self.use_bias:
            y = tf.nn.bias_add(y, tf.tile(tf.cast(self.bias, y.dtype), [4]))
        y = tf.nn.depth_to_space(y, 2)
        if self.activation is not None:
            y = self.activation(y)
        return y


class FoldingConv2D(keras.layers.Conv2D):
    """``keras.layers.Conv2D`` (no bias) that, when predicting, applies the batch
    normalisation after it as its own kernel scale and bias.

    A normalisation with fixed statistics is an affine map per channel, so
    ``norm(conv(x, k)) = conv(x, k·s) + b`` with ``s = γ/√(σ²+ε)`` and
    ``b = β − μ·s``: computed from the variables in float32 at every call (the weights
    are read when the network runs), then rounded once to the compute dtype. TensorFlow
    fuses the convolution, the bias and the ReLU after them into one oneDNN primitive;
    in bfloat16 it does not fuse a convolution with a normalisation. Training runs the
    two layers as they are.
    """

    _norm_ref = None

    def fold(self, norm: FusedBatchNormalization) -> None:
        """Take over ``norm`` (the layer right after this one) when predicting."""
        if not self.use_bias and norm.fusable():
            # a weak reference: Keras would track a layer attribute as a sub-layer
            self._norm_ref = weakref.ref(norm)
            norm._folded = True

    def call(self, inputs, training=None):
        norm = self._norm_ref() if self._norm_ref is not None else None
        if norm is None or (training and norm.trainable):
            return super().call(inputs)
        scale = _float32(norm.gamma) if norm.scale else 1.0
        scale = scale * tf.math.rsqrt(_float32(norm.moving_variance) + norm.epsilon)
        bias = -_float32(norm.moving_mean) * scale
        if norm.center:
            bias = bias + _float32(norm.beta)
        kernel = tf.cast(_float32(self._kernel) * scale, self.compute_dtype)
        x = tf.nn.convolution(
            inputs,
            kernel,
            strides=list(self.strides),
            padding=self.padding.upper(),
            dilations=list(self.dilation_rate),
        )
        return tf.nn.bias_add(x, tf.cast(bias, self.compute_dtype))


class FusedAdam(keras.optimizers.Adam):
    """``keras.optimizers.Adam`` whose update is one TensorFlow kernel per variable.

    Keras writes Adam's update as about fifteen small operations per variable (power,
    sqrt, subtract, multiply, assign…); for the ~60 variables of a U-Net that is a
    thousand kernel launches per training step, a fixed cost that weighs more the
    faster the network computes (bfloat16). ``ResourceApplyAdam`` does the same
    arithmetic (``m += (g − m)(1 − β₁)``, ``v += (g² − v)(1 − β₂)``,
    ``θ −= m·α / (√v + ε)`` with ``α = lr·√(1 − β₂ᵗ) / (1 − β₁ᵗ)``) in one kernel,
    and the step's scalars are computed once. Same variables, same state, same
    configuration: AMSGrad, a distribution strategy and variables that are not
    float32 take Keras' own update.
    """

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        if self.amsgrad or tf.distribute.has_strategy():
            return super()._backend_update_step(grads, trainable_variables, learning_rate)
        step = tf.cast(self.iterations + 1, tf.float32)
        beta_1 = tf.constant(self.beta_1, tf.float32)
        beta_2 = tf.constant(self.beta_2, tf.float32)
        scalars = {
            "beta1_power": tf.pow(beta_1, step),
            "beta2_power": tf.pow(beta_2, step),
            "lr": tf.cast(learning_rate, tf.float32),
            "beta1": beta_1,
            "beta2": beta_2,
            "epsilon": tf.constant(self.epsilon, tf.float32),
        }
        for grad, variable in zip(grads, trainable_variables):
            value = variable.value if isinstance(variable, keras.Variable) else variable
            if value.dtype != tf.float32:
                self.update_step(grad, variable, learning_rate)
                continue
            i = self._get_variable_index(variable)
            tf.raw_ops.ResourceApplyAdam(
                var=value.handle,
                m=self._momentums[i].value.handle,
                v=self._velocities[i].value.handle,
                grad=tf.cast(grad, tf.float32),
                use_locking=False,
                **scalars,
            )


#: Up to this many classes the softmax is computed elementwise (:class:`ScoresConv2D`).
ELEMENTWISE_SOFTMAX_MAX_CHANNELS = 8


def channel_softmax(z):
    """Softmax over the last axis of ``z`` for a few channels, in elementwise operations:
    ``exp(z_k − max_j z_j) / Σ_j exp(z_j − max_j z_j)``, as ``tf.nn.softmax`` computes
    it. oneDNN's softmax over an axis of 3 takes one slow pass per pixel (single
    threaded: ~15 ms of a training step, more than a convolution layer); this is a
    handful of vectorised kernels, forward and gradient."""
    parts = tf.unstack(z, axis=-1)
    top = parts[0]
    for p in parts[1:]:
        top = tf.maximum(top, p)
    e = [tf.exp(p - top) for p in parts]
    total = tf.add_n(e)
    return tf.stack([p / total for p in e], axis=-1)


class ScoresConv2D(keras.layers.Conv2D):
    """``keras.layers.Conv2D`` whose softmax over a few output channels (the U-Net's
    scores) is :func:`channel_softmax`; same variables, configuration and results (to
    float rounding). Other activations, more channels or channels-first use Keras."""

    def call(self, inputs):
        if (
            self.activation is not keras.activations.softmax
            or self.data_format != "channels_last"
            or not 2 <= self.filters <= ELEMENTWISE_SOFTMAX_MAX_CHANNELS
        ):
            return super().call(inputs)
        z = self.convolution_op(inputs, self.kernel)
        if self.use_bias:
            z = tf.nn.bias_add(z, self.bias)
        return channel_softmax(z)
