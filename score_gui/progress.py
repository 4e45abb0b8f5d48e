"""Progress of long jobs: the core yields :class:`Progress`; the CLI and GUI display it.

Long work (inference, training, batch) is a generator that yields one ``Progress`` per
step (a slice, an iteration, a scan) and returns its result (``StopIteration.value``).
:func:`run_with_progress` drives such a generator with a text progress bar.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Progress:
    """One step of a long job.

    Attributes
    ----------
    done, total : int
        Steps done so far and in all.
    message : str
        What is being done, e.g. ``"sub-01 slice 3/12"``.
    started : float
        ``time.monotonic()`` when the job started, for the ETA.
    extra : dict
        Job-specific numbers (e.g. the training loss).
    """

    done: int
    total: int
    message: str = ""
    started: float = 0.0
    extra: dict | None = None

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0

    def eta_seconds(self) -> float | None:
        """Seconds left, extrapolated linearly; None before the first step."""
        if not self.done or not self.started:
            return None
        elapsed = time.monotonic() - self.started
        return elapsed / self.done * (self.total - self.done)


def format_eta(seconds: float | None) -> str:
    """``'1m 05s'`` style.

    Examples
    --------
    >>> format_eta(65.2), format_eta(None), format_eta(3725)
    ('1m 05s', '--', '1h 02m')
    """
    if seconds is None:
        return "--"
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds}s"


def run_with_progress(job: Generator[Progress, None, T], stream=None, width: int = 30) -> T:
    """Run a progress generator to the end, drawing a bar on ``stream`` (stderr); return its result."""
    stream = stream or sys.stderr
    interactive = hasattr(stream, "isatty") and stream.isatty()
    last_line = 0.0
    try:
        while True:
            step = next(job)
            now = time.monotonic()
            if not interactive and now - last_line < 2.0 and step.done < step.total:
                continue
            last_line = now
            filled = int(width * step.fraction)
            bar = "#" * filled + "-" * (width - filled)
            extra = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                             for k, v in (step.extra or {}).items())
            line = (f"[{bar}] {step.done}/{step.total} ETA {format_eta(step.eta_seconds())} "
                    f"{step.message} {extra}").rstrip()
            stream.write(("\r" + line[:160]) if interactive else line + "\n")
            stream.flush()
    except StopIteration as stop:
        if interactive:
            stream.write("\n")
        return stop.value
    except BaseException:
        if interactive and last_line:  # clear the bar: the error message gets a line of its own
            stream.write("\r\033[K")
            stream.flush()
        raise


def drain(job: Generator[Progress, None, T]) -> T:
    """Run a progress generator silently; return its result."""
    try:
        while True:
            next(job)
    except StopIteration as stop:
        return stop.value


def result_of(job: Generator[Any, None, T]) -> T:
    """Alias of :func:`drain` for readability in tests."""
    return drain(job)
