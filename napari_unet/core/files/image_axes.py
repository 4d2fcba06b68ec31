"""What the axes in front of an image's ``(Y, X)`` plane are: space (Z) or time (T), and
how far apart the planes of a volume are (Qt-free, TensorFlow-free).

:func:`image_axes` reads it from an image file; :func:`decide_axes` is the rule itself,
for a shape and what a file or a person said. Both give an :class:`ImageAxes`, which
says where each part of the decision came from, so that the command line and the
viewer can tell the person (:meth:`ImageAxes.describe`).

Where the channels are stays :mod:`napari_unet.core.axes`' decision (it knows the
model); this module names the other axes. Nothing here changes how images are
segmented: prediction reads :attr:`ImageAxes.is_volume` and :attr:`ImageAxes.z_scale`
when it treats a volume as one volume.

The rule
--------
1. **Said by the person** — an axes string (``--axes ZYX``, ``TZYX``, ``TYX``, ``YXC``;
   ``S`` also means planes one by one) names every axis; ``--z-scale`` gives the z-step.
2. **Said by the file** —

   * ImageJ TIFF: ``slices`` are Z, ``frames`` are T (tifffile's ``series.axes``); the
     z-step is ``spacing`` over the X pixel size (the ``XResolution`` tag; a file
     without one has pixels 1 unit wide, as in ImageJ);
   * OME-TIFF: the ``DimensionOrder`` (``series.axes``), the z-step ``PhysicalSizeZ``
     over ``PhysicalSizeX`` (units converted);
   * OME-Zarr: the ``multiscales`` axes (``name`` ``z``/``t``, or ``type``
     ``space``/``time``), the z-step from level 0's ``scale`` transformations;
   * a TIFF tifffile wrote with ``metadata={'axes': …}``: those axes.

   An axis the file leaves unnamed (ImageJ ``images`` alone, tifffile's ``Q``, an
   ImageJ ``channels`` axis that the model does not read as channels) is decided by 3.
3. **From the shape** (nothing said): one axis in front of ``(Y, X)`` is **Z** (a
   volume), two are **T, Z** — the letters :attr:`ChannelLayout.axes
   <napari_unet.core.axes.ChannelLayout.axes>` has always given them. A time-lapse
   saved without metadata must be said (``--axes TYX``); a z-step said nowhere is 1.
   :attr:`ImageAxes.source` then says "the shape", so a front end can tell the person.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import UserInputError

#: Where a decision came from (the words :meth:`ImageAxes.describe` prints).
FROM_PERSON = "given"
FROM_SHAPE = "the shape"
#: Axis letters of the result: time, space, channels, the plane.
AXES_LETTERS = "STZCYX"
#: Units of OME physical sizes, in micrometres.
_UNITS_UM = {
    "m": 1e6,
    "cm": 1e4,
    "mm": 1e3,
    "µm": 1.0,
    "μm": 1.0,
    "um": 1.0,
    "micron": 1.0,
    "micrometer": 1.0,
    "micrometre": 1.0,
    "nm": 1e-3,
    "nanometer": 1e-3,
    "pm": 1e-6,
    "å": 1e-4,
    "angstrom": 1e-4,
}


@dataclass(frozen=True)
class FileAxes:
    """What an image file says about its axes (:func:`read_file_axes`).

    ``axes`` has one letter per axis of the image as read, ``"?"`` where the file does
    not say; ``z_scale`` is ``None`` when the file gives no z-step.
    """

    axes: str | None = None
    z_scale: float | None = None
    source: str | None = None


@dataclass(frozen=True)
class ImageAxes:
    """The axes of one image: ``axes`` (one letter per axis, from ``STZCYX``), the
    z-step over the XY pixel size ``z_scale``, and where each came from (``source``,
    ``z_source``: ``"ImageJ metadata"``, ``"OME metadata"``, ``"OME-Zarr metadata"``,
    ``"tifffile metadata"``, ``"given"`` or ``"the shape"``)."""

    axes: str
    z_scale: float = 1.0
    source: str = FROM_SHAPE
    z_source: str = FROM_SHAPE

    @property
    def z_axis(self) -> int | None:
        """The Z axis (0-based), ``None`` when the image is no volume."""
        return self.axes.index("Z") if "Z" in self.axes else None

    @property
    def t_axis(self) -> int | None:
        """The T axis (0-based), ``None`` when the image is no time-lapse."""
        return self.axes.index("T") if "T" in self.axes else None

    @property
    def channel_axis(self) -> int | None:
        """The channel axis (0-based), ``None`` when there is none."""
        return self.axes.index("C") if "C" in self.axes else None

    @property
    def is_volume(self) -> bool:
        """Whether the image has a Z axis (to be segmented as one volume per time point)."""
        return "Z" in self.axes

    @property
    def stack_axes(self) -> str:
        """The letters in front of ``(Y, X)``, channels left out (``""``, ``"Z"``, ``"TZ"``)."""
        return self.axes.replace("C", "")[:-2]

    def scale(self, *, drop_channels: bool = True) -> tuple[float, ...]:
        """A napari layer's ``scale``: ``z_scale`` on Z, 1 elsewhere (the XY pixel is the
        unit), over every axis but the channels unless ``drop_channels`` is false."""
        letters = self.axes.replace("C", "") if drop_channels else self.axes
        return tuple(self.z_scale if a == "Z" else 1.0 for a in letters)

    def axis_labels(self, *, drop_channels: bool = True) -> tuple[str, ...]:
        """napari's ``axis_labels``: ``("z", "y", "x")``, ``("t", "y", "x")``, …"""
        letters = self.axes.replace("C", "") if drop_channels else self.axes
        return tuple(a.lower() for a in letters)

    def describe(self, name: str, axes_hint: str = "--axes", z_hint: str = "--z-scale") -> str:
        """One plain line for a person: what the axes are, from where, and the z-step.

        ``axes_hint`` and ``z_hint`` name where the person can say them (the command
        line's options by default; a widget passes its own words)."""
        shown = "×".join(self.axes)
        kinds = {"Z": "volume", "T": "time-lapse", "S": "stack of planes"}
        kind = " ".join(kinds[a] for a in self.stack_axes if a in kinds) or "image"
        if "Z" in self.stack_axes and "T" in self.stack_axes:
            kind = "time-lapse of volumes"
        where = {FROM_PERSON: "as given", FROM_SHAPE: "from the shape"}.get(
            self.source, f"from {self.source}"
        )
        line = f"{name}: {shown} {kind} (axes {where}"
        if self.source == FROM_SHAPE and self.stack_axes:
            example = "TYX for a time-lapse" if len(self.stack_axes) == 1 else "ZTYX"
            line += f"; if this is wrong, say it with {axes_hint}, e.g. {example}"
        line += ")"
        if self.is_volume:
            step = f"{self.z_scale:.3g}× the pixel size"
            if self.z_source == FROM_SHAPE:
                line += f", z-step not in the file: taken as {step} (give {z_hint})"
            elif self.z_source == FROM_PERSON:
                line += f", z-step {step} (as given)"
            elif self.z_source == self.source:
                line += f", z-step {step}"
            else:
                line += f", z-step {step} (from {self.z_source})"
        return line


