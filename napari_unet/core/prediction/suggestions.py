"""What to correct next: the objects (and the places) where a prediction is most likely
wrong, most doubtful first, each with a short reason in plain words.

A person who checks a segmentation of hundreds of objects looks for the few that are
wrong; the model can point at them from what it already computed. Every cue below is a
few passes of NumPy/SciPy over the class probabilities and the labels of one prediction
(no extra network pass), so it runs with every Segment:

``"background"``
    The object's pixels are, on average, barely above the foreground threshold: it may
    be background (a speck, a fold, a faint out-of-focus blob).
``"split"``
    Two objects meet along a long contact where the network saw no boundary: the
    post-processing had to guess the cut (a distance seed), and the two may be one.
``"merge"``
    Within one object, the confident cores break into two or more at a slightly stricter
    core threshold: a small change of the setting would split it; it may be two objects
    stuck together.
``"large"`` / ``"small"``
    Much larger (or smaller) than the image's typical object: often a merge of several, a
    piece of one, or debris (an object cut by the image's edge is never "small").
``"missed"``
    A region the network found faintly object-like (well above the background, below the
    threshold), as thick as a real object, that became no object: a likely miss
    (``label`` 0).

Each cue gives a doubt in [0, 1]; an object's score is ``1 − Π(1 − d)`` over its cues (two
weak signs weigh more than one) and its reason is its strongest cue's. The cues work in
2-D and on a volume (a z step counts ``z_scale`` pixels); boxes cover every axis of the
labels (``[y0, x0, y1, x1]`` for a plane, ``[z0, y0, x0, z1, y1, x1]`` for a volume,
stops exclusive).

:class:`Worklist` keeps the list against a user's annotation: an entry whose region the
user changed is *corrected* and drops out.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: The reasons, as a person reads them (the JSON ``reason`` field and the widget's line).
REASONS = {
    "background": "uncertain: might be background",
    "split": "faint boundary between two objects: might be one",
    "merge": "might be two objects stuck together",
    "large": "much larger than the others",
    "small": "much smaller than the others",
    "missed": "faint: might be an object the model left out",
}

#: An object whose mean foreground probability is this high is sure of being one; its
#: "background" doubt grows as the mean falls to the threshold.
SURE_OBJECT = 0.9
#: A contact whose mean boundary probability is this high was seen by the network (0.2:
#: tuned on the development split of benchmarks/suggestions.py, where 0.35 flagged many
#: contacts the network had split right).
SEEN_BOUNDARY = 0.2
#: A contact as long as this share of the smaller object's width is a long one.
LONG_CONTACT = 0.5
#: Core thresholds tried above the post-processing's own (their doubts) for the merges.
STRICTER_CORES = ((0.1, 0.8), (0.2, 0.5))
#: Sizes against the typical object's (the median) where the size doubts start and where
#: they are full: larger from 2.5× to 6×, smaller from 1/4 to 1/12.
LARGE_FROM, LARGE_FULL = 2.5, 6.0
SMALL_FROM, SMALL_FULL = 1 / 4, 1 / 12
#: Fewer objects than this give no typical size (no size doubts).
MIN_OBJECTS_FOR_SIZE = 5
#: A likely-missed region is object-like above this share of the threshold.
MISSED_LOW = 0.4
#: Entries below this score are not suggested (a good image gets a short list).
MIN_SCORE = 0.25


@dataclass(frozen=True)
class Suggestion:
    """One place to check: an object (``label`` > 0) or a likely-missed one (``label`` 0).

    ``bbox`` is ``starts + stops`` over the labels' axes (stops exclusive), ``score`` in
    [0, 1] (higher: more likely wrong), ``reason`` one of :data:`REASONS`' phrases, ``cue``
    its key.
    """

    bbox: tuple[int, ...]
    score: float
    reason: str
    label: int
    cue: str = ""

    @property
    def slices(self) -> tuple[slice, ...]:
        n = len(self.bbox) // 2
        return tuple(slice(a, b) for a, b in zip(self.bbox[:n], self.bbox[n:]))

    @property
    def center(self) -> tuple[float, ...]:
        n = len(self.bbox) // 2
        return tuple((a + b - 1) / 2 for a, b in zip(self.bbox[:n], self.bbox[n:]))

    def to_dict(self) -> dict:
        """The JSON entry: ``{"bbox", "score", "reason", "label"}``."""
        return {
            "bbox": [int(v) for v in self.bbox],
            "score": round(float(self.score), 4),
            "reason": self.reason,
            "label": int(self.label),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Suggestion:
        cue = next((k for k, v in REASONS.items() if v == d.get("reason")), "")
        return cls(
            tuple(int(v) for v in d["bbox"]), float(d["score"]), d["reason"], int(d["label"]), cue
        )


def _cross(ndim: int) -> np.ndarray:
    from scipy import ndimage as ndi

    return ndi.generate_binary_structure(ndim, 1)


def object_doubts(
    prob: np.ndarray,
    labels: np.ndarray,
    threshold: float = 0.5,
    core_threshold: float = 0.7,
    min_size: int = 10,
    z_scale: float = 1.0,
) -> tuple[np.ndarray, dict[str, np.ndarray], list[Suggestion]]:
    """The doubts of every object of one plane or volume.

    ``prob`` is ``(…, C)`` class probabilities ``[bg, classes…, boundary]`` on the labels'
    grid, ``labels`` the instances made from them with ``threshold``/``core_threshold``.
    Returns ``(score, cues, missed)``: the score of every id (``score[0]`` is 0), each
    cue's doubt per id, and the likely-missed regions as suggestions.
    """
    from scipy import ndimage as ndi

    labels = np.asarray(labels)
    from .instances import foreground_probability, interior_and_boundary

    fg = foreground_probability(prob)
    interior, boundary = interior_and_boundary(prob)
    n = int(labels.max(initial=0))
    flat = labels.ravel()
    area = np.bincount(flat, minlength=n + 1).astype(np.float64)
    safe = np.maximum(area, 1.0)
    cues: dict[str, np.ndarray] = {}
    ndim = labels.ndim
    # the voxel's volume in pixels: sizes compare as areas in a plane, volumes in 3-D
    voxel = float(z_scale) if ndim == 3 else 1.0

    # -- barely object
    mean_fg = np.bincount(flat, fg.ravel(), minlength=n + 1) / safe
    span = max(SURE_OBJECT - threshold, 1e-3)
    cues["background"] = np.clip((SURE_OBJECT - mean_fg) / span, 0.0, 1.0)

    # -- the typical size
    kept = area[1:][area[1:] > 0]
    typical = float(np.median(kept)) if kept.size else 0.0
    sizes = kept.size >= MIN_OBJECTS_FOR_SIZE and typical > 0
    width = (typical * voxel) ** (1.0 / ndim) if typical > 0 else 0.0  # ~ an object's width

    # -- contacts without a boundary (guessed splits)
    split = np.zeros(n + 1)
    if n > 1:
        keys, bsum = [], []
        for ax in range(ndim):
            a = np.moveaxis(labels, ax, 0)
            lo, hi = a[:-1], a[1:]
            touch = (lo > 0) & (hi > 0) & (lo != hi)
            if not touch.any():
                continue
            b = np.moveaxis(boundary, ax, 0)
            la, lb = lo[touch].astype(np.int64), hi[touch].astype(np.int64)
            keys.append(np.minimum(la, lb) * (n + 1) + np.maximum(la, lb))
            bsum.append((b[:-1][touch] + b[1:][touch]) / 2.0)
        if keys:
            key = np.concatenate(keys)
            pairs, inv = np.unique(key, return_inverse=True)
            length = np.bincount(inv).astype(np.float64)
            mean_b = np.bincount(inv, np.concatenate(bsum)) / length
            a_id, b_id = pairs // (n + 1), pairs % (n + 1)
            smaller = np.minimum(area[a_id], area[b_id])
            # the contact's length against the smaller object's width (its face in 3-D)
            face = np.maximum(smaller ** ((ndim - 1) / ndim), 1.0)
            long = np.clip(length / (LONG_CONTACT * face), 0.0, 1.0)
            faint = np.clip((SEEN_BOUNDARY - mean_b) / SEEN_BOUNDARY, 0.0, 1.0)
            d = faint * long
            np.maximum.at(split, a_id, d)
            np.maximum.at(split, b_id, d)
    cues["split"] = split

    # -- cores that break in two at a stricter threshold (guessed merges)
    merge = np.zeros(n + 1)
    if n:
        least = max(3.0, 0.1 * typical) if typical else 3.0
        for step, doubt in STRICTER_CORES:
            t = min(core_threshold + step, 0.98)
            core = (interior > t) & (interior > boundary) & (labels > 0)
            regions, nr = ndi.label(core, _cross(ndim))
            if nr < 2:
                continue
            rsize = np.bincount(regions.ravel(), minlength=nr + 1)
            big = rsize >= least
            big[0] = False
            at = big[regions] & core
            owner = np.unique(labels[at].astype(np.int64) * (nr + 1) + regions[at])
            count = np.bincount(owner // (nr + 1), minlength=n + 1)
            merge = np.maximum(merge, np.where(count >= 2, doubt, 0.0))
    cues["merge"] = merge

    # -- unusual sizes
    large = np.zeros(n + 1)
    small = np.zeros(n + 1)
    if sizes:
        ratio = area / typical
        with np.errstate(divide="ignore"):
            lr = np.log(np.maximum(ratio, 1e-9))
        large = np.clip((lr - math.log(LARGE_FROM)) / math.log(LARGE_FULL / LARGE_FROM), 0, 1)
        small = np.clip((math.log(SMALL_FROM) - lr) / math.log(SMALL_FROM / SMALL_FULL), 0, 1)
        large[0] = small[0] = 0.0
        # an object cut by the image's edge is small because it is cut, not wrong
        edge = np.zeros(n + 1, bool)
        for ax in range(ndim):
            for end in (0, -1):
                edge[np.take(labels, end, axis=ax).ravel()] = True
        small[edge] = 0.0
    cues["large"], cues["small"] = large, small

    score = 1.0 - np.prod([1.0 - d for d in cues.values()], axis=0)
    score[0] = 0.0
    score[area == 0] = 0.0

    # -- likely misses: thick, faintly object-like regions left unlabelled
    missed: list[Suggestion] = []
    low = MISSED_LOW * threshold
    cand = (fg > low) & (fg <= threshold) & (labels == 0)
    if cand.any():
        comps, nc = ndi.label(cand, _cross(ndim))
        if nc:
            sampling = (float(z_scale), 1.0, 1.0) if ndim == 3 else None
            edt = ndi.distance_transform_edt(cand, sampling=sampling)
            # each region's greatest depth and probability (maximum.at over its pixels:
            # ndi.maximum sorts the whole image, most of the suggestions' time)
            at = comps[cand]
            thick, peak = np.zeros(nc + 1), np.zeros(nc + 1)
            np.maximum.at(thick, at, edt[cand])
            np.maximum.at(peak, at, fg[cand])
            thick, peak = thick[1:], peak[1:]
            csize = np.bincount(comps.ravel(), minlength=nc + 1)[1:]
            need_size = max(float(min_size), 0.25 * typical) if typical else float(min_size)
            need_thick = max(1.5, 0.25 * width) if width else 1.5
            boxes = ndi.find_objects(comps)
            for i in range(nc):
                if csize[i] < need_size or thick[i] < need_thick:
                    continue
                d = float(np.clip((peak[i] - low) / max(threshold - low, 1e-3), 0.0, 1.0))
                if typical:
                    d *= float(min(1.0, csize[i] / (0.5 * typical)))
                box = boxes[i]
                missed.append(
                    Suggestion(
                        tuple(s.start for s in box) + tuple(s.stop for s in box),
                        d,
                        REASONS["missed"],
                        0,
                        "missed",
                    )
                )
    return score, cues, missed


def suggestions_of(
    prob: np.ndarray,
    labels: np.ndarray,
    threshold: float = 0.5,
    core_threshold: float = 0.7,
    min_size: int = 10,
    z_scale: float = 1.0,
    min_score: float = MIN_SCORE,
) -> tuple[list[Suggestion], np.ndarray]:
    """Suggestions for one plane or volume, most doubtful first, and its doubt map.

    The doubt map (``float32``, the labels' shape, 0–1) is the pixel's own uncertainty
    (how near its foreground probability is to the threshold) raised to the score of the
    object or likely-missed region it lies in.
    """
    from scipy import ndimage as ndi

    labels = np.asarray(labels)
    score, cues, missed = object_doubts(prob, labels, threshold, core_threshold, min_size, z_scale)
    out: list[Suggestion] = []
    boxes = ndi.find_objects(labels)
    names = list(cues)
    stack = np.stack([cues[k] for k in names]) if names else None
    for i, box in enumerate(boxes, start=1):
        if box is None or score[i] < min_score:
            continue
        cue = names[int(np.argmax(stack[:, i]))]
        bbox = tuple(s.start for s in box) + tuple(s.stop for s in box)
        out.append(Suggestion(bbox, float(score[i]), REASONS[cue], i, cue))
    out.extend(m for m in missed if m.score >= min_score)
    out = ranked(out)

    fg = 1.0 - prob[..., 0]
    t = float(threshold)
    dmap = 1.0 - np.abs(fg - t) / max(t, 1.0 - t)
    dmap = np.maximum(dmap, score.astype(np.float32)[labels]).astype(np.float32)
    for m in missed:
        if m.score >= min_score:
            region = dmap[m.slices]
            inside = labels[m.slices] == 0
            region[inside] = np.maximum(region[inside], m.score)
    np.clip(dmap, 0.0, 1.0, out=dmap)
    return out, dmap


def shift(suggestions: list[Suggestion], lead: tuple[int, ...], offset: int) -> list[Suggestion]:
    """The suggestions of one plane (or volume) of a stack, in the stack's frame: the
    plane's index ``lead`` before the box, ids shifted by ``offset`` (misses stay 0)."""
    out = []
    for s in suggestions:
        n = len(s.bbox) // 2
        starts = tuple(lead) + s.bbox[:n]
        stops = tuple(i + 1 for i in lead) + s.bbox[n:]
        label = s.label + offset if s.label else 0
        out.append(Suggestion(starts + stops, s.score, s.reason, label, s.cue))
    return out


def ranked(suggestions: list[Suggestion], k: int | None = None) -> list[Suggestion]:
    """Most doubtful first (stable), at most ``k``."""
    out = sorted(suggestions, key=lambda s: (-s.score, s.label == 0, s.label, s.bbox))
    return out if k is None else out[: max(int(k), 0)]


def json_text(suggestions: list[Suggestion], k: int | None = None) -> str:
    """At most ``k`` suggestions, most doubtful first, as the text of a JSON list of
    ``{"bbox", "score", "reason", "label"}`` (what :func:`write_json` writes)."""
    entries = [json.dumps(s.to_dict()) for s in ranked(suggestions, k)]
    return "[\n" + ",\n".join(f" {e}" for e in entries) + ("\n]\n" if entries else "]\n")


def write_json(path, suggestions: list[Suggestion], k: int | None = None) -> Path:
    """Write at most ``k`` suggestions, most doubtful first, as a JSON list of
    ``{"bbox", "score", "reason", "label"}`` (the file must not exist yet)."""
    path = Path(path)
    with open(path, "x", encoding="utf-8") as f:
        f.write(json_text(suggestions, k))
    return path


def read_json(path) -> list[Suggestion]:
    """The suggestions of a ``*_suggestions.json`` file."""
    with open(path, encoding="utf-8") as f:
        return [Suggestion.from_dict(d) for d in json.load(f)]


class Worklist:
    """The suggestions against a user's annotation.

    :meth:`track` remembers the annotation inside every suggestion's box; an entry whose
    box the user changed since (painted, erased, a new object) is corrected and leaves
    :meth:`open`. Navigation keeps a current entry: :meth:`next` / :meth:`previous` step
    through the entries still open, most doubtful first, wrapping around.
    """

    def __init__(self, suggestions: list[Suggestion]) -> None:
        self.suggestions = ranked(suggestions)
        self._snapshots: list[np.ndarray | None] = [None] * len(self.suggestions)
        self.current: int | None = None

    def __len__(self) -> int:
        return len(self.suggestions)

    def track(self, annotation) -> None:
        """Remember the annotation in every box (the state the corrections are seen against)."""
        self._snapshots = [np.array(annotation[s.slices], copy=True) for s in self.suggestions]

    def corrected(self, i: int, annotation) -> bool:
        snap = self._snapshots[i]
        if snap is None:
            return False
        now = np.asarray(annotation[self.suggestions[i].slices])
        return now.shape != snap.shape or not np.array_equal(now, snap)

    def open(self, annotation=None) -> list[int]:
        """Indices of the entries not yet corrected, most doubtful first."""
        if annotation is None:
            return list(range(len(self.suggestions)))
        return [i for i in range(len(self.suggestions)) if not self.corrected(i, annotation)]

    def _step(self, annotation, direction: int) -> Suggestion | None:
        still = self.open(annotation)
        if not still:
            self.current = None
            return None
        if self.current is None:
            i = still[0] if direction > 0 else still[-1]
        elif direction > 0:
            i = next((j for j in still if j > self.current), still[0])
        else:
            i = next((j for j in reversed(still) if j < self.current), still[-1])
        self.current = i
        return self.suggestions[i]

    def next(self, annotation=None) -> Suggestion | None:
        """The next entry still open after the current one (the first at the start)."""
        return self._step(annotation, +1)

    def previous(self, annotation=None) -> Suggestion | None:
        """The entry still open before the current one (the last at the start)."""
        return self._step(annotation, -1)
