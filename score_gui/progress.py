"""Progress of long jobs: the core yields :class:`Progress`; the CLI and GUI display it.

Long work (inference, training, batch) is a generator that yields one ``Progress`` per
step (a slice, an iteration, a scan) and returns its result (``StopIteration.value``).
:func:`run_with_progress` drives such a generator with a text progress bar; :func:`forward`
puts an inner job's progress on the scale of an outer job made of several.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Generator
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


def forward(job: Generator[Any, None, T], base: int = 0, total: int | None = None, span: int | None = None,
            started: float | None = None, message: Callable[[str], str] | None = None,
            items: Callable[[Any], Any] | None = None) -> Generator[Any, None, T]:
    """Re-yield an inner job's progress on an outer job's scale; return the inner result.

    For an outer job made of inner ones (scans of a study, folds of a cross-validation)
    that reports one bar: use as ``result = yield from forward(inner, base, total, ...)``.
    Each inner :class:`Progress` becomes step ``base + done`` of ``total`` (inner steps
    are outer steps), or, with ``span``, ``base + int(span * fraction)`` (the inner job
    takes ``span`` outer steps, whatever its own total). ``started`` (the outer job's
    start, for the ETA) and ``message`` (rewrites each message) are applied when given;
    ``extra`` is kept. Other items the inner job yields (results) go through ``items``,
    or unchanged. Stopping the outer generator stops the inner one.

    Examples
    --------
    >>> def inner():
    ...     for i in (1, 2):
    ...         yield Progress(i, 2, f"slice {i}/2")
    ...     return "labels"
    >>> def outer():
    ...     first = yield from forward(inner(), base=0, total=20, span=10)
    ...     second = yield from forward(inner(), base=10, total=20, span=10,
    ...                                 message=lambda m: "scan 2: " + m)
    ...     return [first, second]
    >>> steps = list(outer())
    >>> [(p.done, p.total, p.message) for p in steps]
    [(5, 20, 'slice 1/2'), (10, 20, 'slice 2/2'), (15, 20, 'scan 2: slice 1/2'), (20, 20, 'scan 2: slice 2/2')]
    >>> drain(outer())
    ['labels', 'labels']
    """
    try:
        while True:
            step = next(job)
            if not isinstance(step, Progress):
                yield items(step) if items is not None else step
                continue
            done = base + (step.done if span is None else int(span * min(step.fraction, 1.0)))
            yield Progress(done, step.total if total is None else total,
                           step.message if message is None else message(step.message),
                           step.started if started is None else started, step.extra)
    except StopIteration as stop:
        return stop.value


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