# --------------------------------------------------------------------------- the rule
def check_z_scale(z_scale) -> float:
    """``z_scale`` as a float, refused (``ConfigError`` ``z_scale``) outside its range."""
    from ..config import check_limit

    check_limit("z_scale", z_scale)
    return float(z_scale)


def parse_axes(axes: str, ndim: int, name: str = "the image") -> str:
    """A person's axes string, upper case and checked against ``ndim`` axes."""
    from ..axes import _parse_axes

    _parse_axes(axes, ndim, name)
    return str(axes).strip().upper()


def decide_axes(
    shape,
    *,
    channel_axis: int | None = None,
    axes: str | None = None,
    z_scale: float | None = None,
    found: FileAxes | None = None,
    name: str = "the image",
) -> ImageAxes:
    """The rule of this module's docstring for an image of ``shape``.

    ``channel_axis`` is where :func:`napari_unet.core.axes.channel_layout` found the
    channels (``None``: none); ``axes``, ``z_scale`` what a person said (they win);
    ``found`` what the file said (:func:`read_file_axes`).

    Raises
    ------
    UserInputError, ConfigError
        An axes string that does not fit the shape, a z-step out of range.
    """
    shape = tuple(int(s) for s in shape)
    nd = len(shape)
    given_z = check_z_scale(z_scale) if z_scale is not None else None
    if axes is not None:
        letters, source = parse_axes(axes, nd, name), FROM_PERSON
    else:
        letters, source = _from_file_and_shape(shape, channel_axis, found)
    if given_z is not None:
        zs, z_source = given_z, FROM_PERSON
    elif found is not None and found.z_scale is not None and _usable(found.z_scale):
        zs, z_source = float(found.z_scale), found.source or FROM_SHAPE
    else:
        zs, z_source = 1.0, FROM_SHAPE
    return ImageAxes(letters, zs, source, z_source)


