"""Long calls off the main thread: a napari thread worker runs the job, a cancelable napari progress bar
(activity dock, with its Cancel button) follows it, and cancelling sets a flag that the library's progress
callback returns (the call then stops at its next tile or step and raises cellcount.Cancelled).

The progress callback runs on the worker thread and only stores the latest fraction; a timer on the main
thread copies it to the progress bar, so no Qt object is touched from the worker."""
from __future__ import annotations

import logging
import threading
import traceback
from typing import Any, Callable

from napari.qt.threading import create_worker
from napari.utils import cancelable_progress
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QObject, QTimer, Signal
from qtpy.QtWidgets import QWidget

import cellcount

from ._layers import InputError

log = logging.getLogger("napari_cellcount")

# report(fraction, stage) -> True when the user cancelled (return it from a cellcount progress callback)
Report = Callable[[float, str], bool]


class _LogCapture(logging.Handler):
    """Library warnings logged on the job's thread, shown to the user when the job ends."""

    def __init__(self, thread_id: int):
        super().__init__(logging.WARNING)
        self.thread_id = thread_id
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread_id:
            self.messages.append(record.getMessage())


class Job(QObject):
    """One background run of `work(report)`; emits done(value) or failed(exception) on the main thread and
    then ended(). `title` names the job in the progress bar and in notifications."""

    done = Signal(object)
    failed = Signal(object)
    ended = Signal()

    def __init__(self, title: str, work: Callable[[Report], Any], parent: QObject | None = None):
        super().__init__(parent)
        self.title = title
        self._work = work
        self._cancel = threading.Event()
        self._latest: tuple[float, str] = (0.0, "starting")
        self._pbar: cancelable_progress | None = None
        self._timer = QTimer(self)
        self._timer.setInterval(100)
        self._timer.timeout.connect(self._tick)
        self._worker = None
        self.running = False
        self.warnings: list[str] = []

    # ---------------------------------------------------------------- worker side
    def report(self, fraction: float, stage: str) -> bool:
        self._latest = (float(fraction), stage)
        return self.cancelled

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set() or bool(self._pbar is not None and self._pbar.is_canceled)

    def _run(self) -> tuple[bool, Any]:
        """(True, value) or (False, exception): errors are returned, not raised, so that napari's worker
        neither re-raises them nor shows its own traceback notification; ours says what to fix."""
        capture = _LogCapture(threading.get_ident())
        logging.getLogger("cellcount").addHandler(capture)
        try:
            return True, self._work(self.report)
        except Exception as e:  # noqa: BLE001 - every failure becomes a notification
            return False, e
        finally:
            logging.getLogger("cellcount").removeHandler(capture)
            self.warnings = capture.messages

    # ---------------------------------------------------------------- main thread
    def start(self) -> None:
        self.running = True
        self._pbar = cancelable_progress(total=1000, desc=self.title, cancel_callback=self.cancel)
        self._worker = create_worker(self._run, _start_thread=False,
                                     _connect={"returned": self._returned, "finished": self._finished})
        self._timer.start()
        self._worker.start()

    def cancel(self) -> None:
        self._cancel.set()

    def _tick(self) -> None:
        pbar = self._pbar
        if pbar is None:
            return
        f, stage = self._latest
        n = int(max(0.0, min(1.0, f)) * 1000)
        if n > pbar.n:
            pbar.update(n - pbar.n)  # may process events, and so end the job: check again below
        desc = f"{self.title}: {stage}" if stage else self.title
        if self._pbar is pbar and desc != getattr(pbar, "desc", ""):
            pbar.set_description(desc)

    def _returned(self, outcome: tuple[bool, Any]) -> None:
        for w in dict.fromkeys(self.warnings):
            show_warning(f"{self.title}: {w}")
        ok, value = outcome
        if ok:
            try:
                self.done.emit(value)
            except Exception as e:  # noqa: BLE001 - showing the results failed: say so, keep the viewer
                notify_error(self.title, e)
                self.failed.emit(e)
        else:
            notify_error(self.title, value)
            self.failed.emit(value)

    def _finished(self) -> None:
        self._timer.stop()
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None
        self.running = False
        self._worker = None
        self.ended.emit()


def notify_error(title: str, exc: BaseException) -> None:
    """A napari notification for a failed job: the library's status and message, the user's input error,
    or (for anything unexpected) the exception with its traceback in the log."""
    if isinstance(exc, cellcount.Cancelled):
        show_info(f"{title}: cancelled")
    elif isinstance(exc, cellcount.CellCountError):
        show_error(f"{title}: {exc.message} [{exc.status_name}]")
    elif isinstance(exc, InputError):
        show_error(f"{title}: {exc}")
    elif isinstance(exc, OSError) and isinstance(exc, (cellcount.LibraryNotFoundError, cellcount.AbiMismatchError)):
        show_error(f"{title}: {exc}")
    else:
        log.error("%s failed:\n%s", title, "".join(traceback.format_exception(exc)))
        show_error(f"{title}: {type(exc).__name__}: {exc}")


class JobWidget(QWidget):
    """A dock widget that runs one Job at a time from its `run_button`, which reads "Cancel" while the job
    runs and `idle_text` otherwise; `status` shows `busy_text`. Subclasses give `_job()`, returning (job
    title, work(report), on_done(value)) or raising InputError, which is notified as "<title>: <message>"
    without starting a job. `finished` carries the outcome: what on_done left in `last_outcome`, or the
    exception after an input error, a failure or a cancel (already notified)."""

    finished = Signal(object)
    idle_text = "Run"
    busy_text = "working…"

    def __init__(self, napari_viewer: Any, title: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.title = title
        self.job: Job | None = None
        self.last_outcome: Any = None

    def _job(self) -> tuple[str, Callable[[Report], Any], Callable[[Any], None]]:
        raise NotImplementedError

    @property
    def running(self) -> bool:
        return self.job is not None and self.job.running

    def run(self) -> None:
        """Starts the job (the run button); while one runs, cancels it."""
        if self.running:
            self.cancel()
            return
        self.last_outcome = None
        try:
            title, work, on_done = self._job()
        except InputError as e:
            show_error(f"{self.title}: {e}")
            self.last_outcome = e
            self.finished.emit(e)
            return
        self.job = Job(title, work, self)
        self.job.done.connect(on_done)
        self.job.failed.connect(self._failed)
        self.job.ended.connect(self._ended)
        self.run_button.setText("Cancel")
        self.status.setText(self.busy_text)
        self.job.start()

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()

    def _failed(self, exc: BaseException) -> None:
        # the library's own message stays in the widget (a notification fades): what to fix, e.g. a field
        if isinstance(exc, cellcount.Cancelled):
            self.status.setText("cancelled")
        elif isinstance(exc, cellcount.CellCountError):
            self.status.setText(f"failed: {exc.message} [{exc.status_name}]")
        else:
            self.status.setText(f"failed: {exc}")
        self.last_outcome = exc

    def _ended(self) -> None:
        """The job and its thread are done: the widget takes new work, and says how it went."""
        self.run_button.setText(self.idle_text)
        self.finished.emit(self.last_outcome)
