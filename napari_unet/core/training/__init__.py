"""Training: the two label kinds and their targets (``targets``), samples, the validation
split and patch sampling (``samples``), losses, the loop (``loop``), one training run of a
network (``run``), pairs from huge on-disk annotations (``huge_annotations``), the
before/after comparison (``comparison``) and what a run calibrates afterwards
(``calibration``: object diameter, post-processing)."""
