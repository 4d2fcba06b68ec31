"""What a network learns about its own output after a training run, kept in its
metadata so that prediction repeats it: the object width it measures at its own scale
(:func:`calibrate_diameter`, the ``object_diameter`` that :class:`~napari_unet.core.
prediction.predictor.Predictor` brings images to) and the post-processing settings that suit the
training annotation (:func:`tune_postprocessing`).

numpy and scipy; the network is handed in (its scores on the training planes too).
"""

from __future__ import annotations

import numpy as np


def calibrate_diameter(
    net,
    scores: list[np.ndarray],
    planes: list,
    known: list[float],
    masks: list[float] | None = None,
) -> None:
    """Record the object width ``net`` measures on its own training planes, and the
    width their masks measure (``masks``: the planes' mask or annotation widths at the
    model's scale, :attr:`~napari_unet.core.network.metadata.ModelMetadata.mask_diameter`).

    Prediction brings an image to the scale where the network *measures* objects of
    :attr:`~napari_unet.core.network.unet.UNet.object_diameter`, so that width must be in the
    network's own measure: a network that draws objects a little thin measures them
    thin on new images too. The training planes are at the model's scale (or, for a
    new network, at the scale it learned), so what it measures there is the width to
    aim for. Without a measurement, a new network falls back on the widths of its
    masks (``known``).

    On an annotation only the predicted regions that hold annotated object pixels
    are measured: after a few corrections the network may still scatter small
    false detections over the unpainted rest of the image, which say nothing about
    the width of the objects it was taught.
    """
    from scipy import ndimage as ndi

    from ..prediction.object_size import measured_region, region_width

    th = net.postprocessing.threshold
    seen = []
    for s, p in zip(scores, planes):
        fg = measured_region(s, th, net.metadata.width_measure)
        if p.kind == "annotation":
            regions, _ = ndi.label(fg)
            taught = np.unique(regions[(np.asarray(p.annotation) >= 2) & fg])
            fg = np.isin(regions, taught[taught > 0])
        d = region_width(fg, net.metadata.width_measure)
        if d:
            seen.append(d)
    if seen:
        net.metadata.object_diameter = round(float(np.median(seen)), 2)
    elif known and not net.object_diameter:
        net.metadata.object_diameter = round(float(np.median(known)), 2)
    if masks:
        net.metadata.mask_diameter = round(float(np.median(masks)), 2)


def tune_postprocessing(net, planes: list, scores: list[np.ndarray]) -> dict | None:
    """Choose and keep (in ``net``'s metadata) the post-processing that suits the
    training annotation; returns the search's record, ``None`` with too few objects
    to judge by. The settings are judged without the specks rule that prediction adds
    (:func:`~napari_unet.core.prediction.instances.with_specks`): judged with it, the
    search chose lower thresholds on one image that did worse on the others
    (benchmarks/RESULTS.md, "A large cell's taught scale kept")."""
    from ..prediction.instances import search_postprocessing

    found = search_postprocessing(
        scores,
        [np.asarray(p.labels) for p in planes],
        [p.kind for p in planes],
        net.postprocessing,
    )
    if found.n_objects < 3:
        return None  # too few objects to judge by
    net.metadata.postprocessing = found.params.to_dict()
    return found.to_dict()
