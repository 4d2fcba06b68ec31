"""Training: augmented patches made in a producer thread, a compiled training step that
is reused across runs, learning-rate reduction, early stopping, keep-the-best weights,
a time limit and a stop event that ends a run within one batch.

Progress leaves through a plain callable that receives :class:`TrainProgress`
records; nothing here knows about Qt.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np

from ..config import PREVIEW_INTERVAL, TrainConfig
from .samples import (
    PatchSampler,
    PreparedImage,
    split_validation,
    validation_patches,
)


class ProgressKind(str, Enum):
    """What a :class:`TrainProgress` record reports (a ``str`` too: ``"epoch"``, …)."""

    BATCH = "batch"  #: after every batch (``loss``)
    EPOCH = "epoch"  #: after every epoch, with the validation figures
    PREVIEW = "preview"  #: a live preview was computed (``preview``)
    DONE = "done"  #: once at the end (``message``: what stopped the run)


@dataclass
class TrainProgress:
    """One progress record (``kind``: a :class:`ProgressKind`)."""

    kind: ProgressKind
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
    stopped_by: str  # "epochs", "early_stopping", "time_limit", "stop_event", "non_finite"
    seconds: float
    data: list[dict] = field(default_factory=list)
    #: the labelled pixels held out for validation, one boolean map per training plane
    #: (at the scale it trained at); ``None`` when nothing was held out
    validation: list[np.ndarray] | None = field(default=None, repr=False)
    #: those pixels on the planes as given (a :class:`~napari_unet.core.training.comparison.ValidationSet`,
    #: set by :meth:`UNet.train <napari_unet.core.network.unet.UNet.train>`)
    held_out: Any = field(default=None, repr=False)
    #: plain lines about the labels trained on (set by :meth:`UNet.train
    #: <napari_unet.core.network.unet.UNet.train>`), e.g. objects labelled background
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line: epochs, steps and time, what stopped the run, the best epoch."""
        best = "no finite loss recorded"
        last = {k: v[-1] for k, v in self.history.items() if k in ("loss", "val_loss") and v}
        if last and all(math.isfinite(v) for v in last.values()):
            # sparse labels (scribbles) keep the last weights: say their loss
            best = "kept the last weights, " + ", ".join(f"{k} {v:.4f}" for k, v in last.items())
        if self.best_epoch:
            best = f"best {self.monitor} {self.best_monitor:.4f} at epoch {self.best_epoch}"
            dice = self.history.get("val_dice_coefficient")
            if dice and self.monitor == "val_loss":
                best += f", val_dice {dice[self.best_epoch - 1]:.3f}"
        return (
            f"trained {self.epochs_run} epochs ({self.steps_run} steps) in "
            f"{self.seconds:.1f} s, stopped by {self.stopped_by.replace('_', ' ')}; {best}"
        )


class _BatchProducer:
    """Makes augmented batches in a plain thread, a few ahead of the network.

    Replaces a ``tf.data`` generator pipeline: nothing outlives the run (its thread
    ends within one batch when closed), and a new run needs no new graph.
    """

    def __init__(self, sampler: PatchSampler, batch_size: int, depth: int = 4) -> None:
        self._sampler = sampler
        self._n = batch_size
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="napari-unet-batches", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                batch = self._sampler.batch(self._n)
                while not self._stop.is_set():
                    try:
                        self._queue.put(batch, timeout=0.1)
                        break
                    except queue.Full:
                        continue
        except BaseException as e:  # noqa: BLE001 - re-raised in the training thread
            self._error = e

    def get(self):
        while True:
            try:
                return self._queue.get(timeout=0.2)
            except queue.Empty:
                if self._error is not None:
                    raise self._error from None
                if not self._thread.is_alive():
                    raise RuntimeError("the batch producer stopped") from None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)


