#!/usr/bin/env bash
# Build the one-folder bundle dist/score-studio/ (score-gui and score) with PyInstaller.
#   installer/build.sh            build (about 3 minutes, about 1.3 GB with torch)
#   installer/build.sh --check    build, then render a screenshot with the bundle under Xvfb
# Needs the project's virtual environment (./score.sh test or ./score.sh demo makes it).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv"
PYINSTALLER_VERSION=6.22.3
[ -x "$VENV/bin/python" ] || { echo "error: $VENV not found; run ./score.sh test first" >&2; exit 2; }
if ! "$VENV/bin/python" -c "import PyInstaller, sys; sys.exit(PyInstaller.__version__ != '$PYINSTALLER_VERSION')" 2>/dev/null; then
  "$VENV/bin/python" -m pip install -q "pyinstaller==$PYINSTALLER_VERSION"
fi
"$VENV/bin/pyinstaller" --noconfirm --clean --log-level WARN \
  --distpath "$ROOT/dist" --workpath "$ROOT/build/pyinstaller" installer/score_studio.spec
BUNDLE="$ROOT/dist/score-studio"
echo "bundle: $BUNDLE ($(du -sh "$BUNDLE" | cut -f1))"
if [ "${1:-}" = "--check" ]; then
  "$BUNDLE/score" --version
  mkdir -p "$ROOT/out"
  xvfb-run -a -s "-screen 0 1600x1000x24" "$BUNDLE/score-gui" --demo --screenshot "$ROOT/out/bundle.png"
  echo "screenshot: $ROOT/out/bundle.png"
fi
