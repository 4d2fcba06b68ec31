"""Masked losses and metrics for multi-hot targets (TensorFlow).

``y_true`` is the weighted multi-hot target of :mod:`napari_unet.core.targets` (float,
shape ``(B, Y, X, C)``): a class is allowed where it is positive, and the value
(``WEIGHT_UNIT`` × weight) says how much the pixel counts. A pixel with no allowed class
(label 0 in an annotation) contributes nothing to any loss or metric. ``y_pred`` holds softmax
probabilities over the same classes, channel 0 being background.
"""

from __future__ import annotations

from ._tfload import import_tensorflow
from .targets import WEIGHT_UNIT

tf = import_tensorflow()  # importing this module needs TensorFlow: load it isolated

_EPS = 1e-7


def _weights(y_true):
    """Per-pixel weight (0 = ignored) and the allowed-class indicator."""
    return tf.reduce_max(y_true, axis=-1) / WEIGHT_UNIT, tf.cast(y_true > 0, tf.float32)


def masked_crossentropy(y_true, y_pred):
    """Cross-entropy ``-log P(allowed classes)``, weighted, per labelled pixel."""
    y_true = tf.cast(y_true, tf.float32)
    y_pred = tf.cast(y_pred, tf.float32)
    w, allowed = _weights(y_true)
    p = tf.reduce_sum(allowed * y_pred, axis=-1)
    ce = -tf.math.log(tf.clip_by_value(p, _EPS, 1.0))
    n = tf.reduce_sum(tf.cast(w > 0, tf.float32))
    return tf.reduce_sum(w * ce) / tf.maximum(n, 1.0)


def _foreground(y_true, y_pred):
    y_true = tf.cast(y_true, tf.float32)
    y_pred = tf.cast(y_pred, tf.float32)
    w, allowed = _weights(y_true)
    target = tf.cast(w > 0, tf.float32) * (1.0 - allowed[..., 0])  # labelled foreground
    prob = 1.0 - y_pred[..., 0]
    return w, target, prob


def soft_dice(y_true, y_pred, smooth: float = 1.0):
    """Soft Dice coefficient of the foreground probability on labelled pixels."""
    w, t, p = _foreground(y_true, y_pred)
    inter = tf.reduce_sum(w * p * t)
    return (2.0 * inter + smooth) / (tf.reduce_sum(w * p) + tf.reduce_sum(w * t) + smooth)


def soft_dice_loss(y_true, y_pred):
    """``1 - soft Dice`` of the foreground on labelled pixels."""
    return 1.0 - soft_dice(y_true, y_pred)


def dice_crossentropy_loss(y_true, y_pred):
    """Masked cross-entropy plus soft Dice loss: the default training loss."""
    return masked_crossentropy(y_true, y_pred) + soft_dice_loss(y_true, y_pred)


def dice_coefficient(y_true, y_pred):
    """Hard foreground Dice (probability > 0.5) on labelled pixels; 1 if both empty."""
    w, t, p = _foreground(y_true, y_pred)
    hard = tf.cast(w > 0, tf.float32) * tf.cast(p > 0.5, tf.float32)
    inter = tf.reduce_sum(hard * t)
    denom = tf.reduce_sum(hard) + tf.reduce_sum(t)
    return tf.where(denom > 0, 2.0 * inter / tf.maximum(denom, 1.0), 1.0)
