"""Frozen entry point of ``score`` (the command line) for the PyInstaller bundle."""

import multiprocessing
import sys

from score_gui.cli import main

if __name__ == "__main__":
    multiprocessing.freeze_support()  # score areas/batch start worker processes
    sys.exit(main())
