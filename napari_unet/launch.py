"""Open napari with the napari-unet widgets docked and the sample nuclei image.

python -m napari_unet.launch                 # the sample image
python -m napari_unet.launch IMAGE [IMAGE…]  # your images (or a training-set folder)
"""

from __future__ import annotations

import argparse


def make_viewer(paths: list[str] | None = None, sample: bool = True):
    """A viewer with the U-Net dock, showing ``paths`` or else the sample image."""
    import napari

    from napari_unet._quiet import quiet_developer_notices

    quiet_developer_notices()
    viewer = napari.Viewer(title="napari-unet")
    if paths:
        for path in paths:
            viewer.open(path)
    elif sample:
        viewer.open_sample("napari-unet", "nuclei")
        viewer.layers.selection.active = viewer.layers["nuclei"]
    viewer.window.add_plugin_dock_widget("napari-unet", "U-Net")
    return viewer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m napari_unet.launch",
        description="napari with the napari-unet widgets docked",
    )
    parser.add_argument("paths", nargs="*", help="images or a training-set folder to open")
    parser.add_argument("--no-sample", action="store_true", help="start with an empty viewer")
    args = parser.parse_args(argv)

    # napari warns at every start under PyQt5, the binding napari-unet installs by design
    # (the README says how to run under PyQt6): nothing a microscopist can act on
    from napari_unet._quiet import quiet_developer_notices

    quiet_developer_notices()
    import napari

    make_viewer(args.paths, sample=not args.no_sample)
    napari.run()


if __name__ == "__main__":
    main()
