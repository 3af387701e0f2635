"""A form built from the library's field metadata (cellcount.request_options(method, kind)): one labelled
editor per field by its declared type, the declared range on spin boxes, the one-line doc as tooltip, fields
marked "advanced" folded into a collapsible section. No field, default or range is written here: all come
from the library, which checks the same ranges again when the request arrives. Only the fields whose value
differs from the library's default are read back, so the rest keep the library's (or the model's) value."""
from __future__ import annotations

import json
import math
from typing import Any

from qtpy.QtCore import Qt
from qtpy.QtGui import QValidator
from qtpy.QtWidgets import (QAbstractSpinBox, QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout,
                            QHBoxLayout, QLineEdit, QMenu, QSpinBox, QToolButton, QVBoxLayout, QWidget)

from ._layers import InputError

NONE_CHOICE = "(none)"    # how the choice "" shows in a combo box
INT32 = 2 ** 31 - 1       # QSpinBox holds a C int: wider int ranges get a validated line edit


class _NumberBox(QDoubleSpinBox):
    """A spin box for "number" fields: the declared range, values written as short as they are (1e-06, 0.001)
    rather than at a fixed count of decimals, and a step of about a tenth of the value."""

    def __init__(self, lo: float, hi: float):
        super().__init__()
        self.setDecimals(17)  # a display precision, not a domain limit: keeps values like 1e-12 intact
        self.setRange(lo, hi)
        self.setStepType(QAbstractSpinBox.StepType.AdaptiveDecimalStepType)

    def textFromValue(self, v: float) -> str:
        return f"{v:.12g}"

    def valueFromText(self, text: str) -> float:
        try:
            return float(text)
        except ValueError:
            return self.value()

    def validate(self, text: str, pos: int) -> Any:
        t = text.strip()
        if t in ("", "-", "+", ".", "-.") or t.lower().endswith(("e", "e-", "e+")):
            return QValidator.State.Intermediate, text, pos
        try:
            v = float(t)
        except ValueError:
            return QValidator.State.Invalid, text, pos
        if not math.isfinite(v):
            return QValidator.State.Invalid, text, pos
        if self.minimum() <= v <= self.maximum():
            return QValidator.State.Acceptable, text, pos
        # past the range where more digits cannot bring it back (50 when the maximum is 10): the key is refused;
        # else (0 on the way to 0.005 when the minimum is 1e-12) typing goes on, and leaving the box restores
        # the last valid value
        beyond = (v > self.maximum() and v > 0) or (v < self.minimum() and v < 0)
        if beyond and "e" not in t.lower():
            return QValidator.State.Invalid, text, pos
        return QValidator.State.Intermediate, text, pos


class _IntValidator(QValidator):
    """Whole numbers within [lo, hi] for ranges a QSpinBox cannot hold (e.g. a 64-bit seed)."""

    def __init__(self, lo: int | None, hi: int | None, parent: QWidget):
        super().__init__(parent)
        self.lo, self.hi = lo, hi

    def validate(self, text: str, pos: int) -> Any:
        t = text.strip()
        if t in ("", "-", "+"):
            return QValidator.State.Intermediate, text, pos
        try:
            v = int(t)
        except ValueError:
            return QValidator.State.Invalid, text, pos
        if (self.lo is not None and v < self.lo) or (self.hi is not None and v > self.hi):
            return QValidator.State.Invalid, text, pos
        return QValidator.State.Acceptable, text, pos


