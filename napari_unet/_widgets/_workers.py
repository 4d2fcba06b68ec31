"""Background work for the widgets: plain data in, typed updates out.

Every function here runs outside the GUI thread and never touches a widget or a layer.
Long core calls (prediction, training) run in a plain :class:`threading.Thread` that
reports through a callback onto a :class:`queue.Queue`; the generator that napari's
``thread_worker`` runs reads that queue and yields the updates, which the widget turns
into progress bars, plots and layers on the GUI thread (callback → queue → generator).

TensorFlow is imported here, inside the functions, and nowhere in the widgets.
"""

from __future__ import annotations

import gc
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from napari_unet.core.config import PREVIEW_INTERVAL
from napari_unet.core.jobs.file_jobs import LARGE_BLOCK
from napari_unet.core.jobs.planning import ModelSpec, resolve_model
from napari_unet.core.memory import block_by_block, is_lazy  # the one rule, shared
from napari_unet.core.prediction.tiling import Stage

#: Niceness added to the threads that run TensorFlow, so that on a small machine the
#: GUI thread wins the CPU when it needs it (TensorFlow's own pools inherit it).
WORKER_NICENESS = 10

_END = object()


# ---------------------------------------------------------------------- records
@dataclass
class Status:
    """A line of text for the widget's status label."""

    text: str


@dataclass
class TileProgress:
    """Prediction progress in tiles (a volume's: in planes, ``unit="plane"``)."""

    done: int
    total: int
    unit: str = "tile"


@dataclass
class StageUpdate:
    """A segmentation moved on to ``stage`` (importing, loading, estimating, …)."""

    stage: Stage


@dataclass
class SegmentJob:
    """Everything a segmentation needs, read from the widget on the GUI thread."""

    image: np.ndarray
    name: str
    rgb: bool = False
    tile_size: int | None = None
    threshold: float | None = None  # None: the model's own
    min_size: int | None = None  # None: the model's own
    channel_axis: int | None = None
    diameter: float | str | None = "auto"  # object width in px, "auto" or None
    multiscale: bool = False  # ``image`` is the full-resolution level of a pyramid
    #: the layer's napari ``axis_labels`` and ``scale``: which axis is Z (a volume,
    #: segmented as one) and its z-step (core.files.image_axes.layer_axes)
    axis_labels: tuple[str, ...] | None = None
    scale: tuple[float, ...] | None = None
    views: str = "yx"  # what the network sees of a volume: its YX planes, or "all" three
    stop_event: threading.Event = field(default_factory=threading.Event)


@dataclass
class SegmentResult:
    name: str
    prediction: Any  # core Prediction
    model: Any  # the UNet that was used (to cache a model loaded from a file)
    spec: ModelSpec
    channel_axis: int | None  # image axis that held channels (dropped in the result)
    seconds: float
    nonfinite: int = 0  # NaN/inf pixels of the image (read as background)
    volume: str | None = None  # "Z×Y×X" when segmented as a 3-D volume, else None
    stained: bool = False  # a stained slide, read as its haematoxylin (core.stains)


@dataclass
class LazySegmentResult:
    """A huge image segmented block by block: lazy pyramids in a working folder."""

    name: str
    prediction: Any  # core LazyPrediction (dask arrays read from OME-Zarr)
    model: Any
    spec: ModelSpec
    channel_axis: int | None
    seconds: float
    blocks: int
    stained: bool = False  # a stained slide, read as its haematoxylin (core.stains)


@dataclass
class SegmentStopped:
    """The run was stopped (Stop); nothing was shown and its files are gone."""

    name: str
    seconds: float


@dataclass
class TrainJob:
    """Everything a training run needs, read from the widget on the GUI thread."""

    pairs: list  # core TrainingPair objects (copies of the layer data)
    init: ModelSpec
    config: Any  # core TrainConfig
    stop_event: threading.Event = field(default_factory=threading.Event)
    #: the plane the live preview predicts (``_training_data.PreviewSource``), read here
    preview: Any = None
    preview_interval: float = PREVIEW_INTERVAL
    #: the viewer's current model when training started (``None``: there was none);
    #: the trained model is compared with it and replaces it only when not worse
    previous: ModelSpec | None = None


