"""Training: a tf.data pipeline of augmented patches, Keras ``fit`` with learning-rate
reduction, early stopping, keep-the-best weights, a time limit and a stop event.

Progress leaves through a plain callable that receives :class:`TrainProgress`
records; nothing here knows about Qt.
"""

from __future__ import annotations

import gc
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .config import TrainConfig
from .data import (
    PatchSampler,
    PreparedImage,
    split_validation,
    validation_patches,
)


@dataclass
class TrainProgress:
    """One progress record.

    ``kind`` is ``"batch"`` after every batch, ``"epoch"`` after every epoch (with the
    validation figures), ``"preview"`` when a live preview was computed and ``"done"`` once
    at the end.
    """

    kind: str
    step: int
    total_steps: int
    epoch: int
    loss: float | None = None
    val_loss: float | None = None
    val_dice: float | None = None
    learning_rate: float | None = None
    elapsed: float = 0.0
    preview: Any = None
    message: str = ""


@dataclass
class TrainResult:
    """What a training run did."""

    history: dict[str, list[float]]
    epochs_run: int
    steps_run: int
    best_epoch: int | None
    best_monitor: float | None
    monitor: str
    stopped_by: str  # "epochs", "early_stopping", "time_limit", "stop_event"
    seconds: float
    data: list[dict] = field(default_factory=list)


def _val_dice(model, val_data, batch_size: int) -> float:
    """Hard foreground Dice of ``model`` on the validation patches (labelled pixels)."""
    from .losses import dice_coefficient

    x, y = val_data
    preds = [
        np.asarray(model(x[i : i + batch_size], training=False))
        for i in range(0, len(x), batch_size)
    ]
    return float(dice_coefficient(y.astype(np.float32), np.concatenate(preds)))


def _make_callbacks(
    model,
    cfg: TrainConfig,
    monitor: str,
    total_steps: int,
    progress: Callable[[TrainProgress], None] | None,
    stop_event: threading.Event | None,
    preview: Callable[[], Any] | None,
    preview_interval: float,
    state: dict,
    val_data=None,
):
    import keras

    t0 = state["t0"]

    class Progress(keras.callbacks.Callback):
        """Reports progress, honours the stop event and the time limit after each batch."""

        def on_train_batch_end(self, batch, logs=None):
            state["step"] += 1
            loss = float(logs["loss"]) if logs and "loss" in logs else None
            if progress is not None:
                progress(
                    TrainProgress(
                        "batch",
                        state["step"],
                        total_steps,
                        state["epoch"],
                        loss=loss,
                        elapsed=time.perf_counter() - t0,
                    )
                )
            if stop_event is not None and stop_event.is_set():
                state["stopped_by"] = "stop_event"
                self.model.stop_training = True
            elif cfg.time_limit is not None and time.perf_counter() - t0 >= cfg.time_limit:
                state["stopped_by"] = "time_limit"
                self.model.stop_training = True

        def on_epoch_begin(self, epoch, logs=None):
            state["epoch"] = epoch + 1

        def on_epoch_end(self, epoch, logs=None):
            logs = {} if logs is None else logs
            if val_data is not None and "val_loss" in logs:
                # validation Dice once per epoch here, rather than a Keras metric that
                # would cost ~20 % of every training step
                logs["val_dice_coefficient"] = _val_dice(self.model, val_data, cfg.batch_size)
            state["epochs_run"] = epoch + 1
            lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            for key, value in logs.items():
                state["history"].setdefault(key, []).append(float(value))
            state["history"].setdefault("learning_rate", []).append(lr)
            if progress is not None:
                progress(
                    TrainProgress(
                        "epoch",
                        state["step"],
                        total_steps,
                        epoch + 1,
                        loss=_get(logs, "loss"),
                        val_loss=_get(logs, "val_loss"),
                        val_dice=_get(logs, "val_dice_coefficient"),
                        learning_rate=lr,
                        elapsed=time.perf_counter() - t0,
                    )
                )
            now = time.perf_counter()
            if (
                preview is not None
                and progress is not None
                and not self.model.stop_training
                and now - state["last_preview"] >= preview_interval
            ):
                state["last_preview"] = now
                progress(
                    TrainProgress(
                        "preview",
                        state["step"],
                        total_steps,
                        epoch + 1,
                        preview=preview(),
                        elapsed=time.perf_counter() - t0,
                    )
                )

    class KeepBest(keras.callbacks.Callback):
        """Remembers the weights of the best epoch and restores them at the end."""

        def on_epoch_end(self, epoch, logs=None):
            value = _get(logs or {}, monitor)
            if value is None or not math.isfinite(value):
                return
            if state["best"] is None or value < state["best"]:
                state["best"] = value
                state["best_epoch"] = epoch + 1
                state["best_weights"] = [np.array(w) for w in self.model.get_weights()]

        def on_train_end(self, logs=None):
            if state["best_weights"] is not None:
                self.model.set_weights(state["best_weights"])

    class EarlyStop(keras.callbacks.EarlyStopping):
        def on_epoch_end(self, epoch, logs=None):
            super().on_epoch_end(epoch, logs)
            if self.model.stop_training and state["stopped_by"] == "epochs":
                state["stopped_by"] = "early_stopping"

    return [
        Progress(),
        KeepBest(),
        keras.callbacks.ReduceLROnPlateau(
            monitor=monitor, factor=0.5, patience=cfg.reduce_lr_patience, min_lr=1e-6, verbose=0
        ),
        EarlyStop(monitor=monitor, patience=cfg.early_stopping_patience, verbose=0),
    ]


