"""The ``score`` command line.

Each subcommand lives in its own module of this package with two functions,
``add_parser(subparsers)`` and ``run(args) -> int``. Bad input (:class:`ScoreInputError`)
ends with one line on stderr and exit code 2, anything else unexpected with exit code 1;
neither prints a traceback unless ``SCORE_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import sys
import threading
import warnings

from score_gui import __version__
from score_gui.errors import CancelledError, ScoreInputError

SUBCOMMANDS = ("demo", "segment", "areas", "evaluate", "train", "qc", "batch", "stats", "dicom", "refine", "rank")


class FriendlyParser(argparse.ArgumentParser):
    """Argument errors as one line (``error: score areas: ...``) with exit code 2, no usage dump."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = FriendlyParser(prog="score", description="SCORE Studio command line: "
                                     "spinal cord compartments on AMIRA MRI.")
    parser.add_argument("--version", action="version", version=f"score {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"score_gui.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"score_gui.cli.{name}":
                continue  # subcommand not built yet
            raise
        module.add_parser(subparsers)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"warning: {message}", file=sys.stderr)


@contextlib.contextmanager
def _terminate_as_interrupt():
    """Treat SIGTERM (``kill``, job schedulers, closing a session) like Ctrl+C.

    Python ends at SIGTERM without unwinding, so temporary files and half-written result
    sets would stay behind; raised as KeyboardInterrupt, the same clean-up runs as for
    Ctrl+C, and the exit code is the same (130).
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set in the main thread
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``score``; returns the exit code (2 for a bad argument, as for bad input)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a bad argument already printed on one line
        return 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 2
    warnings.showwarning = _show_warning
    try:
        with _terminate_as_interrupt():
            return int(args.func(args) or 0)
    except ScoreInputError as exc:
        if os.environ.get("SCORE_DEBUG"):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except CancelledError:
        print("cancelled", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the last line of defence for users
        if os.environ.get("SCORE_DEBUG"):
            raise
        print(f"error: {type(exc).__name__}: {exc} (set SCORE_DEBUG=1 for details)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
