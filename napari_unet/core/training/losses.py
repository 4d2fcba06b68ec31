"""Masked losses and metrics for multi-hot targets (TensorFlow).

``y_true`` is the weighted multi-hot target of :mod:`napari_unet.core.training.targets` (float,
shape ``(B, Y, X, C)``): a class is allowed where it is positive, and the value
(``WEIGHT_UNIT`` × weight) says how much the pixel counts. A pixel with no allowed class
(label 0 in an annotation) contributes nothing to any loss or metric. ``y_pred`` holds softmax
probabilities over the same classes, channel 0 being background.
"""

from __future__ import annotations

from .._tfload import import_tensorflow
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


def class_dice_loss(y_true, y_pred, smooth: float = 1.0):
    """``1 -`` the mean soft Dice of the object classes, given that a pixel is object.

    Only pixels labelled with exactly one object class take part, and the predicted
    class share is ``P(class k) / P(any object class)``: it teaches which class an
    object is, apart from where the objects are (the foreground Dice's job). A class
    absent from the batch scores 1 (no penalty).
    """
    y_true = tf.cast(y_true, tf.float32)
    y_pred = tf.cast(y_pred, tf.float32)
    w, allowed = _weights(y_true)
    obj = allowed[..., 1:-1]
    known = tf.cast(tf.reduce_sum(obj, axis=-1) == 1.0, tf.float32) * (1.0 - allowed[..., 0])
    m = (w * known)[..., None]
    p = y_pred[..., 1:-1]
    p = p / (tf.reduce_sum(p, axis=-1, keepdims=True) + _EPS)
    axes = [0, 1, 2]
    inter = tf.reduce_sum(m * p * obj, axis=axes)
    denom = tf.reduce_sum(m * p, axis=axes) + tf.reduce_sum(m * obj, axis=axes)
    return 1.0 - tf.reduce_mean((2.0 * inter + smooth) / (denom + smooth))


def dice_crossentropy_loss(y_true, y_pred):
    """Masked cross-entropy plus soft Dice loss: the default training loss.

    With several object classes (more than 3 output channels) the class Dice
    (:func:`class_dice_loss`) is added, so the classes are learned as fast as the
    objects themselves; a one-class network's loss is unchanged.
    """
    loss = masked_crossentropy(y_true, y_pred) + soft_dice_loss(y_true, y_pred)
    if y_pred.shape[-1] is not None and y_pred.shape[-1] > 3:
        loss = loss + class_dice_loss(y_true, y_pred)
    return loss


def dice_coefficient(y_true, y_pred):
    """Hard foreground Dice (probability > 0.5) on labelled pixels; 1 if both empty."""
    w, t, p = _foreground(y_true, y_pred)
    hard = tf.cast(w > 0, tf.float32) * tf.cast(p > 0.5, tf.float32)
    inter = tf.reduce_sum(hard * t)
    denom = tf.reduce_sum(hard) + tf.reduce_sum(t)
    return tf.where(denom > 0, 2.0 * inter / tf.maximum(denom, 1.0), 1.0)