#: Where the axes of a viewer layer come from (:func:`layer_axes`).
FROM_LAYER = "the layer's axis labels"
FROM_LAYER_SCALE = "the layer's scale"
#: Axis labels (lower case) that name Z or T.
_LABEL_LETTERS = {"z": "Z", "t": "T", "time": "T"}


def layer_axes(spatial_shape, labels=None, scale=None, name: str = "the image") -> ImageAxes:
    """The axes of an image layer of ``spatial_shape`` (channels left out) from napari's
    ``axis_labels`` (``"z"``, ``"t"``; napari's own ``"axis -3"`` says nothing) and its
    ``scale``: the rule of the module docstring with the labels in the place of a file's
    metadata; the z-step is the Z axis' scale over X's (1 when it is out of range).
    ``labels`` and ``scale`` that do not name every axis of ``spatial_shape`` are ignored."""
    shape = tuple(int(s) for s in spatial_shape)
    nd = len(shape)
    labels = [str(a).strip().lower() for a in (labels or ())]
    said = "".join(_LABEL_LETTERS.get(a, "?") for a in labels) if len(labels) == nd else None
    found = FileAxes(said, None, FROM_LAYER) if said and said.strip("?") else None
    ax = decide_axes(shape, found=found, name=name)
    scale = [float(s) for s in (scale or ())]
    if ax.z_axis is not None and len(scale) == nd and scale[-1] > 0:
        z = scale[ax.z_axis] / scale[-1]
        if _usable(z):
            ax = replace(ax, z_scale=z, z_source=FROM_LAYER_SCALE)
    return ax


def _usable(z: float) -> bool:
    from ..config import LIMITS

    lim = LIMITS["z_scale"]
    return math.isfinite(z) and lim.lo <= z <= lim.hi


def _from_file_and_shape(
    shape: tuple[int, ...], channel_axis: int | None, found: FileAxes | None
) -> tuple[str, str]:
    """Letters from the file where it names them, the rest from the shape."""
    nd = len(shape)
    said = list(found.axes) if found and found.axes and len(found.axes) == nd else ["?"] * nd
    letters = ["?"] * nd
    for i, a in enumerate(said):
        if a in "TZS":  # a file's C counts only where the channel layout found channels
            letters[i] = a
    if channel_axis is not None:
        letters[channel_axis % nd] = "C"
    plane = [i for i in range(nd) if letters[i] != "C"][-2:]
    for i, a in zip(plane, "YX", strict=True):
        letters[i] = a
    stack = [i for i in range(nd) if i not in plane and letters[i] != "C"]
    unknown = [i for i in stack if letters[i] == "?"]
    spare = [a for a in "TZ" if a not in letters]
    for k, i in enumerate(unknown):  # one axis: Z; two: T, Z; more: planes (S)
        j = len(spare) - len(unknown) + k
        letters[i] = spare[j] if 0 <= j < len(spare) else "S"
    told = found.source if found is not None and found.source else None
    if told and len(unknown) < len(stack):
        source = told if not unknown else f"{told} and the shape"
    else:
        source = FROM_SHAPE
    return "".join(letters), source


# --------------------------------------------------------------------------- files
def image_axes(
    path: str | os.PathLike,
    *,
    shape=None,
    channel_axis: int | None | str = "guess",
    axes: str | None = None,
    z_scale: float | None = None,
) -> ImageAxes:
    """The axes of the image file ``path`` (see the module docstring for the rule).

    ``shape`` saves reading the header again (the shape
    :func:`~napari_unet.core.files.images.image_info` gives); ``channel_axis`` is the
    channel layout's axis when a model is known, ``"guess"``: the file's own ``C``, else
    a colour axis found by the one-channel rule of
    :func:`~napari_unet.core.axes.channel_layout`.
    """
    from .images import image_info

    if shape is None:
        shape = image_info(path)[0]
    shape = tuple(int(s) for s in shape)
    found = read_file_axes(path, len(shape)) if axes is None or z_scale is None else None
    if channel_axis == "guess":
        channel_axis = _guess_channels(shape, found, axes)
    return decide_axes(
        shape,
        channel_axis=channel_axis,
        axes=axes,
        z_scale=z_scale,
        found=found,
        name=Path(path).name,
    )


#: The name the other parts of napari-unet may use when they only care about volumes.
volume_axes = image_axes


