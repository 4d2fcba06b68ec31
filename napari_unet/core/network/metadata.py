"""What a model knows about itself, typed: :class:`ModelMetadata`.

A model file keeps it as JSON (``napari_unet.json`` inside the ``.keras`` archive,
written and read only by :mod:`~napari_unet.core.network.model_file`); everything else
reads attributes (``net.metadata.object_diameter``), never string keys.

The JSON is flat, one key per field; its ``format_version`` (``model_file.FORMAT_VERSION``)
says its shape:

- version 1 (and files from before versions were written, read as 0): today's shape,
  read as is. Keys this version does not know (a newer minor addition, a note written
  by hand) are kept in :attr:`ModelMetadata.extra` and written back unchanged.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields
from typing import Any

from ..normalize import DEFAULT_NORMALIZATION

#: Fields kept in memory only, never written (where the model was loaded from).
_NOT_WRITTEN = ("source_path",)


def recorded_width(value) -> float | None:
    """A width recorded in a model's metadata (``object_diameter``, ``mask_diameter``) as
    a positive finite float, else ``None`` (absent or damaged)."""
    import math

    try:
        d = float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
    return d if d and math.isfinite(d) and d > 0 else None


@dataclass
class ModelMetadata:
    """A model's record: how it normalises, what it was trained on, what it found.

    Fields left ``None`` are unknown (and not written)."""

    #: The percentiles images are normalised with (``method``, ``low``, ``high``).
    normalization: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_NORMALIZATION))
    #: Per-epoch values of every training run, one list per measure.
    history: dict[str, list] = field(default_factory=dict)
    #: One record per training run (data, settings, how it stopped).
    training_runs: list[dict[str, Any]] = field(default_factory=list)
    #: Names of the outputs: background, the object classes, boundary.
    classes: list[str] | None = None
    #: The architecture (:meth:`UNetConfig.to_dict`) and its input channels, as saved.
    architecture: dict[str, Any] | None = None
    input_channels: int | None = None
    #: Patch side the model was trained with (px).
    patch_size: int | None = None
    #: Typical object width (px) in the data the model was trained at, as the network
    #: measures it on its own output (what the size estimate compares a look's width to).
    object_diameter: float | None = None
    #: The same objects' width as their masks measure it
    #: (:func:`~napari_unet.core.prediction.object_size.mask_diameter`), at the model's
    #: scale: a mask or annotation is brought to this width for training. A network
    #: measures its regions a little wider than their masks (the generalist 1.26×), so
    #: the two differ. ``None`` (models saved before): the same as ``object_diameter``.
    mask_diameter: float | None = None
    #: How the model measures object width (``config.WIDTH_MEASURES``; ``None``:
    #: ``"foreground"``, every non-background pixel, touching objects merged).
    width_measure: str | None = None
    #: How the model reads a colour picture into its one channel
    #: (``config.COLOUR_READINGS``; ``None``: ``"mean"``, as models learned before).
    colour_reading: str | None = None
    #: The factor its last training resized the user's images by (median over the
    #: planes): the size estimate looks at new images at this scale first and keeps it
    #: while their objects are near the model's size there, since images of the same
    #: experiment hold objects of the same size.
    taught_scale: float | None = None
    #: The object width a person typed for the images it was fine-tuned on, at the
    #: model's scale (the typed width × the factor those images were resized by): a
    #: width typed later is brought to this one, so an image typed alike is seen where
    #: training saw it. Its own measure (``object_diameter``) can change with training
    #: (packed cells read as one wide region), and a typed width then missed by 2–3×
    #: or was refused. ``None``: no width was typed; typed widths go by
    #: ``object_diameter`` and ``mask_diameter``.
    typed_width: float | None = None
    #: The ridge regression that reads the objects' width from the encoder's features
    #: (:class:`~napari_unet.core.prediction.size_model.SizeRegression` as a dict),
    #: fitted on the model's training images; training drops it (the features change).
    size_regression: dict[str, Any] | None = None
    #: Post-processing tuned on its training annotation (``PostprocessParams.to_dict``).
    postprocessing: dict[str, Any] | None = None
    #: Words about the model, who or what made it, its scores on held-out images.
    description: str | None = None
    trained_by: str | None = None
    held_out_scores: dict[str, Any] | None = None
    #: napari-unet version and time (UTC, ISO) of the save.
    package_version: str | None = None
    saved: str | None = None
    #: The file this model was loaded from (in memory only).
    source_path: str | None = None
    #: The ``format_version`` the file was written with (``None``: not read from a file).
    format_version: int | None = None
    #: Keys this version does not know, kept so that saving loses nothing.
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> ModelMetadata:
        """The metadata of a file's JSON (version 1 or older) or of an untyped dict."""
        d = copy.deepcopy(dict(d or {}))
        d.pop("format", None)
        known = {f.name for f in fields(cls)} - {"extra"}
        kwargs = {k: d.pop(k) for k in list(d) if k in known}
        meta = cls(**{k: v for k, v in kwargs.items() if v is not None}, extra=d)
        if not isinstance(meta.normalization, dict):
            meta.normalization = dict(DEFAULT_NORMALIZATION)
        return meta

    def to_dict(self) -> dict[str, Any]:
        """The JSON written into a model file (flat; unknown keys back in place)."""
        out = copy.deepcopy(self.extra)
        for f in fields(self):
            if f.name in ("extra", "format_version", *_NOT_WRITTEN):
                continue
            v = getattr(self, f.name)
            if v is not None:
                out[f.name] = copy.deepcopy(v)
        return out

    @classmethod
    def new_network(cls) -> ModelMetadata:
        """The record a new network starts with: it learns stained slides as their
        haematoxylin (``colour_reading``)."""
        return cls(colour_reading="stains")

    @property
    def typing_width(self) -> float | None:
        """The width a typed diameter is checked against (:func:`~napari_unet.core.config.check_diameter`)
        and brought to (:func:`~napari_unet.core.prediction.object_size.typed_scale`):
        :attr:`typed_width` where a fine-tuning recorded one, a fine-tuned model's
        :attr:`mask_diameter`, else :attr:`object_diameter`."""
        typed = recorded_width(self.typed_width)
        if typed:
            return typed
        if self.taught_scale is not None and recorded_width(self.mask_diameter):
            return recorded_width(self.mask_diameter)
        return recorded_width(self.object_diameter)

    @property
    def reads_stains(self) -> bool:
        """Whether a stained slide is read as its haematoxylin (``colour_reading``)."""
        return self.colour_reading == "stains"

    def copy(self) -> ModelMetadata:
        """An independent copy."""
        return copy.deepcopy(self)