def _get(logs: dict, key: str) -> float | None:
    v = logs.get(key)
    return None if v is None else float(v)


def make_dataset(sampler: PatchSampler, batch_size: int, n_in: int, n_out: int, prefetch: int = 4):
    """An endless tf.data stream of augmented batches, produced ahead of the model."""
    import tensorflow as tf

    p = sampler.p

    def gen():
        while True:
            yield sampler.batch(batch_size)

    ds = tf.data.Dataset.from_generator(
        gen,
        output_signature=(
            tf.TensorSpec((batch_size, p, p, n_in), tf.float32),
            tf.TensorSpec((batch_size, p, p, n_out), tf.uint8),
        ),
    )
    ds = ds.map(lambda x, y: (x, tf.cast(y, tf.float32)))
    return ds.prefetch(prefetch)


def fit(
    model,
    prepared: list[PreparedImage],
    cfg: TrainConfig,
    progress: Callable[[TrainProgress], None] | None = None,
    stop_event: threading.Event | None = None,
    preview: Callable[[], Any] | None = None,
    preview_interval: float = 5.0,
) -> TrainResult:
    """Train ``model`` (a compiled-or-not Keras U-Net) in place on prepared images.

    The best weights (lowest validation loss, or training loss without validation) are
    restored at the end, whatever stopped the run.
    """
    import keras

    from .losses import dice_crossentropy_loss

    t0 = time.perf_counter()
    rng = np.random.default_rng(cfg.seed)
    block = max(32, cfg.patch_size // 2)
    train_masks, val_masks = split_validation(prepared, cfg.val_fraction, block, rng)
    train_targets = [p.target * m[..., None] for p, m in zip(prepared, train_masks)]
    val_targets = [p.target * m[..., None] for p, m in zip(prepared, val_masks)]
    images = [p.image for p in prepared]
    n_in = images[0].shape[-1]
    n_out = prepared[0].target.shape[-1]

    sampler = PatchSampler(
        images,
        train_targets,
        cfg.patch_size,
        annotated_fraction=cfg.annotated_fraction,
        augment=cfg.augment,
        elastic=cfg.elastic,
        seed=cfg.seed,
        weights=[p.sampling_weight for p in prepared],
    )
    train_ds = make_dataset(sampler, cfg.batch_size, n_in, n_out)
    val = None
    if any(m.any() for m in val_masks):
        val = validation_patches(images, val_targets, cfg.patch_size, 4 * cfg.batch_size, rng)
    monitor = "val_loss" if val is not None else "loss"

    keras.utils.set_random_seed(cfg.seed)
    model.compile(
        optimizer=keras.optimizers.Adam(cfg.learning_rate),
        loss=dice_crossentropy_loss,
    )
    state: dict[str, Any] = {
        "t0": t0,
        "step": 0,
        "epoch": 0,
        "epochs_run": 0,
        "history": {},
        "best": None,
        "best_epoch": None,
        "best_weights": None,
        "stopped_by": "epochs",
        "last_preview": t0,
    }
    total_steps = cfg.epochs * cfg.steps_per_epoch
    callbacks = _make_callbacks(
        model,
        cfg,
        monitor,
        total_steps,
        progress,
        stop_event,
        preview,
        preview_interval,
        state,
        val_data=val,
    )
    if stop_event is not None and stop_event.is_set():
        state["stopped_by"] = "stop_event"
    else:
        model.fit(
            train_ds,
            epochs=cfg.epochs,
            steps_per_epoch=cfg.steps_per_epoch,
            validation_data=None if val is None else (val[0], val[1].astype(np.float32)),
            validation_batch_size=cfg.batch_size,
            callbacks=callbacks,
            shuffle=False,  # the patch stream is random already
            verbose=0,
        )
    # release the generator-backed pipeline now, not at interpreter shutdown
    del train_ds, sampler
    gc.collect(1)  # young generations only: a full pass holds the GIL for seconds
    result = TrainResult(
        history=state["history"],
        epochs_run=state["epochs_run"],
        steps_run=state["step"],
        best_epoch=state["best_epoch"],
        best_monitor=state["best"],
        monitor=monitor,
        stopped_by=state["stopped_by"],
        seconds=time.perf_counter() - t0,
        data=[p.summary for p in prepared],
    )
    if progress is not None:
        progress(
            TrainProgress(
                "done",
                state["step"],
                total_steps,
                state["epochs_run"],
                loss=_last(state["history"], "loss"),
                val_loss=_last(state["history"], "val_loss"),
                val_dice=_last(state["history"], "val_dice_coefficient"),
                elapsed=result.seconds,
                message=result.stopped_by,
            )
        )
    return result


def _last(history: dict, key: str) -> float | None:
    v = history.get(key)
    return v[-1] if v else None
