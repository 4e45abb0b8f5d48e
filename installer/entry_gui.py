"""Frozen entry point of ``score-gui`` (the application) for the PyInstaller bundle."""

import sys

from score_studio.main import main

if __name__ == "__main__":
    sys.exit(main())