@dataclass
class TrainOutcome:
    model: Any  # the trained UNet (best weights)
    result: Any  # core TrainResult
    name: str
    #: the model the trained one would replace (the current model, else the trained
    #: model it started from), unchanged; ``None`` after a new network with none current
    previous: Any = None
    previous_name: str = ""
    previous_path: str | None = None
    comparison: Any = None  # core training.comparison.Comparison: before/after on the same pixels
    #: the preview plane as each model segments it (``None`` without a preview)
    preview_after: Any = None
    preview_before: Any = None


# ---------------------------------------------------------------------- plumbing
def lower_thread_priority(niceness: int | None = None) -> None:
    """Make the calling thread (and threads it starts) yield the CPU to the GUI."""
    niceness = WORKER_NICENESS if niceness is None else niceness
    if niceness and hasattr(os, "setpriority") and hasattr(threading, "get_native_id"):
        try:
            tid = threading.get_native_id()
            current = os.getpriority(os.PRIO_PROCESS, tid)
            os.setpriority(os.PRIO_PROCESS, tid, min(19, current + niceness))
        except OSError:  # not allowed here: run at normal priority
            pass


def run_in_thread(
    func: Callable[..., Any], *args: Any, name: str = "napari-unet", **kwargs: Any
) -> Generator[list, None, Any]:
    """Run ``func(*args, emit=..., **kwargs)`` in a plain thread; yield what it emits.

    ``emit`` puts an update on a queue; this generator yields the updates in batches
    (whatever piled up since the last yield) so a fast producer cannot flood the GUI.
    Returns ``func``'s result; re-raises its exception (errors travel as data).
    """
    q: queue.Queue = queue.Queue()
    outcome: dict[str, Any] = {}

    def target() -> None:
        lower_thread_priority()
        try:
            outcome["value"] = func(*args, emit=q.put, **kwargs)
        except BaseException as e:  # noqa: BLE001 - handed to the GUI thread
            outcome["error"] = e
        finally:
            q.put(_END)

    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    done = False
    while not done:
        batch = [q.get()]
        while True:
            try:
                batch.append(q.get_nowait())
            except queue.Empty:
                break
        if batch[-1] is _END:
            batch.pop()
            done = True
        if batch:
            yield batch
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


# ---------------------------------------------------------------------- segment
def _layout(job: SegmentJob, channels: int):
    """Where the image keeps its channels, for a model with ``channels`` inputs: the one
    rule of :func:`napari_unet.core.axes.channel_layout`, told napari's RGB flag. How a
    slide's colours are read is decided where the pixels are read (:func:`_segment`, or
    block by block in the core), once per image."""
    from napari_unet.core.axes import channel_layout

    return channel_layout(
        np.shape(job.image),
        channels,
        rgb=job.rgb,
        channel_axis=job.channel_axis,
        name=job.name,
    )


def prepare_tensorflow() -> None:
    """Import TensorFlow the safe way and quietly (see :mod:`napari_unet.core._tfload`),
    with the garbage collector paused during the import, and let TensorFlow take GPU
    memory as it needs it rather than all of it (napari and other plugins share the GPU)."""
    from napari_unet.core._tfload import quiet_import_tensorflow

    if "tensorflow" not in sys.modules:
        # the import allocates a million objects: each full collection it would
        # trigger holds the GIL for ~200 ms and freezes the viewer
        enabled = gc.isenabled()
        gc.disable()
        try:
            quiet_import_tensorflow()
        finally:
            if enabled:
                gc.enable()
        from napari_unet.core.hardware import allow_gpu_memory_growth

        allow_gpu_memory_growth()


