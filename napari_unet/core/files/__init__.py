"""Files: reading the images a person points at (``images``), everything written and the
rules outputs follow (``outputs``), OME-Zarr outputs (``ome_zarr``), training-set folders
(``training_sets``) and bioimage.io packages (``bioimageio``)."""