class Field:
    """One request field: its metadata and its editor."""

    def __init__(self, meta: dict, parent: QWidget):
        self.meta = meta
        self.name: str = meta["name"]
        self.type: str = meta["type"]
        self.default = meta.get("default")
        self.nullable = bool(meta.get("nullable"))
        self.lo, self.hi = meta.get("min"), meta.get("max")
        self.editor: QWidget = self._make(parent)
        self.widget: QWidget = self.editor  # what the form shows (the editor, or the editor and a button)
        if self.type == "path":
            self.widget = self._with_browse(parent)
        tip = meta.get("doc") or ""
        rng = self.range_text()
        self.widget.setToolTip(f"{self.name}: {tip}" + (f" ({rng})" if rng else ""))
        self.editor.setToolTip(self.widget.toolTip())
        self.set(self.default)
        # touched: the user (or set()) changed the editor since it showed the default
        self.touched = False
        w = self.editor
        sig = (w.toggled if isinstance(w, QCheckBox) else w.currentIndexChanged if isinstance(w, QComboBox)
               else w.valueChanged if isinstance(w, QAbstractSpinBox) else w.textChanged)
        sig.connect(self._touch)

    def _touch(self, *_: Any) -> None:
        self.touched = True

    # -------------------------------------------------------------- editors
    def _make(self, parent: QWidget) -> QWidget:
        t = self.type
        if t == "bool":
            return QCheckBox(parent)
        if t == "choice":
            w = QComboBox(parent)
            for c in self.meta.get("choices") or []:
                w.addItem(c if c != "" else NONE_CHOICE, c)
            return w
        if t == "int" and not self.nullable and self._fits_int32():
            w = QSpinBox(parent)
            w.setRange(-INT32 if self.lo is None else int(self.lo), INT32 if self.hi is None else int(self.hi))
            return w
        if t == "number" and not self.nullable:
            return _NumberBox(-math.inf if self.lo is None else float(self.lo),
                              math.inf if self.hi is None else float(self.hi))
        w = QLineEdit(parent)
        if t == "int":
            w.setValidator(_IntValidator(self.lo, self.hi, w))
        if self.nullable:
            w.setPlaceholderText("(not set: the model's value)")
        return w

    def _fits_int32(self) -> bool:
        return all(b is None or -INT32 <= b <= INT32 for b in (self.lo, self.hi))

    def _with_browse(self, parent: QWidget) -> QWidget:
        box = QWidget(parent)
        row = QHBoxLayout(box)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.editor, 1)
        button = QToolButton(box)
        button.setText("…")
        # the metadata says "path", not file or folder: the user picks which
        menu = QMenu(button)
        menu.addAction("File…", lambda: self._browse(False))
        menu.addAction("Folder…", lambda: self._browse(True))
        button.setMenu(menu)
        button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        row.addWidget(button)
        self.browse_button = button
        return box

    def _browse(self, folder: bool) -> None:
        if folder:
            p = QFileDialog.getExistingDirectory(self.editor, self.name)
        else:
            p = QFileDialog.getOpenFileName(self.editor, self.name)[0]
        if p:
            self.editor.setText(p)

    def range_text(self) -> str:
        if self.lo is not None and self.hi is not None:
            return f"{self.lo} to {self.hi}"
        if self.lo is not None:
            return f"at least {self.lo}"
        if self.hi is not None:
            return f"at most {self.hi}"
        return ""

    # -------------------------------------------------------------- values
    def set(self, value: Any) -> None:
        """Shows a value (clamped to the declared range by a spin box)."""
        w = self.editor
        if isinstance(w, QCheckBox):
            w.setChecked(bool(value))
        elif isinstance(w, QComboBox):
            i = w.findData(value)
            if i < 0:
                raise ValueError(f"{self.name}: {value!r} is not one of {self.meta.get('choices')}")
            w.setCurrentIndex(i)
        elif isinstance(w, QSpinBox):
            w.setValue(int(value))
        elif isinstance(w, QDoubleSpinBox):
            w.setValue(float(value))
        elif value is None:
            w.setText("")
        elif self.type in ("string", "path", "int", "number"):
            w.setText(str(value))
        elif self.type.endswith("_list"):
            w.setText(", ".join(json.dumps(v) if isinstance(v, str) else str(v) for v in value))
        else:
            w.setText(json.dumps(value))

    def value(self) -> Any:
        """The editor's value in the request's type; InputError names the field when the text does not fit."""
        w = self.editor
        if isinstance(w, QCheckBox):
            return w.isChecked()
        if isinstance(w, QComboBox):
            return w.currentData()
        if isinstance(w, (QSpinBox, QDoubleSpinBox)):
            w.interpretText()
            return w.value()
        text = w.text().strip()
        if self.type in ("string", "path"):
            return w.text()
        if text == "" and self.nullable:
            return None
        try:
            if self.type == "int":
                return self._in_range(int(text))
            if self.type == "number":
                return self._in_range(float(text))
            if self.type.endswith("_list"):
                items = json.loads(text) if text.startswith("[") else \
                    [s.strip() for s in text.split(",") if s.strip()]
                kind = {"int_list": int, "number_list": float, "string_list": str}[self.type]
                out = []
                for v in items:
                    if kind is str:
                        out.append(v if isinstance(v, str) else json.dumps(v))
                    else:
                        out.append(self._in_range(kind(v)))
                return out
            return json.loads(text)  # object, json
        except (ValueError, TypeError) as e:
            raise InputError(f"setting '{self.name}': '{text}' is not {self._expected()}"
                             f"{f' ({e})' if 'range' in str(e) else ''}") from None

    def _in_range(self, v: Any) -> Any:
        if (self.lo is not None and v < self.lo) or (self.hi is not None and v > self.hi):
            raise ValueError(f"out of range: {self.range_text()}")
        return v

    def _expected(self) -> str:
        return {"int": "a whole number", "number": "a number", "int_list": "a list of whole numbers",
                "number_list": "a list of numbers", "string_list": "a list of texts"}.get(
                    self.type, "valid JSON like " + json.dumps(self.default))

    def changed(self) -> tuple[bool, Any]:
        v = self.value()
        d = self.default
        if isinstance(d, float) and isinstance(v, (int, float)) and not isinstance(v, bool):
            # a spin box shows 17 decimals at most: a default it cannot hold exactly is not a change
            return (abs(v - d) > 1e-15 * max(1.0, abs(d))), v
        return v != d, v