class Preload:
    """TensorFlow imported, and the bundled model loaded, in a background thread as soon
    as the Segment widget opens, so that the first Segment finds them ready.

    A plain daemon thread at low priority (never the GUI thread, never Qt); the first
    Segment that asks for the bundled model takes the preloaded one (or waits for it,
    reporting the stage under way) — once: later ones use the widget's own cache. Set
    ``NAPARI_UNET_PRELOAD=0`` to import and load only when Segment is clicked.
    """

    def __init__(self, gate: threading.Event | None = None) -> None:
        self._gate = gate  # tests hold the thread here to see that nothing waits for it
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._model: Any = None
        self.handed: Any = None  # the model a Segment took
        self.stage: Stage | None = None
        self.stages: list[Stage] = []  # every stage begun, in order
        self.done = False
        self.imported_here = False  # TensorFlow was imported by this thread
        self.error: BaseException | None = None

    @staticmethod
    def wanted() -> bool:
        return os.environ.get("NAPARI_UNET_PRELOAD", "1") not in ("0", "false", "False", "")

    @property
    def started(self) -> bool:
        return self._thread is not None

    def start(self, load_default: bool = True) -> bool:
        """Start the thread (once per process); returns whether it runs now."""
        with self._lock:
            if self._thread is not None or not self.wanted():
                return False
            self._thread = threading.Thread(
                target=self._run, args=(load_default,), name="napari-unet-preload", daemon=True
            )
            self._thread.start()
        import atexit

        atexit.register(self.join)  # never leave the interpreter in the middle of an import
        return True

    def join(self, timeout: float = 120.0) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _set(self, **changes: Any) -> None:
        with self._changed:
            for key, value in changes.items():
                setattr(self, key, value)
            if changes.get("stage") is not None:
                self.stages.append(changes["stage"])
            self._changed.notify_all()

    def _run(self, load_default: bool) -> None:
        lower_thread_priority()
        try:
            if self._gate is not None:
                self._gate.wait()
            if "tensorflow" not in sys.modules:
                self._set(stage=Stage.IMPORT)
                prepare_tensorflow()
                self._set(imported_here=True)
            if load_default:
                self._set(stage=Stage.LOAD)
                net = resolve_model(ModelSpec("default"))
                # trace the prediction once: the first Segment does not pay for it
                net.inference_function()(np.zeros((1, 32, 32, net.input_channels), np.float32))
                self._set(_model=net)
        except BaseException as e:  # noqa: BLE001 - Segment will load (and say why) itself
            self._set(error=e)
        finally:
            self._set(done=True, stage=None)

    def take(self, emit: Callable[[Any], None] | None = None, want_model: bool = True):
        """Wait for the preload (reporting its stages to ``emit``) and hand over the
        bundled model it loaded (``None``: not started, failed, taken already, or
        ``want_model`` is false). Called from a worker thread, never the GUI thread."""
        with self._changed:
            if self._thread is None:
                return None
            shown = len(self.stages)  # stages before this call are over
            if self.stage is not None:
                shown -= 1  # the one under way is news to this Segment
            while True:
                if emit is not None:
                    for stage in self.stages[shown:]:
                        emit(StageUpdate(stage))
                shown = len(self.stages)
                if self.done:
                    break
                self._changed.wait()
            if not want_model or self._model is None:
                return None
            self.handed, self._model = self._model, None
            return self.handed


#: The preload of this process (started by the first Segment widget).
PRELOAD = Preload()


