"""The ``score`` command line.

Each subcommand lives in its own module of this package with two functions,
``add_parser(subparsers)`` and ``run(args) -> int``. Bad input (:class:`ScoreInputError`)
ends with one line on stderr and exit code 2, anything else unexpected with exit code 1;
neither prints a traceback unless ``SCORE_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings

from score_gui import __version__
from score_gui.errors import CancelledError, ScoreInputError

SUBCOMMANDS = ("demo", "segment", "areas", "evaluate", "train", "qc", "batch", "stats", "dicom")


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


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``score``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    warnings.showwarning = _show_warning
    try:
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
