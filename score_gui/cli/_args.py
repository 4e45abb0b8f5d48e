"""Argument types for the ``score`` command line: numbers checked when the line is parsed.

Each function here is an ``argparse`` ``type=``: it turns the text into a number or raises
:class:`argparse.ArgumentTypeError` with what was wrong, which the dispatcher's parser prints
as one line (``error: score train: argument --iterations: must be at least 1, not 0``) and
exit code 2. Checking at parse time means a bad number never starts work, never hangs and
never reaches a worker process as an exception.

Only plain decimal text is taken: ``int()`` and ``float()`` would also accept ``1_000``,
Arabic-Indic digits, ``nan`` and ``inf``, which no user means as a count or a size.

Examples
--------
>>> positive_int("3")
3
>>> positive_int("0")
Traceback (most recent call last):
...
argparse.ArgumentTypeError: must be at least 1, not 0
>>> int_range(32, 1024)("2048")
Traceback (most recent call last):
...
argparse.ArgumentTypeError: must be at most 1024, not 2048
>>> float_range(0.2, 2.0)("nan")
Traceback (most recent call last):
...
argparse.ArgumentTypeError: 'nan' is not a finite number
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable

_INTEGER = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")

SEED_MAX = 2**32 - 1
"""Largest seed: numpy's ``default_rng`` and ``torch.manual_seed`` both take 0 to 2**32 - 1 alike."""

WORKERS_MAX = 256
"""More worker processes than any machine here has cores: almost surely a typo."""


def _integer(text: str) -> int:
    cleaned = str(text).strip()
    if not _INTEGER.fullmatch(cleaned):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number")
    return int(cleaned)


def _number(text: str) -> float:
    cleaned = str(text).strip()
    if not _DECIMAL.fullmatch(cleaned):
        if cleaned.lower().lstrip("+-") in ("nan", "inf", "infinity"):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        raise argparse.ArgumentTypeError(f"{text!r} is not a number")
    value = float(cleaned)
    if not math.isfinite(value):  # e.g. 1e999
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def _show(value) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


def _bounded(value, lo, hi):
    if lo is not None and value < lo:
        raise argparse.ArgumentTypeError(f"must be at least {_show(lo)}, not {_show(value)}")
    if hi is not None and value > hi:
        raise argparse.ArgumentTypeError(f"must be at most {_show(hi)}, not {_show(value)}")
    return value


def int_range(lo: int | None = None, hi: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number within ``lo``-``hi`` (either end may be open).

    Examples
    --------
    >>> int_range(2, 10)("4")
    4
    >>> int_range(2, 10)("1.5")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: '1.5' is not a whole number
    """

    def parse(text: str) -> int:
        return _bounded(_integer(text), lo, hi)

    parse.__name__ = "whole number"  # argparse names the type in its own messages
    return parse


def float_range(lo: float | None = None, hi: float | None = None) -> Callable[[str], float]:
    """An argparse type: a finite decimal number within ``lo``-``hi``.

    Examples
    --------
    >>> float_range(0.2, 2.0)("0.5")
    0.5
    >>> float_range(0.2, 2.0)("0")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: must be at least 0.2, not 0
    """

    def parse(text: str) -> float:
        return _bounded(_number(text), lo, hi)

    parse.__name__ = "number"
    return parse


def positive_int(text: str) -> int:
    """A whole number >= 1 (counts: iterations, threads, workers)."""
    return int_range(1, None)(text)


def non_negative_int(text: str) -> int:
    """A whole number >= 0 (0-based indices such as slice numbers)."""
    return int_range(0, None)(text)


def positive_float(text: str) -> float:
    """A finite number > 0.

    Examples
    --------
    >>> positive_float("0")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: must be greater than 0, not 0
    """
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, not {_show(value)}")
    return value


def fraction(text: str) -> float:
    """A finite number within 0-1."""
    return float_range(0.0, 1.0)(text)


def seed(text: str) -> int:
    """A random seed, 0 to :data:`SEED_MAX`."""
    return int_range(0, SEED_MAX)(text)


def workers(text: str) -> int:
    """A number of worker processes, 1 to :data:`WORKERS_MAX`."""
    return int_range(1, WORKERS_MAX)(text)
