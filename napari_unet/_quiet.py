"""Keep the viewer and the terminal quiet about what only a developer can change.

napari announces, in a notification at the first window shown and on the terminal,
that its support of PyQt5 (the binding napari-unet installs) will end. A microscopist
cannot act on that, so napari-unet silences exactly those two notices, and nothing
else, where it starts napari (``python -m napari_unet.launch``) or is loaded as a plugin.
"""

from __future__ import annotations

import warnings

#: The start of napari's terminal warning about the theme detection under Qt5.
QT5_THEME_WARNING = "System theme detection requires a Qt6"


def quiet_developer_notices() -> None:
    """Silence napari's PyQt5 deprecation notices (idempotent; other warnings stay)."""
    warnings.filterwarnings("ignore", message=QT5_THEME_WARNING)
    try:
        from napari._qt import qt_main_window
    except ImportError:  # no Qt: nothing is shown anyway
        return
    # napari has no public switch for this one-off toast: its module flag is the only way
    if getattr(qt_main_window, "SHOW_QT_WARNING", False):
        qt_main_window.SHOW_QT_WARNING = False