def _segment(spec: ModelSpec, job: SegmentJob, emit: Callable[[Any], None]):
    t0 = time.perf_counter()
    preloaded = PRELOAD.take(emit, want_model=spec.kind == "default" and spec.model is None)
    if preloaded is not None:
        spec = ModelSpec("default", model=preloaded)
    if "tensorflow" not in sys.modules:
        emit(StageUpdate(Stage.IMPORT))
    prepare_tensorflow()
    if spec.model is None:
        emit(StageUpdate(Stage.LOAD))
    net = resolve_model(spec)
    layout = _layout(job, net.input_channels)
    blocks = block_by_block(
        layout.spatial_shape, multiscale=job.multiscale, lazy=is_lazy(job.image)
    )
    # a pyramid is never read whole: one that is not 2D is refused there in plain words
    if blocks or job.multiscale:
        return _segment_lazy(spec, job, net, layout, emit, t0)
    if net.metadata.reads_stains:  # a stained slide is read as its haematoxylin
        layout = layout.for_image(job.image)
    image = layout.channels_last(job.image)  # (..., Y, X, C): as the network takes it
    axes = _volume_axes(job, layout)  # a stack whose axes say Z: one 3-D volume
    unit = "tile" if axes is None else "plane"
    if axes is not None:
        emit(Status(f"{job.name}: segmenting as a 3D volume ({_shown(axes)})…"))
    from napari_unet.core.prediction.stacks import predict_stack

    prediction = predict_stack(
        net,
        image,
        axes,
        views=job.views,
        tile_size=job.tile_size,
        threshold=job.threshold,
        min_size=job.min_size,
        channel_axis=-1,
        diameter=job.diameter,
        progress=lambda done, total: emit(TileProgress(done, total, unit)),
        stage=lambda stage: emit(StageUpdate(stage)),
        suggest=True,  # what to correct next: the doubt layer, Next/Previous in Annotate
    )
    from napari_unet.core.normalize import nonfinite_pixels

    # napari leaves an RGB layer's colour axis out of its geometry; any other channel
    # axis is a layer axis that the prediction layers do not have
    dropped = None if job.rgb else layout.axis
    return SegmentResult(
        job.name,
        prediction,
        net,
        spec,
        dropped,
        time.perf_counter() - t0,
        nonfinite_pixels(image),
        None if axes is None else _shown(axes),
        layout.stained,
    )


def _volume_axes(job: SegmentJob, layout):
    """The axes of the image as the network takes it (channels last, ``C``) when it is
    segmented as a volume (its layer's axis labels, else its shape, say Z:
    :func:`napari_unet.core.files.image_axes.layer_axes`), else ``None``."""
    from dataclasses import replace

    from napari_unet.core.files.image_axes import layer_axes
    from napari_unet.core.prediction.stacks import segments_as_volume

    spatial = layout.spatial_shape
    if len(spatial) < 3:
        return None
    labels, scale = list(job.axis_labels or ()), list(job.scale or ())
    if layout.axis is not None and not job.rgb:  # a channel axis that is a layer axis
        for items in (labels, scale):
            if len(items) == len(layout.shape):
                del items[layout.axis]
    axes = layer_axes(spatial, labels, scale, job.name)
    axes = replace(axes, axes=axes.axes + "C")
    return axes if segments_as_volume(axes, spatial + (1,)) else None


def _shown(axes) -> str:
    """``Z×Y×X``: a volume's axes for a person (channels left out)."""
    return "×".join(axes.axes.replace("C", ""))


def _segment_lazy(spec: ModelSpec, job: SegmentJob, net, layout, emit, t0: float):
    """Block by block as a dask graph (:func:`napari_unet.core.prediction.blockwise.predict_dask`) in
    this thread, into a new working folder (removed again if the run fails or stops).
    The layer's data is only ever read block by block, never converted as a whole."""
    import math

    from napari_unet._workfolders import new_work_folder, remove
    from napari_unet.core.files.outputs import check_free_space
    from napari_unet.core.prediction.blockwise import Stopped

    h, w = layout.spatial_shape[-2:]
    steps = {"predict": ("predicted", 0), "stitch": ("stitched", 1)}
    total = {"n": 1}

    def progress(kind: str, done: int, n: int) -> None:
        word, phase = steps[kind]
        total["n"] = n
        emit(TileProgress(phase * n + done, 2 * n))
        emit(Status(f"{job.name}: {word} block {done}/{n}"))

    folder = new_work_folder(job.name)
    try:
        # labels, probabilities, their pyramids and the scratch copy of the kept instances
        check_free_space(folder, 16 * math.prod((h, w)), f"the segmentation of {job.name}")
        emit(Status(f"segmenting {job.name} block by block…"))
        lazy = net.predict_dask(
            job.image,
            folder,
            None,  # this process, one block at a time (the network is here already)
            tile_size=job.tile_size,
            threshold=job.threshold,
            min_size=job.min_size,
            axes=layout.axes,
            diameter=job.diameter,
            name=job.name,
            progress=progress,
            stop_event=job.stop_event,
            block_size=LARGE_BLOCK,
        )
    except Stopped:
        remove(folder)
        return SegmentStopped(job.name, time.perf_counter() - t0)
    except BaseException:
        remove(folder)
        raise
    dropped = None if job.rgb else layout.axis
    return LazySegmentResult(
        job.name, lazy, net, spec, dropped, time.perf_counter() - t0, total["n"], lazy.stained
    )


