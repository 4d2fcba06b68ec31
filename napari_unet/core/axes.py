"""Where an image keeps its channels: decided here, once, for every caller.

The command line, the widgets, training, :meth:`UNet.predict <napari_unet.core.UNet.predict>`
and the block-wise large-image path all ask :func:`channel_layout` and nothing else.

The rule
--------
Given an image's shape and the number of input channels ``C`` of the model:

1. **Said explicitly** — an axes string such as ``"YXC"``, ``"CYX"``, ``"ZYX"`` or
   ``"TZYXC"`` (StarDist/CSBDeep letters: ``C`` channels; ``Y``, ``X`` the plane, last of
   the other letters; ``T``, ``Z``, ``S`` stack axes), or a channel axis number: that axis
   holds the channels (none when ``C`` is missing from the string).
2. **napari's RGB flag** — ``rgb=True``: the last axis is the colour axis. ``rgb=False``:
   the last axis is not a colour axis (a one-channel model then sees no channel axis;
   a multichannel model still finds channels by their number).
3. **From the shape** (nothing said):

   * the **last** axis holds the channels when it is smaller than both axes before it
     and its size fits the model: ``C`` entries, or RGB(A) colours (3 or 4 entries) for
     a one-channel model, or RGBA (4) for a three-channel model;
   * otherwise, for a multichannel model only, the one axis before ``(Y, X)`` with ``C``
     entries (``(C, Y, X)``, ``(Z, C, Y, X)``, …); two such axes are ambiguous;
   * otherwise a one-channel model reads the image as a plane or a stack of planes
     (``(Y, X)``, ``(Z, Y, X)``, ``(T, Z, Y, X)``): a leading axis is never averaged away.

How the channels found are brought to the model's ``C``:

* ``C`` entries: used as they are;
* 4 entries on the **last** axis for a 3- or 1-channel model: an RGBA picture, the alpha
  channel (transparency, no intensity) is dropped;
* several entries for a one-channel model: their mean intensity (colour → grey), except
  a stained brightfield slide (H&E, IHC), which is read as its haematoxylin when the
  image is at hand (``image=``, :mod:`.stains`): decided once per image, so every block
  and plane of it is read alike;
* anything else is refused with a :class:`~napari_unet.core.errors.UserInputError` that
  says what the model takes.

The two axes before the channels' removal that remain last are ``(Y, X)``; up to
:data:`MAX_STACK_AXES` more in front of them are planes segmented one by one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .errors import UserInputError

if TYPE_CHECKING:
    from .stains import StainReading

#: Axis letters an axes string may use (StarDist/CSBDeep convention; ``S`` = samples).
AXIS_LETTERS = "STZCYX"
#: Stack axes allowed in front of ``(Y, X)``: ``(T, Z, Y, X)`` at most.
MAX_STACK_AXES = 2


@dataclass(frozen=True)
class ChannelLayout:
    """The decision of :func:`channel_layout` for one image shape and one model.

    Attributes
    ----------
    shape
        The image's shape as given.
    axis
        Axis of ``shape`` (0-based) that holds the channels, ``None`` when there is none.
    channels
        Input channels of the model.
    drop_alpha
        The channel axis is an RGBA colour axis whose alpha is dropped.
    to_grey
        The channels are averaged into the one channel of the model.
    stains
        Set on a stained slide (:func:`~napari_unet.core.stains.read_stains`): how
        its colours are read as their haematoxylin density instead of averaged (the
        slide's white and its own haematoxylin direction).
    """

    shape: tuple[int, ...]
    axis: int | None
    channels: int
    drop_alpha: bool = False
    to_grey: bool = False
    stains: StainReading | None = None

    @property
    def stained(self) -> bool:
        """Whether the colours are read as a stained slide's haematoxylin."""
        return self.stains is not None

    def for_image(self, image) -> ChannelLayout:
        """This layout with the colour reading decided for ``image`` (of this layout's
        shape): a stained slide's colours become its haematoxylin, anything else keeps
        the mean. Only colour pictures (RGB, or RGBA whose alpha is dropped) brought to
        one channel are looked at, not other channels averaged."""
        import dataclasses

        from .stains import read_stains, sample_colours

        colours = self.axis is not None and (
            self.shape[self.axis] == 3 or (self.shape[self.axis] == 4 and self.drop_alpha)
        )
        if not self.to_grey or not colours:
            return self
        return dataclasses.replace(self, stains=read_stains(sample_colours(image, self.axis)))

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        """The shape without the channel axis: ``(..., Y, X)``."""
        return tuple(s for i, s in enumerate(self.shape) if i != self.axis)

    @property
    def stack_shape(self) -> tuple[int, ...]:
        """The stack axes in front of ``(Y, X)`` (``()`` for a single plane)."""
        return self.spatial_shape[:-2]

    @property
    def axes(self) -> str:
        """The layout as an axes string (``"YXC"``, ``"ZCYX"``, ``"TZYX"``, …)."""
        lead = "STZ"[-len(self.stack_shape) :] if self.stack_shape else ""
        letters = list(lead + "YX")
        if self.axis is not None:
            letters.insert(self.axis, "C")
        return "".join(letters)

    def _fit(self, a):
        """``a`` with its channels last, brought to the model's channel count."""
        if self.drop_alpha:
            a = a[..., :3]
        if self.stains is not None:
            from .stains import haematoxylin

            return haematoxylin(a, self.stains)
        if self.to_grey:
            a = np.asarray(a, np.float32).mean(axis=-1, keepdims=True)
        return a

    def channels_last(self, image):
        """``image`` as ``(..., Y, X, C)`` with exactly the model's ``C`` channels.

        A view where no arithmetic is needed (a lazy array stays lazy when it has no
        channel axis or keeps its channels last); colours brought to grey are float32.
        """
        if tuple(np.shape(image)) != self.shape:
            raise UserInputError(f"image of shape {np.shape(image)} is not the shape {self.shape}")
        if self.axis is None:
            return (
                image[..., None] if hasattr(image, "__getitem__") else np.asarray(image)[..., None]
            )
        a = image
        if self.axis != len(self.shape) - 1:
            a = np.moveaxis(np.asarray(image), self.axis, -1)
        return self._fit(a)

    def read(self, image, index: tuple[int, ...] = (), ys=slice(None), xs=slice(None)):
        """One plane (or a window of it) as ``(Y, X, C)`` numpy, reading only that part.

        ``index`` picks the plane over :attr:`stack_shape`; ``ys``, ``xs`` slice it.
        Works on lazy array-likes (memory maps, zarr) that support basic slicing.
        """
        nd = len(self.shape)
        if len(index) != len(self.stack_shape):
            raise ValueError(f"index {index} does not match the stack {self.stack_shape}")
        key: list = []
        plane = iter(tuple(index) + (ys, xs))
        for i in range(nd):
            key.append(slice(None) if i == self.axis else next(plane))
        sub = np.asarray(image[tuple(key)])
        if self.axis is None:
            return sub[..., None]
        # the axes left are (Y, X) and the channel axis, in their original order
        kept = [i for i, k in enumerate(key) if isinstance(k, slice)]
        return self._fit(np.moveaxis(sub, kept.index(self.axis), -1))


def grey_alpha(shape) -> bool:
    """Whether a picture file (PNG, JPEG) of ``shape`` is grey plus alpha, ``(Y, X, 2)``:
    its files are read as the grey plane alone (the alpha is transparency, no image
    data). An RGBA picture stays whole: :func:`channel_layout` drops its alpha once the
    model is known."""
    return len(tuple(shape)) == 3 and tuple(shape)[-1] == 2


def _fit_flags(size: int, channels: int, last: bool, where: str, name: str) -> tuple[bool, bool]:
    """``(drop_alpha, to_grey)`` for a channel axis of ``size`` entries, or an error."""
    if size == channels:
        return False, False
    if last and size == 4 and channels in (1, 3):
        return True, channels == 1
    if channels == 1:
        return False, True
    raise UserInputError(
        f"{name} has {size} channel{'s' if size != 1 else ''} ({where}) but the model takes "
        f"{channels}; give an image with {channels} channels"
    )


def _parse_axes(axes: str, ndim: int, name: str) -> int | None:
    text = str(axes).strip().upper()
    bad = sorted(set(text) - set(AXIS_LETTERS))
    if bad or len(set(text)) != len(text):
        raise UserInputError(
            f"axes {axes!r}: use each of the letters {', '.join(AXIS_LETTERS)} at most once "
            f"(for example 'YX', 'YXC', 'CYX', 'ZYX', 'TZYXC')"
        )
    if len(text) != ndim:
        raise UserInputError(
            f"axes {axes!r} name {len(text)} axes but {name} has {ndim} dimensions"
        )
    if not text.replace("C", "").endswith("YX"):
        raise UserInputError(
            f"axes {axes!r}: Y and X must come after every axis but C (for example 'ZYX', "
            f"'CYX', 'YXC')"
        )
    return text.index("C") if "C" in text else None


def channel_layout(
    shape,
    channels: int,
    *,
    rgb: bool | None = None,
    axes: str | None = None,
    channel_axis: int | None = None,
    name: str = "the image",
    image=None,
) -> ChannelLayout:
    """Decide where an image of ``shape`` keeps its channels for a ``channels``-input model.

    See the module docstring for the rule. ``axes`` (a string like ``"ZYXC"``) or
    ``channel_axis`` (an axis number, negative allowed) say it explicitly; ``rgb`` is
    napari's flag of an Image layer (``None``: not known). ``image`` (the image
    itself, lazy or not) lets a colour picture for a one-channel model be read as a
    stained slide where it is one (:meth:`ChannelLayout.for_image`); callers that read
    pixels for the network give it.

    Raises
    ------
    UserInputError
        The image does not fit the model, or its channel axis is ambiguous.
    """
    shape = tuple(int(s) for s in shape)
    nd = len(shape)
    channels = int(channels)
    if nd < 2:
        raise UserInputError(f"{name} must be at least 2D, got shape {shape}")
    explicit = axes is not None or channel_axis is not None
    if axes is not None:
        axis = _parse_axes(axes, nd, name)
        if channel_axis is not None and axis != channel_axis % nd:
            raise UserInputError(f"axes {axes!r} and channel axis {channel_axis} disagree")
    elif channel_axis is not None:
        if not -nd <= int(channel_axis) < nd:
            raise UserInputError(f"channel axis {channel_axis} is not an axis of {name} {shape}")
        axis = int(channel_axis) % nd
    elif rgb:
        if nd < 3 or shape[-1] not in (3, 4):
            raise UserInputError(f"{name} is marked RGB but its shape {shape} has no colour axis")
        axis = nd - 1
    else:
        axis = _guess_axis(shape, channels, rgb, name)
    if axis is None:
        if channels != 1:
            raise UserInputError(
                f"{name} {shape} has no axis of {channels} channels for a {channels}-channel "
                f"model; give channels last (Y, X, {channels}) or first ({channels}, Y, X)"
            )
        flags = (False, False)
    else:
        where = "its last axis" if axis == nd - 1 else f"axis {axis} of {shape}"
        flags = _fit_flags(shape[axis], channels, axis == nd - 1, where, name)
    layout = ChannelLayout(shape, axis, channels, *flags)
    spatial = layout.spatial_shape
    if len(spatial) < 2:
        raise UserInputError(f"{name} {shape} has no (Y, X) plane besides its channels")
    if len(spatial) > 2 + MAX_STACK_AXES:
        raise UserInputError(
            f"{name}: a {len(spatial)}D stack of shape {shape} is not supported; give a 2D "
            f"image or a stack of planes such as (Z, Y, X) or (T, Z, Y, X)"
            + ("" if explicit or axis is not None else ", with channels last or first")
        )
    return layout if image is None else layout.for_image(image)


def _guess_axis(shape: tuple[int, ...], channels: int, rgb: bool | None, name: str) -> int | None:
    """The shape rule (step 3 of the module docstring)."""
    nd = len(shape)
    if nd >= 3:
        last = shape[-1]
        small = last < shape[-2] and last < shape[-3]
        if channels == 1:
            fits = last == 1 or (last in (3, 4) and rgb is None)
            if rgb is False:
                fits = False
        else:
            fits = last == channels or (channels == 3 and last == 4 and rgb is None)
        if fits and small:
            return nd - 1
    if channels == 1:
        return None
    found = [i for i in range(nd - 2) if shape[i] == channels]
    if len(found) > 1:
        raise UserInputError(
            f"{name} {shape}: axes {' and '.join(map(str, found))} both have {channels} "
            f"entries, so which holds the channels is ambiguous; say it with axes such as "
            f"'CZYX' or 'ZCYX'"
        )
    return found[0] if found else None
