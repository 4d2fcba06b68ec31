"""Object size: measure it, and bring an image to the scale a model was trained at.

A model remembers the typical width of the objects it learned (``object_diameter`` in
its metadata, in pixels). An image whose objects are 3× wider is shrunk 3× before the
network sees it, and the results are brought back to the image's own pixels — as
Cellpose does with its diameter. The size is measured on the network's own foreground
prediction, which stays roughly right even where the instances are wrong (a large
nucleus cut into pieces is still one wide foreground region), and refined at the new
scale until it agrees with itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ..config import MAX_SCALE, MIN_SCALE, WIDTH_MEASURES
from .instances import interior_and_boundary

#: Scale changes smaller than this (relative) are not worth an interpolation.
SCALE_TOLERANCE = 0.15


def object_diameter(foreground: np.ndarray, min_size: int = 10) -> float | None:
    """Typical object width (px) of a foreground mask: twice the largest inscribed
    radius of each connected region, median weighted by area (``None`` if empty).

    For round objects this is their diameter; for rods, their thickness. Touching
    objects that merge into one region barely change it, since the widest point of a
    cluster is still about one object wide.
    """
    from scipy import ndimage as ndi

    fg = np.asarray(foreground, bool)
    lab, n = ndi.label(fg)
    if n == 0:
        return None
    # per-region maxima and areas in one pass over the foreground (no sort by label)
    radius = np.zeros(n + 1)
    np.maximum.at(radius, lab[fg], ndi.distance_transform_edt(fg)[fg])
    radius = radius[1:]
    area = np.bincount(lab.ravel(), minlength=n + 1)[1:]
    keep = area >= max(1, min_size)
    if not keep.any():
        return None
    r, w = radius[keep], area[keep]
    order = np.argsort(r)
    cum = np.cumsum(w[order])
    return float(2.0 * r[order][np.searchsorted(cum, cum[-1] / 2.0)])


def width_measure(name: str | None) -> str:
    """A model's width measure, one of :data:`~napari_unet.core.config.WIDTH_MEASURES`
    (``None``: ``"foreground"``, models made before it was recorded)."""
    return name or WIDTH_MEASURES[0]


#: The boundary class is one pixel wide on each side of an object, so an object's
#: interior is this much narrower than the object (px, at the scale it is seen at).
RIM = 2.0


def measured_region(prob: np.ndarray, threshold: float, measure: str | None) -> np.ndarray:
    """Pixels whose widths ``measure`` reads, of ``(…, C)`` class probabilities
    ``[bg, classes…, boundary]`` (objects where ``1 - P(bg)`` passes ``threshold``;
    for ``"interior"``, only where an object class outweighs the boundary)."""
    fg = (1.0 - prob[..., 0]) > threshold
    if width_measure(measure) == "interior":
        interior, boundary = interior_and_boundary(prob)
        fg &= interior > boundary
    return fg


def region_width(region: np.ndarray, measure: str | None, min_size: int = 10) -> float | None:
    """The object width (px) a ``region`` of :func:`measured_region` says: interiors are
    widened by their rims (:data:`RIM`), so that every measure speaks of whole objects
    (what a person means by a diameter)."""
    d = object_diameter(region, min_size)
    if d and width_measure(measure) == "interior":
        d += RIM
    return d


def per_plane(measure: Callable[[np.ndarray], float | None], stack: np.ndarray) -> float | None:
    """The median of ``measure`` over the 2-D planes of ``stack`` that give a value, or
    ``None`` where none does."""
    values = [v for v in map(measure, stack.reshape((-1,) + stack.shape[-2:])) if v]
    return float(np.median(values)) if values else None


def mask_diameter(mask: np.ndarray, measure: str | None = None) -> float | None:
    """:func:`object_diameter` of a dense instance mask (or a stack of them), read as a
    model of width ``measure`` (:data:`~napari_unet.core.config.WIDTH_MEASURES`) reads
    its own output.

    ``"foreground"``: touching instances count as one region, as they do in the
    foreground such a model's looks measure (:func:`estimate_scale`). ``"interior"``:
    each instance less its one-pixel rim (the boundary class a model is taught), so
    touching instances are measured apart, and the width widened by the rim again
    (:func:`region_width`). Training brings a mask to the scale where the
    model's looks would see it at its size, so the mask is measured as the model
    measures (benchmarks/RESULTS.md, "The user's scale kept" and "Widths per cell").
    """
    m = np.asarray(mask)
    if m.ndim > 2:
        return per_plane(lambda p: mask_diameter(p, measure), m)
    if width_measure(measure) == "interior":
        return region_width((m > 0) & ~_rim(m), measure)
    return object_diameter(m > 0)


def _rim(labels: np.ndarray) -> np.ndarray:
    """Pixels with a 4-neighbour of another id (background or a touching instance; the
    image's sides count as the same id): the boundary class of the training targets."""
    p = np.pad(labels, 1, mode="edge")
    c = p[1:-1, 1:-1]
    return (p[:-2, 1:-1] != c) | (p[2:, 1:-1] != c) | (p[1:-1, :-2] != c) | (p[1:-1, 2:] != c)


#: An annotation names the size of its objects when it paints this many whole.
MIN_WHOLE_OBJECTS = 3
#: A painted object is whole when at least this share of the pixels around it is
#: painted too (background, or a neighbouring object); a scribble inside an
#: unpainted object is not.
WHOLE_RING = 0.8


def annotated_diameter(annotation: np.ndarray, measure: str | None = None) -> float | None:
    """Typical width (px) of the objects an annotation paints whole, or ``None``.

    An object (:func:`~napari_unet.core.prediction.instances.annotation_instances`: a
    region of label ≥ 2 with the line where it touches another given back to it) counts
    when the 1-px ring around it is mostly painted (:data:`WHOLE_RING`): a corrected or
    copied object, not a stroke through an unpainted one. At least
    :data:`MIN_WHOLE_OBJECTS` are needed: the widths a person painted say the size of
    their objects better than a model that cannot see them yet. The objects are
    measured as :func:`mask_diameter` measures a mask's (``measure``), so the same
    objects as an annotation and as a mask are trained at the same scale.
    """
    from scipy import ndimage as ndi

    from .instances import annotation_instances

    a = np.asarray(annotation)
    if a.ndim > 2:
        return per_plane(lambda p: annotated_diameter(p, measure), a)
    lab, filled = annotation_instances(a)
    n = int(lab.max(initial=0))
    if n < MIN_WHOLE_OBJECTS:
        return None
    grown = ndi.grey_dilation(lab, size=(3, 3))
    ring = (lab == 0) & (grown > 0)
    idx = np.arange(1, n + 1)
    ring_size = ndi.sum(ring, grown, idx)
    painted = ndi.sum(ring & (filled > 0), grown, idx)
    whole = painted >= WHOLE_RING * np.maximum(ring_size, 1)
    if int(whole.sum()) < MIN_WHOLE_OBJECTS:
        return None
    return mask_diameter(np.where(np.isin(lab, idx[whole]), lab, 0), measure)


#: Object strokes painted apart (each its own connected region) needed before their
#: spacing says anything about the objects' size.
MIN_STROKES = 5
#: Share of the strokes' spacing taken as the widest the objects can be. A stroke in
#: each of two touching objects lies about one object width from the other, so objects
#: much wider than the strokes' spacing would hold several strokes each; the margin
#: allows for strokes off the objects' centres (development series, benchmarks/
#: RESULTS.md "Scribbles: objects no wider than the strokes' spacing").
STROKE_SPACING = 0.75


def stroke_spacing(annotation: np.ndarray) -> float | None:
    """Median distance (px) from each object stroke (a connected region of labels ≥ 2)
    to the nearest other one, or ``None`` with fewer than :data:`MIN_STROKES`.

    A person who scribbles paints one stroke in each object they mark, so the objects
    are about as wide as the strokes' spacing or narrower: never several times wider.
    Strokes in only some of the objects lie further apart, which allows wider objects:
    the bound loosens, it does not mislead."""
    from scipy import ndimage as ndi
    from scipy.spatial import cKDTree

    a = np.asarray(annotation)
    if a.ndim > 2:
        return per_plane(stroke_spacing, a)
    lab, n = ndi.label(a >= 2)
    if n < MIN_STROKES:
        return None
    centres = np.array(ndi.center_of_mass(lab > 0, lab, np.arange(1, n + 1)))
    dist, _ = cKDTree(centres).query(centres, k=2)
    return float(np.median(dist[:, 1]))


def stroke_floor(annotation: np.ndarray, mask_diameter: float) -> float | None:
    """The smallest scale factor (not clipped) at which scribbles' objects can be seen:
    the one that brings :data:`STROKE_SPACING` of the strokes' spacing to the model's
    mask width; ``None`` where the strokes are too few to say."""
    spacing = stroke_spacing(annotation)
    return STROKE_SPACING * mask_diameter / spacing if spacing else None


#: A diameter a person gives is a mask's width. An image it enlarges is brought to the
#: model's width as the network reads it (``object_diameter``); one it shrinks this many
#: times or more is brought to the width the model's own masks had (``mask_diameter``,
#: narrower: shrunk large textured cells and nuclei are cut less seen smaller), and one
#: shrunk less to a width in between (geometric). Development images with their masks'
#: width given: F1 0.760 → 0.776 (benchmarks/RESULTS.md, "Large nuclei seen at their
#: masks' width").
GIVEN_SHRINK = 2.0


def given_scale(diameter: float, object_d: float, mask_d: float | None = None) -> float:
    """The scale factor (not clipped) for objects a person says are ``diameter`` px wide,
    for a model that reads its objects ``object_d`` px wide and whose masks measured
    ``mask_d`` (:data:`GIVEN_SHRINK`)."""
    d = float(diameter)
    mask_d = min(mask_d or object_d, object_d)
    if d <= object_d or mask_d == object_d:
        return object_d / d
    k = math.log(object_d / mask_d) / math.log(GIVEN_SHRINK)
    return max(mask_d, object_d * (object_d / d) ** k) / d


def typed_scale(diameter: float, meta) -> float:
    """The scale factor (not clipped) for objects a person says are ``diameter`` px wide,
    for a model of metadata ``meta``: brought to the width typed for the images it was
    fine-tuned on (:attr:`~napari_unet.core.network.metadata.ModelMetadata.typed_width`)
    where it records one, so that an image typed alike is seen where training saw it;
    a fine-tuned model's other (one with a ``taught_scale``) to its masks' width, the width
    its user's objects were taught at; else :func:`given_scale` of its own widths."""
    from ..network.metadata import recorded_width

    if meta.typed_width is not None or meta.taught_scale is not None:
        # fine-tuned: brought to the width it was taught its user's objects at
        # (its own measure may read packed cells as one wide region)
        return meta.typing_width / float(diameter)
    object_d = recorded_width(meta.object_diameter)
    return given_scale(diameter, object_d, recorded_width(meta.mask_diameter) or object_d)


def clip_scale(factor: float) -> float:
    """``factor`` within the supported range, and 1 when close enough to 1."""
    f = float(min(MAX_SCALE, max(MIN_SCALE, factor)))
    return 1.0 if abs(math.log(f)) < math.log1p(SCALE_TOLERANCE) else f


def scaled_shape(shape: tuple[int, int], factor: float) -> tuple[int, int]:
    return tuple(max(8, int(round(s * factor))) for s in shape[:2])


def rescale_image(image: np.ndarray, factor: float, quick: bool = False) -> np.ndarray:
    """A channels-last image ``(Y, X, C)`` resized by ``factor`` (linear, anti-aliased
    when shrinking); the same array when ``factor`` is 1. ``quick``: shrinking by a
    whole number (½, ¼) averages blocks of pixels instead (the size estimate's looks)."""
    if factor == 1.0:
        return image
    from skimage.transform import resize

    a = np.asarray(image, np.float32)
    bad = ~np.isfinite(a)
    if bad.any():  # NaN/inf would bleed into their neighbours: read them as the darkest value
        finite = a[~bad]
        a = np.where(bad, finite.min() if finite.size else 0.0, a)
    k = round(1.0 / factor)
    if quick and factor < 1 and abs(k * factor - 1.0) < 1e-9:
        from skimage.transform import downscale_local_mean

        h, w = (a.shape[0] // k) * k, (a.shape[1] // k) * k
        if min(h, w) >= 8 * k:
            return downscale_local_mean(a[:h, :w], (k, k) + (1,) * (a.ndim - 2)).astype(np.float32)
    shape = scaled_shape(a.shape, factor) + tuple(a.shape[2:])
    return resize(a, shape, order=1, preserve_range=True, anti_aliasing=factor < 1).astype(
        np.float32
    )


def resize_to(array: np.ndarray, shape: tuple[int, int], labels: bool = False) -> np.ndarray:
    """Bring ``array`` (``(Y, X, …)``) back to the spatial ``shape``: nearest for labels,
    linear for probabilities."""
    if tuple(array.shape[:2]) == tuple(shape[:2]):
        return array
    from skimage.transform import resize

    full = tuple(shape[:2]) + tuple(array.shape[2:])
    if labels:
        return resize(array, full, order=0, preserve_range=True, anti_aliasing=False).astype(
            array.dtype
        )
    return resize(array, full, order=1, preserve_range=True, anti_aliasing=False).astype(np.float32)


def resize_annotation(annotation: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A sparse annotation resized so that thin strokes survive shrinking: each label is
    resized as a coverage map (anti-aliased) and a pixel takes the label covering most
    of it, if any covers at least a quarter."""
    a = np.asarray(annotation)
    if tuple(a.shape[:2]) == tuple(shape[:2]):
        return a
    from skimage.transform import resize

    shrink = shape[0] < a.shape[0]
    values = [int(v) for v in np.unique(a) if v != 0]
    out = np.zeros(tuple(shape[:2]), a.dtype)
    best = np.full(tuple(shape[:2]), 0.25, np.float32)
    lost = []
    for v in values:
        cover = resize((a == v).astype(np.float32), shape[:2], order=1, anti_aliasing=shrink)
        win = cover > best
        out[win] = v
        best[win] = cover[win]
        if not win.any() and cover.max() > 0:
            lost.append((v, cover))
    for v, cover in lost:
        # a label thinner than a quarter pixel once shrunk (a 1-px stroke at scale
        # 0.25) still says what the person painted: it keeps the free pixels it covers most
        out[(cover >= 0.5 * cover.max()) & (out == 0)] = v
    return out


#: Scales the network first looks at an image at, when its object size is unknown
#: (coarsest first: the cheapest looks come first and often settle it).
PROBE_SCALES = (0.25, 0.5, 1.0, 2.0)
#: A look is self-consistent when it sees objects within this ratio of the model's size.
CONSISTENT = 1.5
#: Each look of the estimate sees at most this many pixels per side once rescaled (a
#: centre crop): enough for dozens of objects of the model's size, and a small share
#: of what the prediction itself costs.
LOOK_CROP = 384
#: The prediction is made again at the scale its own objects call for when that is
#: more than this (relative) away from the scale it was made at.
REFINE_TOLERANCE = 0.01
#: :data:`REFINE_TOLERANCE` for an image the prediction enlarged, where each pass costs
#: the square of the scale: a second pass for a scale less than 10% off took a third of
#: the time on small objects (rods, small nuclei, phase cells), and leaving it out moved
#: the F1 of enlarged development images by at most 0.05 either way (shrunk images, whose
#: passes are cheap, keep 1%: large textured nuclei split differently 10% off).
REFINE_TOLERANCE_ENLARGED = 0.1
#: The looks at the image's own scale or finer see a smaller crop (px per side once
#: rescaled): objects there are small enough for dozens to fit.
FINE_CROP = 256
#: A look that sees objects within this ratio of the model's size settles the estimate.
CLOSE = 1.15
#: A fine-tuned model's look at the scale it was taught (``prior``) that sees objects
#: within this ratio of its size keeps that scale: the images of one experiment measure
#: 0.78–0.98 of it on CHO planes and vary more in crowded fields of cells, while another
#: zoom shows objects twice as large or small.
TAUGHT = 2.0
#: A look must be at least this many model object widths per side (else a blob or two of
#: merged small objects would be all it sees).
ROOM = 2.0
#: The look at a fine-tuned model's taught scale needs only this many of its object widths
#: per side: the user's own image at that scale may hold just a cell or two (large cells
#: taught at a coarse scale), as the image it learned from did.
TAUGHT_ROOM = 1.0
#: Looks whose objects are within this (log) of the best look's agreement with the model's
#: size count as agreeing as well; the coarsest of them wins.
TIE = 0.1
#: Two neighbouring looks (scales a factor 2 apart) confirm each other when they measure
#: the same width in the image's own pixels within this ratio. Objects the network sees
#: keep their width from one scale to the next; a cluster of small objects seen as one
#: blob at a coarse scale is seen at the model's size at every coarse scale, so its width
#: in the image halves from one look to the next.
AGREE = 1.15
#: The "crop" that asks for the whole image as the prediction sees it (not a look).
WHOLE = (slice(None), slice(None))
#: A look is *sure* of the objects it measures when at least this share of the region it
#: measures is object interior with a probability above :data:`SURE_PROBABILITY`. A field
#: of small objects (rods 9 px wide) seen at a coarse scale merges into blobs of about
#: the model's size, at the same width in the image from one coarse look to the next,
#: but the network is unsure of them (0.02–0.46 on development rods), while it is sure
#: of real objects at their size (0.63–0.90 on nuclei, and of the rods themselves at
#: the fine looks: 0.82–0.87).
SURE = 0.6
#: The interior probability a pixel of a sure look passes (:data:`SURE`).
SURE_PROBABILITY = 0.9
#: The size read from a look whose share of sure interior (:func:`sure_share`) is below
#: this is *unclear*, whatever it reads: on development images the network was this
#: unsure of the look it trusted on 13 of the 17 images it segmented at F1 below 0.5
#: (large textured cells cut into pieces, membranes read as objects, rods merged) and on
#: one of the 57 at 0.7 or more (crowded 4 px nuclei, F1 0.81), never on a real plane
#: (benchmarks/RESULTS.md, "An unsure look's size is unclear").
UNSURE_LOOK = 0.5
#: Objects whose width calls for a scale beyond
#: :data:`~napari_unet.core.config.MIN_SCALE`–:data:`~napari_unet.core.config.MAX_SCALE`
#: by more than this factor are too small (or large) for the model to see: their size
#: is "at the edge". Within it the image is seen at the nearest scale and the objects
#: a little small (or large), which the model still segments: nuclei 7 px wide seen at
#: scale 4 where 4.3 was called for (F1 0.98 on a development image). Not more: the
#: generalist measures the sample shrunk 4× (5 px nuclei, F1 0.89) and shrunk 8× (2.5 px,
#: merged in clumps) alike, 6 px, so a scale 5.2 called for must stay doubtful.
EDGE_MARGIN = 1.25
#: Where the look the estimate trusts is unsure of its objects (:data:`UNSURE_LOOK`)
#: and the width the model's size regression reads from the image
#: (:mod:`~napari_unet.core.prediction.size_model`) calls for a scale more than this
#: factor away, the regression's width sets the scale: it reads 98 % of development
#: images within 2× of their masks' width, and where it agrees with the look within 2×
#: the look is the finer measure (large textured cells cut into pieces or merged at
#: every look: development cytoplasm F1 0.275 → 0.455, membranes 0.395 → 0.661, the other
#: sets the same; benchmarks/RESULTS.md, "The width the encoder reads"). The size is then
#: ``"read"``, which a result states as a caveat (:mod:`~napari_unet.core.prediction.doubt`).
HINT_AGREE = 2.0
#: Elsewhere (a look sure of its objects, or a regression within :data:`HINT_AGREE`),
#: a regression's scale more than this factor from the look's is put to the test: the
#: look's centre crop (cheap), then the whole image, is seen at both scales, and the
#: regression's wins where the network is sure of its objects there (:data:`SURE`) and
#: surer than at the look's by :data:`HINT_SURER`, in both. Crowded small nuclei merged
#: into blobs at every look near the model's size are parted this way (the looks read the
#: blobs, the regression the nuclei); a look whose objects the network is as sure of
#: keeps its scale, and so does an image whose objects it is sure of at neither (smooth
#: noise would read as a thousand objects). Development images (benchmarks/RESULTS.md,
#: "Crowded nuclei seen where the network is surest"): crowded 18 px nuclei 0.824 →
#: 0.865, no development image lower.
HINT_DOUBT = 1.6
#: See :data:`HINT_DOUBT`. Development images the regression's scale would have broken
#: gained 0.03–0.09 in sure share there (whole images), those it mended 0.07–0.18.
HINT_SURER = 0.05


def look_crop(shape: tuple[int, ...], factor: float) -> tuple[slice, slice]:
    """The centre crop (in the image's own pixels) a look at ``factor`` sees of an image
    of ``shape``: at most :data:`LOOK_CROP` px per side once rescaled, :data:`FINE_CROP`
    at scale 1 and finer."""
    side = int((LOOK_CROP if factor < 1 else FINE_CROP) / factor)
    h, w = shape[:2]
    ch, cw = min(h, side), min(w, side)
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    return slice(y0, y0 + ch), slice(x0, x0 + cw)


def handled(factor: float, diameter: float, model_diameter: float) -> bool:
    """Whether a look at ``factor`` that measures objects ``diameter`` px wide (in the
    image's own pixels) sees them at a size the model handles: between half and
    :data:`CONSISTENT` times its own (the finest look often sees small objects a little
    smaller than they are)."""
    return 0.5 <= diameter * factor / model_diameter <= CONSISTENT


def sure_share(prob: np.ndarray, region: np.ndarray) -> float:
    """How sure a look's class probabilities ``prob`` are of the objects in the
    ``region`` it measures: the share of that region whose interior probability passes
    :data:`SURE_PROBABILITY` (0 where the region is empty)."""
    if not region.any():
        return 0.0
    interior, _ = interior_and_boundary(prob)
    return float(np.mean(interior[region] > SURE_PROBABILITY))


def sure_of(prob: np.ndarray, region: np.ndarray) -> bool:
    """Whether a look's class probabilities ``prob`` are sure of the objects in the
    ``region`` it measures (:data:`SURE`)."""
    return sure_share(prob, region) >= SURE


def choose_look(
    looks: list[tuple[float, float | None]],
    model_diameter: float,
    sure: list[float] | None = None,
) -> tuple[float, float]:
    """The look ``(factor, diameter)`` (coarsest first; ``diameter`` in the image's own
    pixels, ``None`` where nothing was seen) whose width the estimate trusts.

    ``sure``: for each look, how sure the network is of the objects it measured
    (:func:`sure_share`; ``True``/``False`` read as sure or not). A look is sure at
    :data:`SURE`. When a look that sees objects at a size the model handles is sure,
    the unsure looks count as having seen nothing: a field of small objects merged into
    blobs at the coarse looks neither wins nor confirms another look. (How sure the
    network is does not part large cells cut into pieces at the fine looks from small
    objects merged at the coarse ones where no look is sure: benchmarks/RESULTS.md,
    "Large nuclei seen at their masks' width".) Then:

    1. Of the *confirmed* looks (a neighbouring look measures the same width in the
       image, within :data:`AGREE`) that see objects between 1/:data:`CONSISTENT` and
       :data:`CONSISTENT` times the model's size: the closest to it, and of those within
       :data:`TIE` of the closest, the coarsest. A model shown objects larger than it
       knows cuts them into pieces of the size it knows, which look right at every finer
       scale: the coarsest agreeing look avoids that.
    2. Else, of the looks that see objects between half and :data:`CONSISTENT` times the
       model's size, the finest: a model trained on many sizes (the
       generalist) sees clusters of small objects as blobs of a size it knows at coarse
       scales, never confirmed by the next finer look, which sees the objects themselves.
    3. Else the look closest to the model's size (the coarsest of the near-best).
    """

    def error(fd):
        return abs(math.log(fd[1] * fd[0] / model_diameter))

    if sure is not None and any(
        s >= SURE and fd[1] and handled(*fd, model_diameter) for fd, s in zip(looks, sure)
    ):
        looks = [fd if s >= SURE else (fd[0], None) for fd, s in zip(looks, sure)]
    seen = [(i, fd) for i, fd in enumerate(looks) if fd[1]]
    band = [(i, fd) for i, fd in seen if error(fd) <= math.log(CONSISTENT)]
    confirmed = [fd for i, fd in band if confirmed_at(looks, i)]
    wide = [fd for _, fd in seen if handled(*fd, model_diameter)]
    if confirmed:
        pool = confirmed
    elif wide:
        return coarser_than_pieces(looks, max(wide, key=lambda fd: fd[0]), model_diameter, sure)
    else:
        pool = [fd for _, fd in seen]
    best = min(error(fd) for fd in pool)
    return min((fd for fd in pool if error(fd) <= best + TIE), key=lambda fd: fd[0])


def coarser_than_pieces(
    looks: list[tuple[float, float | None]],
    chosen: tuple[float, float],
    model_diameter: float,
    sure: list[float] | None,
) -> tuple[float, float]:
    """``chosen`` (the finest look that sees objects of a size the model handles), or a
    coarser look where the finer one sees pieces of the model's own size: a model shown
    objects larger than it knows cuts them into pieces of the size it knows, so from one
    look to the next finer the objects keep their width at the model's scale (within
    :data:`AGREE`, as neighbouring looks that agree keep their width in the image) and
    their width in the image halves. Small objects merged into blobs
    at a coarse look do not do that: the finer look sees them smaller than the model's
    size. A step to the coarser look is taken only where that look is sure of its
    objects and sees them at a size the model handles, and the finer one sees objects
    at least about the model's size (within :data:`AGREE`)."""
    if sure is None:
        return chosen
    i = looks.index(chosen)
    while i > 0:
        (f, d), (fc, dc) = looks[i], looks[i - 1]
        if not (dc and sure[i - 1] >= SURE and handled(fc, dc, model_diameter)):
            break
        fine, coarse = d * f, dc * fc  # widths at the model's scale
        if fine < model_diameter / AGREE or abs(math.log(fine / coarse)) > math.log(AGREE):
            break
        i -= 1
    return looks[i]


def confirmed_at(looks: list[tuple[float, float | None]], i: int) -> bool:
    """Whether a neighbour of look ``i`` measures the same width in the image (within
    :data:`AGREE`)."""
    d = looks[i][1]
    for j in (i - 1, i + 1):
        if 0 <= j < len(looks) and d and looks[j][1]:
            if abs(math.log(d / looks[j][1])) <= math.log(AGREE):
                return True
    return False


def estimate_scale(
    scores_at: Callable[..., np.ndarray],
    shape: tuple[int, int],
    model_diameter: float,
    threshold: float = 0.5,
    found: dict | None = None,
    prior: float | None = None,
    measure: str | None = None,
    mask_diameter: float | None = None,
    hint: Callable[[], float | None] | None = None,
) -> tuple[float, float | None]:
    """The factor that brings an image's objects to ``model_diameter``.

    ``scores_at(factor, crop)`` returns the network's class probabilities for the
    ``crop`` of the image (in original pixels) resized by ``factor``; the crop
    :data:`WHOLE` is the whole image seen as the prediction sees it (``Predictor.scorer``
    keeps that pass, so a prediction at the chosen scale reuses it). The network first looks at a
    centre crop of the image (at most :data:`LOOK_CROP` px per side once rescaled,
    :data:`FINE_CROP` at scale 1 and finer, and at least :data:`ROOM` model object widths)
    at a few scales (:data:`PROBE_SCALES`), coarsest first, and the object width is
    measured in each look. The looks stop once two neighbouring looks measure the same
    width in the image (:data:`AGREE`) and one of them sees objects within :data:`CLOSE`
    of the model's own size and is sure of them (:func:`sure_of`); :func:`choose_look`
    then picks the look to trust (a
    confirmed look near the model's size, the coarsest of the near-best, since a model
    shown objects larger than it knows cuts them into pieces of the size it knows; a
    blob of small objects seen at a coarse scale is never confirmed). When that look
    suggests another scale, the whole image is seen at that scale (the prediction
    itself), and its objects refine the answer: only when they call for a scale more
    than :data:`REFINE_TOLERANCE` (:data:`REFINE_TOLERANCE_ENLARGED` for an enlarged
    image) away is the image seen once more (coarse looks tend to
    read objects a little wider).

    ``prior``: a scale to look at first (a fine-tuned model's
    :attr:`~napari_unet.core.network.metadata.ModelMetadata.taught_scale`, the scale of
    the user's images it learned from); when that look sees objects within :data:`TAUGHT`
    of the model's size, that scale is the answer.

    ``measure``: the model's width measure
    (:data:`~napari_unet.core.config.WIDTH_MEASURES`; each look measures the region
    :func:`measured_region` gives).

    ``mask_diameter``: the width the model's masks had at its scale, where narrower than
    ``model_diameter`` (the generalist's 24.8 px against the 31.2 px it reads). An image
    to be shrunk is shrunk further, to that width, where the network is at least as sure
    of its objects there (:func:`sure_share` of the whole image at both scales; RESULTS,
    "Large nuclei seen at their masks' width").

    ``hint``: ``hint() -> width`` (px in the image, as masks measure it, or ``None``),
    the width the model's size regression reads from the image
    (:meth:`Predictor.size_hint <napari_unet.core.prediction.predictor.Predictor.size_hint>`),
    asked for once the looks are made. Where the look trusted is unsure of its objects
    and the hint calls for a scale more than :data:`HINT_AGREE` away from that look's,
    the image is seen at the scale it calls for, and the size is ``"read"``. Elsewhere,
    where it calls for a scale more than :data:`HINT_DOUBT` away, the image is seen at
    both scales (the look's centre crop, then, where that agrees, the whole image), and
    the hint's scale is taken where the network is sure of its objects there
    (:data:`SURE`) and surer than at the look's by :data:`HINT_SURER`, in both (the size
    is then ``"measured"``).

    ``found``, when given, is told how sure the answer is: ``found["size"]`` is
    ``"measured"`` (a trusted look), ``"read"`` (from the look of the image: ``hint``),
    ``"unclear"`` (objects were seen, never at a size the
    model handles, or the look trusted is unsure of its objects: :data:`UNSURE_LOOK`),
    ``"edge"`` (the width calls for a scale beyond
    :data:`~napari_unet.core.config.MIN_SCALE`–:data:`~napari_unet.core.config.MAX_SCALE`
    by more than :data:`EDGE_MARGIN`)
    or ``"none"`` (no look saw an object); :mod:`~napari_unet.core.prediction.doubt`
    reads it.

    Returns
    -------
    factor, diameter
        The scale factor (1 when no object was found) and the measured object width in
        the image's own pixels (``None`` when no object was found).
    """
    found = {} if found is None else found
    h, w = shape[:2]

    def fits(factor: float, whole: bool = False, room: float = ROOM) -> bool:
        # enough room for a few objects of the model's size to measure them
        ys, xs = look_crop(shape, factor)
        side = min(h, w) if whole else min(ys.stop - ys.start, xs.stop - xs.start)
        return side * factor >= max(16.0, room * model_diameter)

    sure: list[float] = []  # of each look in turn (sure_share)

    def look(factor: float, whole: bool = False, room: float = ROOM) -> float | None:
        if not fits(factor, whole, room):
            return None
        prob = scores_at(factor, WHOLE if whole else look_crop(shape, factor))
        region = measured_region(prob, threshold, measure)
        sure.append(sure_share(prob, region))
        d = region_width(region, measure)
        return None if d is None else d / factor  # in the image's own pixels

    def share_at(factor: float, whole: bool = True) -> float | None:
        # how sure the network is of the whole image (or the look's centre crop) seen at
        # ``factor`` (None: too small to look at)
        n = len(sure)
        look(factor, whole=whole)
        return sure[-1] if len(sure) > n else None

    def error(factor: float, d: float) -> float:
        return abs(math.log(d * factor / model_diameter))

    def near(a: float, b: float) -> bool:
        return abs(math.log(a / b)) < math.log1p(SCALE_TOLERANCE)

    def close(fd: tuple[float, float | None]) -> bool:
        return fd[1] is not None and error(*fd) <= math.log(CLOSE)

    if prior:
        # the user's own scale shows objects near the model's size: images of one
        # experiment hold objects of one size, so that scale is kept as it is (a dim plane
        # or a crowded field measures a little thin or wide there, and a look elsewhere
        # is no surer)
        d = look(prior, room=TAUGHT_ROOM)
        if d is None and not fits(prior, room=TAUGHT_ROOM):
            # its own width is more than the centre crop holds (packed cells it parts by
            # their faint borders, and measures as one region, as it did on the whole
            # plane it learned from): the whole image at that scale, the very pass the
            # prediction then reuses
            d = look(prior, whole=True, room=TAUGHT_ROOM)
        if d is not None and error(prior, d) <= math.log(TAUGHT):
            found["size"] = "measured"
            return prior, model_diameter / prior
    sure.clear()  # the walk's looks only (each fits, so each records whether it is sure)
    looks: list[tuple[float, float | None]] = []
    for probe in PROBE_SCALES:
        if not fits(probe):
            continue  # too small a look: not a neighbour of the others
        looks.append((probe, look(probe)))
        # objects seen at the model's own size and sure of them, and the same width at
        # the neighbouring scale (not a blob of small objects): no finer look can do better
        k = len(looks) - 1
        if k >= 1 and confirmed_at(looks, k):
            if any(close(looks[i]) and sure[i] >= SURE for i in (k - 1, k)):
                break
    if not any(d for _, d in looks):
        found["size"] = "none"
        return 1.0, None
    f, d = choose_look(looks, model_diameter, sure)
    found["size"] = "measured" if handled(f, d, model_diameter) else "unclear"
    unsure = sure[looks.index((f, d))] < UNSURE_LOOK  # the size read from an unsure look
    factor = clip_scale(model_diameter / d)  # the scale the look trusted calls for
    width = hint() if hint is not None else None
    if width:
        hinted = clip_scale(given_scale(width, model_diameter, mask_diameter))
        apart = abs(math.log(hinted * d / model_diameter))
        if unsure and apart > math.log(HINT_AGREE):
            # the network is sure of no look: what the encoder sees sets the scale (the
            # network's own reading of it would bring back the look: no refinement)
            found["size"] = "read"
            return hinted, model_diameter / hinted
        if apart > math.log(HINT_DOUBT):
            # the look and the regression disagree: the scale the network is surer of,
            # on the look's centre crop first (cheap), then on the whole image (both
            # whole passes stay with the scorer, so the prediction at either scale
            # reuses its own)
            def surer(whole: bool) -> bool:
                here = share_at(factor, whole)
                there = share_at(hinted, whole) if here is not None else None
                return there is not None and there >= max(SURE, here + HINT_SURER)

            if surer(whole=False) and surer(whole=True):
                found["size"] = "measured"
                return hinted, model_diameter / hinted
    # objects within SCALE_TOLERANCE of the model's size are seen as they are: nothing
    # to refine (a look at another scale said so)
    chosen_share = None  # how sure the network is of the whole image at the scale chosen
    if factor != 1.0 and not near(factor, f):
        n = len(sure)
        d2 = look(factor, whole=True)
        chosen_share = sure[-1] if len(sure) > n else None
        if d2 is not None and error(factor, d2) <= error(f, d):
            d = d2
            if handled(factor, d2, model_diameter):
                # the prediction itself sees its objects at a size the model handles (objects
                # too small for the finest look to see them so, brought to the largest scale)
                found["size"] = "measured"
            refined = clip_scale(model_diameter / d2)
            tolerance = REFINE_TOLERANCE_ENLARGED if factor > 1 else REFINE_TOLERANCE
            if abs(math.log(refined / factor)) > math.log1p(tolerance):
                factor = refined
    if factor < 1.0 and mask_diameter and mask_diameter < model_diameter:
        # a shrunk image at its masks' width, where the network is at least as sure of
        # its objects there: large textured nuclei are cut less (at their waists, at dark
        # spots); where thin outlines fade, the network is less sure, and the scale stays
        # (against the pass that refined the scale, when one was made: a refined scale
        # moves by a few percent, and its own pass is then made only if still needed)
        smaller = clip_scale(factor * mask_diameter / model_diameter)
        if smaller < factor:
            here = share_at(factor) if chosen_share is None else chosen_share
            there = share_at(smaller) if here is not None else None
            if there is not None and there >= here:
                factor = smaller
    if unsure:
        found["size"] = "unclear"
    if not MIN_SCALE / EDGE_MARGIN <= model_diameter / d <= MAX_SCALE * EDGE_MARGIN:
        found["size"] = "edge"
    return factor, d
