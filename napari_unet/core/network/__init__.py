"""The network and its file: the U-Net's architecture (``architecture``), the fused
kernels it computes with (``fused_kernels``), :class:`~napari_unet.core.network.unet.UNet`
(build, load, save, widen; hands prediction to the Predictor and training to
``training.run``) and the ``.keras`` file with its metadata (``model_file``)."""