def segment_worker(spec: ModelSpec, job: SegmentJob) -> Generator[list, None, SegmentResult]:
    """Generator for ``thread_worker``: yields update batches, returns the result."""
    return (yield from run_in_thread(_segment, spec, job, name="napari-unet-segment"))


# ---------------------------------------------------------------------- train
def _train(job: TrainJob, emit: Callable[[Any], None]) -> TrainOutcome:
    from napari_unet.core.training.comparison import judge

    emit(Status("preparing the network…"))
    prepare_tensorflow()
    net = resolve_model(job.init)
    name = job.init.describe(net.config)
    previous, previous_name, previous_path = _previous_model(job, net, name)
    if previous is net:
        # train a copy: the current model stays usable (Segment) until this run ends,
        # and stays one click away afterwards
        net = net.copy()
    preview = job.preview.read() if job.preview is not None else None
    emit(Status("training…"))
    result = net.train(
        _in_memory_unless_huge(job.pairs),
        job.config,
        progress=emit,
        stop_event=job.stop_event,
        preview_image=preview,
        preview_interval=job.preview_interval,
    )
    emit(Status("comparing the new model with the previous one on your annotations…"))
    comparison = judge(previous, net, result.held_out)
    outcome = TrainOutcome(
        net,
        result,
        name,
        previous,
        previous_name,
        previous_path,
        comparison,
    )
    if preview is not None:
        # what each model predicts on the preview plane (the best weights were restored
        # at the end): the widget shows the one that ends up current
        outcome.preview_after = net.predict(preview, suggest=True)
        if previous is not None:
            outcome.preview_before = previous.predict(preview, suggest=True)
    return outcome


def _previous_model(job: TrainJob, net: Any, name: str) -> tuple[Any, str, str | None]:
    """The model a training run would replace, its name and file: the current model
    (``net`` itself when training starts from it), else the trained model training
    starts from; ``(None, "", None)`` for a new network with no current model."""
    from napari_unet.core import UserInputError

    init = job.init
    if init.kind == "current":
        return net, init.name or name, init.path
    if job.previous is not None:
        try:
            prev = resolve_model(job.previous)
        except UserInputError:  # the current model's file is gone: nothing to go back to
            return None, "", None
        return prev, job.previous.name or job.previous.describe(prev.config), job.previous.path
    if init.kind == "new":
        return None, "", None
    from napari_unet.core.jobs.planning import default_model_path

    path = str(default_model_path()) if init.kind == "default" else init.path
    return net.copy(), name, path


def _in_memory_unless_huge(pairs: list) -> list:
    """The pairs, with a chunked image read whole where its annotation is an in-memory
    copy (an image that is not huge: the whole image trains, as always); a huge image
    with its on-disk annotation stays lazy and trains from its painted regions."""
    from dataclasses import replace

    return [
        replace(p, image=np.asarray(p.image)) if is_lazy(p.image) and not is_lazy(p.labels) else p
        for p in pairs
    ]


def train_worker(job: TrainJob) -> Generator[list, None, TrainOutcome]:
    """Generator for ``thread_worker``: yields progress batches, returns the outcome."""
    return (yield from run_in_thread(_train, job, name="napari-unet-train"))


# ---------------------------------------------------------------------- evaluate
def evaluate_worker(
    prediction: np.ndarray,
    truth: np.ndarray,
    prediction_classes: np.ndarray | None = None,
    truth_classes: np.ndarray | None = None,
    axes: str | None = None,
) -> dict[str, Any]:
    """Scores of a prediction against ground truth (numpy/scipy, no TensorFlow); with
    both class maps, per-class scores too; a stack along ``axes`` (Z in 3D, T frame by
    frame)."""
    from napari_unet.core import evaluate

    return evaluate(prediction, truth, prediction_classes, truth_classes, axes=axes)
