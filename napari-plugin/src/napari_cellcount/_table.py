"""The counts table: one dock per viewer, one row per counted plane, exported as CSV."""
from __future__ import annotations

import csv
import weakref
from pathlib import Path
from typing import Any

from napari.utils.notifications import show_error, show_info
from qtpy.QtWidgets import (QAbstractItemView, QFileDialog, QHBoxLayout, QPushButton, QTableWidget,
                            QTableWidgetItem, QVBoxLayout, QWidget)

BASE_COLUMNS = ["image", "plane", "count", "points", "model", "method", "region", "exemplars", "area",
                "cells per unit2", "pixel width", "pixel height", "unit", "path", "device", "precision",
                "seconds", "warnings"]  # warnings: the plane's out-of-domain warnings (issue 24), "; "-joined
# A row is a measurement of one plane of one image file with one model in one region: counting it again
# replaces that row (issue 21: recounts piled up duplicates). Choice: the model and region are part of the
# key, so the same plane counted with two models (or in two regions) gives two rows to compare.
KEY_COLUMNS = ("image", "path", "plane", "model", "region")


class CountsTable(QWidget):
    """Rows are dicts; `rows` holds the exact values (the CSV writes them), the view shows them rounded."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.rows: list[dict[str, Any]] = []
        self.columns: list[str] = list(BASE_COLUMNS)
        self.view = QTableWidget(0, len(self.columns))
        self.view.setHorizontalHeaderLabels(self.columns)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.export_button = QPushButton("Export CSV…")
        self.export_button.clicked.connect(self._export_dialog)
        self.clear_button = QPushButton("Clear")
        self.clear_button.clicked.connect(self.clear)
        buttons = QHBoxLayout()
        buttons.addWidget(self.export_button)
        buttons.addWidget(self.clear_button)
        buttons.addStretch(1)
        lay = QVBoxLayout(self)
        lay.addWidget(self.view)
        lay.addLayout(buttons)

    def add_rows(self, rows: list[dict[str, Any]]) -> None:
        """Adds rows; a row with the key (KEY_COLUMNS) of an existing one replaces it where it is."""
        for row in rows:
            for k in row:
                if k not in self.columns:
                    self.columns.insert(self.columns.index("area"), k)  # per-class counts after the counts
            key = tuple(row.get(c, "") for c in KEY_COLUMNS)
            at = next((i for i, r in enumerate(self.rows) if tuple(r.get(c, "") for c in KEY_COLUMNS) == key), None)
            if at is None:
                self.rows.append(dict(row))
            else:
                self.rows[at] = dict(row)
        self._refresh()

    def rows_of(self, path: str) -> list[dict[str, Any]]:
        return [r for r in self.rows if r.get("path") == path]

    def clear(self) -> None:
        self.rows.clear()
        self.columns = list(BASE_COLUMNS)
        self._refresh()

    def _refresh(self) -> None:
        self.view.setColumnCount(len(self.columns))
        self.view.setHorizontalHeaderLabels(self.columns)
        self.view.setRowCount(len(self.rows))
        for i, row in enumerate(self.rows):
            for j, c in enumerate(self.columns):
                v = row.get(c, "")
                text = f"{v:.2f}" if isinstance(v, float) else str(v)
                self.view.setItem(i, j, QTableWidgetItem(text))
        self.view.resizeColumnsToContents()
        if self.rows:
            self.view.scrollToBottom()

    def export_csv(self, path: str | Path, overwrite: bool = False, rows: list[dict[str, Any]] | None = None) -> Path:
        """Writes every row (or `rows`) with full precision. An existing file is replaced only with
        overwrite=True."""
        path = Path(path)
        if path.exists() and not overwrite:
            raise FileExistsError(f"'{path}' exists; not overwritten")
        with path.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.columns, extrasaction="ignore")
            w.writeheader()
            for row in self.rows if rows is None else rows:
                w.writerow({c: (repr(v) if isinstance(v, float) else v) for c, v in row.items()})
        return path

    def _export_dialog(self) -> None:
        if not self.rows:
            show_info("cellcount: the counts table is empty")
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export counts", "counts.csv", "CSV files (*.csv)")
        if not path:
            return
        try:
            # the dialog already asked before replacing an existing file
            show_info(f"cellcount: wrote {self.export_csv(path, overwrite=True)}")
        except OSError as e:
            show_error(f"cellcount: could not write '{path}': {e}")


_tables: "weakref.WeakKeyDictionary[Any, CountsTable]" = weakref.WeakKeyDictionary()


def table_for(viewer: Any, show: bool = True) -> CountsTable:
    """The viewer's counts table, docked on first use."""
    key = getattr(viewer, "__wrapped__", viewer)  # napari hands plugins a PublicOnlyProxy of the viewer
    t = _tables.get(key)
    if t is None:
        t = CountsTable()
        _tables[key] = t
        viewer.window.add_dock_widget(t, name="cellcount: counts", area="bottom")
    elif show:
        dock = t.parentWidget()
        if dock is not None and not dock.isVisible():
            dock.show()
    return t
