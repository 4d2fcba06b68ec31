"""A small loss / validation plot painted with QPainter.

Painting a few hundred points costs well under a millisecond, so the curve can follow
every batch without stalling the GUI thread (a matplotlib redraw costs tens of ms).
"""

from __future__ import annotations

import math

from qtpy.QtCore import QPointF, QRectF, Qt
from qtpy.QtGui import QColor, QFont, QPainter, QPainterPath, QPen
from qtpy.QtWidgets import QSizePolicy, QWidget

SERIES = {
    "batch loss": QColor(150, 150, 150),
    "loss": QColor(70, 160, 255),
    "val loss": QColor(255, 150, 40),
    "val dice": QColor(90, 210, 110),
}


class LossPlot(QWidget):
    """Training curves against the step: loss per batch and per epoch and validation
    loss (left axis, from 0), validation Dice (right axis, 0 to 1)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumHeight(140)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Preferred)
        self.series: dict[str, list[tuple[float, float]]] = {k: [] for k in SERIES}
        self.total_steps = 0

    def clear(self, total_steps: int = 0) -> None:
        for points in self.series.values():
            points.clear()
        self.total_steps = total_steps
        self.update()

    def add(self, name: str, step: float, value: float | None) -> None:
        """Append a point (ignored when ``value`` is missing or not finite)."""
        if value is None or not math.isfinite(value):
            return
        self.series[name].append((float(step), float(value)))
        self.update()  # Qt merges the repaints of one event-loop pass

    # ------------------------------------------------------------------ painting
    def x_max(self) -> float:
        """Right end of the step axis: the planned steps while a run goes (``total_steps``),
        else the last step drawn."""
        last = max((s for pts in self.series.values() for s, _ in pts), default=1)
        return float(max(self.total_steps, last, 1))

    def _y_max(self) -> float:
        """Top of the loss axis (the first noisy batch spikes do not count)."""
        values = [v for name in ("loss", "val loss") for _, v in self.series[name]]
        batch = sorted(v for _, v in self.series["batch loss"])
        if batch:
            values.append(batch[int(0.95 * (len(batch) - 1))])
        top = max(values, default=1.0)
        return top * 1.15 if top > 0 else 1.0

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt API
        p = QPainter(self)
        p.setRenderHint(QPainter.Antialiasing)
        fg = self.palette().color(self.foregroundRole())
        small = QFont(self.font())
        small.setPointSizeF(max(6.0, small.pointSizeF() * 0.85))
        p.setFont(small)
        fm = p.fontMetrics()
        left, right, top, bottom = (
            fm.horizontalAdvance("0.00") + 8,
            fm.horizontalAdvance("1.0") + 8,
            fm.height() + 6,
            fm.height() + 6,
        )
        area = QRectF(left, top, self.width() - left - right, self.height() - top - bottom)
        if area.width() < 20 or area.height() < 20:
            return
        x_max = self.x_max()
        y_max = self._y_max()

        def to_px(step: float, value: float, top: float = y_max) -> QPointF:
            x = area.left() + area.width() * step / x_max
            y = area.bottom() - area.height() * min(max(value, 0.0), top) / top
            return QPointF(x, y)

        axis = QPen(fg)
        axis.setWidthF(1.0)
        p.setPen(axis)
        p.drawLine(area.bottomLeft(), area.bottomRight())
        p.drawLine(area.bottomLeft(), area.topLeft())
        if self.series["val dice"]:  # the right axis belongs to the Dice
            dice_pen = QPen(SERIES["val dice"])
            p.setPen(dice_pen)
            p.drawLine(area.bottomRight(), area.topRight())
            p.drawText(
                QRectF(area.right() + 4, area.top() - fm.height() / 2, right, fm.height()),
                Qt.AlignLeft | Qt.AlignVCenter,
                "1",
            )
            p.setPen(axis)
        p.drawText(
            QRectF(0, area.top() - fm.height() / 2, left - 4, fm.height()),
            Qt.AlignRight | Qt.AlignVCenter,
            f"{y_max:.2g}",
        )
        p.drawText(
            QRectF(0, area.bottom() - fm.height() / 2, left - 4, fm.height()),
            Qt.AlignRight | Qt.AlignVCenter,
            "0",
        )
        p.drawText(
            QRectF(area.left(), area.bottom() + 2, area.width(), fm.height()),
            Qt.AlignRight | Qt.AlignTop,
            f"step {int(x_max)}",
        )
        p.drawText(
            QRectF(area.left(), area.bottom() + 2, area.width(), fm.height()),
            Qt.AlignLeft | Qt.AlignTop,
            "0",
        )

        x = area.left() + 4
        for name, color in SERIES.items():
            pts = self.series[name]
            if not pts:
                continue
            pen = QPen(color)
            pen.setWidthF(1.0 if name == "batch loss" else 2.0)
            p.setPen(pen)
            ceiling = 1.0 if name == "val dice" else y_max
            step = max(1, len(pts) // int(max(1.0, area.width())))
            path = QPainterPath(to_px(*pts[0], ceiling))
            for s, v in pts[step::step]:
                path.lineTo(to_px(s, v, ceiling))
            if len(pts) > 1:
                path.lineTo(to_px(*pts[-1], ceiling))
                p.drawPath(path)
            else:
                p.drawEllipse(to_px(*pts[0], ceiling), 2.5, 2.5)
            # legend along the top
            p.drawLine(QPointF(x, top / 2), QPointF(x + 12, top / 2))
            p.setPen(fg)
            p.drawText(QPointF(x + 15, top / 2 + fm.ascent() / 2 - 1), name)
            x += 15 + fm.horizontalAdvance(name) + 12
        p.end()