class OptionsForm(QWidget):
    """Editors for `options` (cellcount.request_options entries) except the names in `skip`: the basic
    fields in a form, the "advanced" ones in a collapsible section below it (folded at first).

    send="changed": changed() gives the fields whose value differs from the declared default (a request's
    fields: the default is what the library uses). send="touched": the fields the user edited, whatever the
    value (a method's prediction options: left alone, each takes the model's tuned value, which may differ
    from the declared default; typing the declared default must still send it)."""

    def __init__(self, options: list[dict], skip: tuple[str, ...] = (), parent: QWidget | None = None,
                 send: str = "changed"):
        super().__init__(parent)
        if send not in ("changed", "touched"):
            raise ValueError(f"send: 'changed' or 'touched', got {send!r}")
        self.send = send
        self.fields: dict[str, Field] = {}
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.basic_form = QFormLayout()
        lay.addLayout(self.basic_form)
        self.advanced_button = QToolButton(self)
        self.advanced_button.setText("Advanced")
        self.advanced_button.setCheckable(True)
        self.advanced_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.advanced_button.setArrowType(Qt.ArrowType.RightArrow)
        self.advanced_button.toggled.connect(self.show_advanced)
        lay.addWidget(self.advanced_button)
        self.advanced_box = QWidget(self)
        self.advanced_form = QFormLayout(self.advanced_box)
        self.advanced_form.setContentsMargins(12, 0, 0, 0)
        lay.addWidget(self.advanced_box)
        self.advanced_box.setVisible(False)
        for meta in options:
            if meta["name"] in skip:
                continue
            f = Field(meta, self)
            self.fields[f.name] = f
            (self.advanced_form if meta.get("advanced") else self.basic_form).addRow(f.name, f.widget)
        has_advanced = self.advanced_form.rowCount() > 0
        self.advanced_button.setVisible(has_advanced)

    def show_advanced(self, on: bool) -> None:
        self.advanced_button.setArrowType(Qt.ArrowType.DownArrow if on else Qt.ArrowType.RightArrow)
        self.advanced_box.setVisible(on)

    def set(self, name: str, value: Any) -> None:
        self.fields[name].set(value)

    def changed(self) -> dict:
        """The fields to send (see send); the rest are left to the library (or the model)."""
        out = {}
        for name, f in self.fields.items():
            is_changed, v = f.changed()
            if f.touched if self.send == "touched" else is_changed:
                out[name] = v
        return out