class _Trainer:
    """A compiled training step for one architecture and batch shape, kept for reuse.

    Building and tracing a U-Net training step takes seconds; a second run (or a run
    on a copy of the same model) copies its weights into this network, trains, and
    copies them back, so it starts at once.
    """

    def __init__(self, config, policy: str) -> None:
        import keras
        import tensorflow as tf

        from ..network.architecture import build_unet
        from ..network.fused_kernels import FusedAdam
        from .losses import dice_coefficient, dice_crossentropy_loss

        self.lock = threading.Lock()
        self.model = build_unet(config, dtype_policy=policy, fused=True)
        self.optimizer = FusedAdam(1e-3)
        if policy == "mixed_float16":
            # float16 gradients underflow without dynamic loss scaling
            self.optimizer = keras.optimizers.LossScaleOptimizer(self.optimizer)
        self.optimizer.build(self.model.trainable_variables)
        model, optimizer, loss_fn = self.model, self.optimizer, dice_crossentropy_loss

        @tf.function(reduce_retracing=True, autograph=False)
        def step(x, y):
            with tf.GradientTape() as tape:
                pred = model(x, training=True)
                loss = loss_fn(y, pred)
                scaled = optimizer.scale_loss(loss)
            grads = tape.gradient(scaled, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return loss

        @tf.function(reduce_retracing=True, autograph=False)
        def evaluate(x, y):
            pred = model(x, training=False)
            return loss_fn(y, pred), dice_coefficient(y, pred)

        self.step = step
        self.evaluate = evaluate

    def reset(self, weights: list[np.ndarray], learning_rate: float) -> None:
        """Start a run: the given weights, a fresh Adam state, the learning rate."""
        self.model.set_weights(weights)
        for v in self.optimizer.variables:
            if v.name != "learning_rate" and "scale" not in v.name:
                v.assign(np.zeros(v.shape, v.dtype))
        self.optimizer.learning_rate = float(learning_rate)

    @property
    def learning_rate(self) -> float:
        return float(np.asarray(self.optimizer.learning_rate))

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        self.optimizer.learning_rate = float(value)


_TRAINERS: dict[tuple, _Trainer] = {}
_TRAINERS_LOCK = threading.Lock()


def _trainer_for(config) -> _Trainer:
    """The cached trainer for an architecture (a fresh one if that one is busy)."""
    import json

    from ..hardware import compute_dtype_policy

    policy = compute_dtype_policy()
    key = (json.dumps(config.to_dict(), sort_keys=True), policy)
    with _TRAINERS_LOCK:
        trainer = _TRAINERS.get(key)
        if trainer is None or trainer.lock.locked():
            trainer = _Trainer(config, policy)
            _TRAINERS.setdefault(key, trainer)
        trainer.lock.acquire()
    return trainer


def _validate(trainer: _Trainer, val, batch_size: int) -> tuple[float, float]:
    """Mean loss and hard Dice over the validation patches."""
    x, y = val
    losses, dices, sizes = [], [], []
    for i in range(0, len(x), batch_size):
        loss, dice = trainer.evaluate(x[i : i + batch_size], y[i : i + batch_size])
        losses.append(float(loss))
        dices.append(float(dice))
        sizes.append(len(x[i : i + batch_size]))
    return float(np.average(losses, weights=sizes)), float(np.average(dices, weights=sizes))


def _finite(weights: list[np.ndarray]) -> bool:
    return all(np.isfinite(w).all() for w in weights)


def fit(
    model,
    prepared: list[PreparedImage],
    cfg: TrainConfig,
    progress: Callable[[TrainProgress], None] | None = None,
    stop_event: threading.Event | None = None,
    preview: Callable[[], Any] | None = None,
    preview_interval: float = PREVIEW_INTERVAL,
    learning_rate: float | None = None,
    *,
    config,
) -> TrainResult:
    """Train ``model`` (a Keras U-Net built from ``config``, a
    :class:`~napari_unet.core.config.UNetConfig`) in place on prepared images.

    Each epoch is ``cfg.steps_per_epoch`` batches, then validation on held-out image
    blocks, learning-rate halving on a plateau and early stopping. With dense labels the
    best epoch's weights are kept; with sparse ones (scribbles) the held-out strokes are
    too easy to rank epochs, so the last weights are kept. A stop (event or time limit)
    takes effect after the current batch and skips the rest of the epoch. A non-finite
    loss ends the run and keeps the last finite weights, never the broken ones.
    """
    t0 = time.perf_counter()
    rng = np.random.default_rng(cfg.seed)
    block = max(32, cfg.patch_size // 2)
    train_masks, val_masks = split_validation(prepared, cfg.val_fraction, block, rng)
    # training sees everything outside the held-out blocks (pseudo-labels included)
    train_targets = [p.target * ~m[..., None] for p, m in zip(prepared, val_masks)]
    val_targets = [p.target * m[..., None] for p, m in zip(prepared, val_masks)]
    images = [p.image for p in prepared]
    sparse = sum(int(p.labelled.sum()) for p in prepared) < 0.5 * sum(
        p.labelled.size for p in prepared
    )
    keep_best = not sparse

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
    val = None
    if any(m.any() for m in val_masks):
        val = validation_patches(images, val_targets, cfg.patch_size, 4 * cfg.batch_size, rng)
        if val is not None:
            val = (val[0], val[1].astype(np.float32))
    monitor = "val_loss" if val is not None else "loss"
    lr = float(learning_rate or cfg.first_learning_rate(pretrained=False))

    from ..network.architecture import reseed_random_layers

    trainer = _trainer_for(config)
    reseed_random_layers(trainer.model, cfg.seed)  # the cached twin is what trains
    start_weights = model.get_weights()
    trainer.reset(start_weights, lr)
    producer = _BatchProducer(sampler, cfg.batch_size) if not _set(stop_event) else None

    history: dict[str, list[float]] = {}
    total_steps = cfg.epochs * cfg.steps_per_epoch
    step = epochs_run = 0
    best = best_epoch = None
    best_weights = None
    last_finite = start_weights
    stopped_by = "epochs"
    since_best = since_lr = 0
    plateau_best = None
    last_preview = t0

    def report(kind: ProgressKind, epoch: int, **kw) -> None:
        if progress is not None:
            progress(
                TrainProgress(
                    kind, step, total_steps, epoch, elapsed=time.perf_counter() - t0, **kw
                )
            )

    try:
        if producer is None:
            stopped_by = "stop_event"
        for epoch in range(1, cfg.epochs + 1) if producer is not None else ():
            losses = []
            for _ in range(cfg.steps_per_epoch):
                if _set(stop_event):
                    stopped_by = "stop_event"
                    break
                x, y = producer.get()
                loss = float(trainer.step(x, y))
                step += 1
                losses.append(loss)
                report(ProgressKind.BATCH, epoch, loss=loss)
                if not math.isfinite(loss):
                    stopped_by = "non_finite"
                    break
                if cfg.time_limit is not None and time.perf_counter() - t0 >= cfg.time_limit:
                    stopped_by = "time_limit"
                    break
            if stopped_by in ("stop_event", "non_finite") or not losses:
                break  # no validation, no preview: answer at once
            epochs_run = epoch
            logs = {"loss": float(np.mean(losses))}
            if val is not None:
                logs["val_loss"], logs["val_dice_coefficient"] = _validate(
                    trainer, val, cfg.batch_size
                )
            lr_now = trainer.learning_rate
            for key, value in logs.items():
                history.setdefault(key, []).append(value)
            history.setdefault("learning_rate", []).append(lr_now)
            value = logs.get(monitor, logs["loss"])
            weights = trainer.model.get_weights()
            if math.isfinite(value) and _finite(weights):
                last_finite = weights
                if best is None or value < best:
                    best, best_epoch, best_weights = value, epoch, weights
            report(
                ProgressKind.EPOCH,
                epoch,
                loss=logs["loss"],
                val_loss=logs.get("val_loss"),
                val_dice=logs.get("val_dice_coefficient"),
                learning_rate=lr_now,
            )
            if stopped_by == "time_limit":
                break
            # learning-rate reduction on a plateau, early stopping
            if plateau_best is None or value < plateau_best - 1e-4:
                plateau_best, since_best, since_lr = value, 0, 0
            else:
                since_best += 1
                since_lr += 1
                if since_lr >= cfg.reduce_lr_patience:
                    trainer.learning_rate = max(1e-6, lr_now * 0.5)
                    since_lr = 0
                if since_best >= cfg.early_stopping_patience:
                    stopped_by = "early_stopping"
                    break
            now = time.perf_counter()
            if (
                preview is not None
                and progress is not None
                and now - last_preview >= preview_interval
            ):
                model.set_weights(trainer.model.get_weights())
                last_preview = now
                report(ProgressKind.PREVIEW, epoch, preview=preview())
        final = trainer.model.get_weights()
        if keep_best and best_weights is not None:
            final = best_weights
        elif not _finite(final):
            final = last_finite
        model.set_weights(final)
    finally:
        if producer is not None:
            producer.close()
        trainer.lock.release()
    if stopped_by == "non_finite" and epochs_run == 0:
        from ..errors import TrainingFailed

        raise TrainingFailed(
            f"training failed: the loss became {losses[-1]} (not a number) at step {step}, "
            "so nothing was kept and the model is unchanged; check the images for NaN or "
            "infinite pixels, or use a lower learning rate"
        )
    result = TrainResult(
        history=history,
        epochs_run=epochs_run,
        steps_run=step,
        best_epoch=best_epoch if keep_best else None,
        best_monitor=best,
        monitor=monitor if keep_best else "last",
        stopped_by=stopped_by,
        seconds=time.perf_counter() - t0,
        data=[p.summary for p in prepared],
        validation=val_masks if val is not None else None,
    )
    report(
        ProgressKind.DONE,
        epochs_run,
        loss=_last(history, "loss"),
        val_loss=_last(history, "val_loss"),
        val_dice=_last(history, "val_dice_coefficient"),
        message=stopped_by,
    )
    return result


def _set(event: threading.Event | None) -> bool:
    return event is not None and event.is_set()


def _last(history: dict, key: str) -> float | None:
    v = history.get(key)
    return v[-1] if v else None
