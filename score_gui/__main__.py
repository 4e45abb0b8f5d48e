import sys

from score_gui.cli import main

sys.exit(main())