def _guess_channels(shape, found: FileAxes | None, axes: str | None) -> int | None:
    if axes is not None:
        text = str(axes).strip().upper()
        return text.index("C") if "C" in text else None
    if found is not None and found.axes and "C" in found.axes and len(found.axes) == len(shape):
        return found.axes.index("C")
    from ..axes import channel_layout

    try:
        return channel_layout(shape, 1).axis
    except UserInputError:
        return None


def read_file_axes(path: str | os.PathLike, ndim: int | None = None) -> FileAxes:
    """What the file says about its axes and z-step (``FileAxes()`` when nothing or
    when it cannot be read: the caller's reading of the pixels reports that)."""
    p = Path(path)
    low = p.name.lower()
    try:
        from .images import TIFF_SUFFIXES

        if low.endswith(TIFF_SUFFIXES):
            return _tiff_axes(p)
        if low.rstrip("/\\").endswith(".zarr"):
            return _zarr_axes(p, ndim)
    except MemoryError:
        raise
    except Exception:  # noqa: BLE001 - metadata is a hint: a damaged header says nothing
        return FileAxes()
    return FileAxes()


_TIFF_LETTERS = {"T": "T", "Z": "Z", "C": "C", "S": "C", "Y": "Y", "X": "X"}


def _tiff_axes(p: Path) -> FileAxes:
    import tifffile

    with tifffile.TiffFile(p) as tif:
        if not tif.series:
            return FileAxes()
        series = tif.series[0]
        axes = "".join(_TIFF_LETTERS.get(a, "?") for a in series.axes)
        page = series.pages[0] if series.pages else tif.pages[0]
        if tif.is_ome and tif.ome_metadata:
            return FileAxes(axes, _ome_z_scale(tif.ome_metadata), "OME metadata")
        if tif.is_imagej:
            meta = tif.imagej_metadata or {}
            z = None
            if meta.get("spacing") is not None:
                z = float(meta["spacing"]) / _tiff_pixel_size(page)
            return FileAxes(axes, z, "ImageJ metadata")
        if tif.is_shaped and any(a in "TZ" for a in axes):
            return FileAxes(axes, None, "tifffile metadata")
    return FileAxes(axes if any(a in "TZ" for a in axes) else None, None, None)


def _tiff_pixel_size(page) -> float:
    """The X pixel size in the file's unit (1 when the file has no ``XResolution``)."""
    tag = page.tags.get("XResolution")
    if tag is None:
        return 1.0
    num, den = tag.value
    return float(den) / float(num) if num else 1.0


def _ome_z_scale(xml: str) -> float | None:
    import xml.etree.ElementTree as ET

    root = ET.fromstring(xml)
    pixels = next((e for e in root.iter() if e.tag.rsplit("}", 1)[-1] == "Pixels"), None)
    if pixels is None or pixels.get("PhysicalSizeZ") is None:
        return None

    def size(axis: str) -> float:
        unit = (pixels.get(f"PhysicalSize{axis}Unit") or "µm").strip().lower()
        return float(pixels.get(f"PhysicalSize{axis}")) * _UNITS_UM.get(unit, 1.0)

    if pixels.get("PhysicalSizeX") is None:
        return None
    x = size("X")
    return size("Z") / x if x > 0 else None


def _zarr_axes(p: Path, ndim: int | None) -> FileAxes:
    import zarr

    g = zarr.open(str(p), mode="r")
    if hasattr(g, "shape"):
        return FileAxes()
    ms = (g.attrs.get("multiscales") or g.attrs.get("ome", {}).get("multiscales") or [None])[0]
    if not ms or not ms.get("axes"):
        return FileAxes()
    letters = []
    for a in ms["axes"]:
        nm, kind = (a, None) if isinstance(a, str) else (a.get("name"), a.get("type"))
        nm = str(nm or "").lower()
        if nm in ("t", "z", "c", "y", "x"):
            letters.append(nm.upper())
        elif kind == "time":
            letters.append("T")
        elif kind == "channel":
            letters.append("C")
        else:
            letters.append("?")
    if ndim is not None and len(letters) != ndim:
        return FileAxes()
    scale = [1.0] * len(letters)
    transforms = list(ms["datasets"][0].get("coordinateTransformations") or [])
    transforms += list(ms.get("coordinateTransformations") or [])
    for t in transforms:
        if t.get("type") == "scale" and len(t.get("scale", ())) == len(letters):
            scale = [s * float(f) for s, f in zip(scale, t["scale"], strict=True)]
    z = None
    if "Z" in letters and "X" in letters and scale[letters.index("X")] > 0:
        z = scale[letters.index("Z")] / scale[letters.index("X")]
    return FileAxes("".join(letters), z, "OME-Zarr metadata")
