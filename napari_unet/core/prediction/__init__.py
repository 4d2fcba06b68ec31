"""Prediction, one path for every image: the :class:`Predictor
<napari_unet.core.prediction.predictor.Predictor>` (normalisation, object scale, tiles,
post-processing), overlap-tile inference (``tiling``), object size (``object_size``),
probabilities to instances (``instances``), and for images too big for memory the dask
block graph that calls the same Predictor per block (``blockwise``, ``block_grid``,
``model_ref``, ``cluster``)."""
