#!/usr/bin/env bash
# SCORE Studio set-up and entry point for a fresh Debian/Ubuntu machine.
#   ./score.sh demo   install everything, then open the application on the demo study
#                     (headless machines: render it to out/demo.png and segment the demo scan)
#   ./score.sh test   install everything, then run the whole test suite
#   ./score.sh bundle install everything, build the PyInstaller bundle dist/score-studio/ and check it
#                     (the bundled score-gui renders the demo study, the bundled score segments a scan)
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)
VENV="$ROOT/.venv"
PY=${PYTHON:-python3}

APT_PACKAGES="xvfb xauth libegl1 libgl1 libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-image0 \
libxcb-keysyms1 libxcb-render-util0 libxcb-shape0 libxcb-xkb1 libxcb-randr0 libxcb-xinerama0 libdbus-1-3 \
libfontconfig1 libglib2.0-0"

install_system_packages() {
  local missing=()
  for pkg in $APT_PACKAGES; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "installing system packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

install_python_packages() {
  local stamp="$VENV/.score-installed"
  local want
  want=$(sha256sum pyproject.toml | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return 0; fi
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  # torch is pinned in pyproject.toml (torch==2.13.0, CPU build).
  "$VENV/bin/python" -m pip install -q -e ".[gui,test]"
  echo "$want" > "$stamp"
}

compile_sources() {
  # Byte-compile the project once, as pip does for installed packages: a start-up then reads
  # the compiled modules even where PYTHONDONTWRITEBYTECODE keeps Python from caching them
  # (the 35 modules of `score segment` take 0.05-0.08 s to compile). Only changed files are compiled again.
  "$VENV/bin/python" -m compileall -q score_gui plugins app >/dev/null
}

setup() {
  local t0=$SECONDS
  install_system_packages
  install_python_packages
  compile_sources
  echo "set-up done in $((SECONDS - t0)) s"
}

case "${1:-demo}" in
  demo)
    setup
    export PATH="$VENV/bin:$PATH"
    if [ -n "${DISPLAY:-}" ]; then
      exec score-gui --demo
    fi
    mkdir -p out
    echo "no display: segmenting the demo scan and rendering the application to out/demo.png"
    score demo out/demo --kind ms --seed 1
    score segment out/demo/*_amira.nii.gz -o out/demo/segmented
    python -c "import pandas as pd, glob; t = pd.read_csv(glob.glob('out/demo/segmented/*_areas.csv')[0]); \
print(t[['scan', 'slice', 'level', 'canal', 'cord', 'wm', 'gm', 'anterior_horns', 'posterior_horns', \
'gray_commissure', 'lesion', 'na_wm', 'na_gm']].to_string(index=False, float_format='%.1f'))"
    xvfb-run -a -s "-screen 0 1920x1080x24" score-gui --demo --screenshot out/demo.png
    echo "screenshot: $ROOT/out/demo.png"
    ;;
  test)
    setup
    shift || true
    export QT_QPA_PLATFORM=xcb
    # pytest-xvfb starts a virtual display for the GUI tests (one per worker). Two workers
    # (SCORE_TEST_WORKERS) run whole files, in the suite's order (tests/conftest.py).
    exec "$VENV/bin/python" -m pytest -p no:cacheprovider -n "${SCORE_TEST_WORKERS:-2}" \
      --dist loadfile --no-loadscope-reorder "$@"
    ;;
  bundle)
    setup
    BUNDLE="$ROOT/dist/score-studio"
    t0=$SECONDS
    installer/build.sh
    build_s=$((SECONDS - t0))
    # Everything below runs the bundle, never the virtual environment, so a module or data
    # file the spec forgot fails here and not on a user's machine.
    CHECK="$ROOT/out/bundle-check"
    rm -rf "$CHECK"
    mkdir -p "$CHECK"
    "$BUNDLE/score" --version
    "$BUNDLE/score" demo "$CHECK/scan" --kind ms --seed 1
    "$BUNDLE/score" segment "$CHECK"/scan/*_amira.nii.gz -o "$CHECK/segmented"
    for f in "$CHECK"/segmented/sub-ms01_amira_desc-score_dseg.nii.gz "$CHECK"/segmented/sub-ms01_amira_areas.csv; do
      [ -s "$f" ] || { echo "error: the bundled score segment did not write $f" >&2; exit 1; }
    done
    # Its own data folder: the bundled application builds (and then reuses) the demo study
    # with the bundled default models, as on a fresh machine.
    SCORE_HOME="$ROOT/out/bundle-home" xvfb-run -a -s "-screen 0 1920x1080x24" \
      "$BUNDLE/score-gui" --demo --screenshot "$ROOT/out/bundle.png"
    "$VENV/bin/python" - "$ROOT/out/bundle.png" <<'PY'
import sys
import numpy as np
from PIL import Image
pixels = np.asarray(Image.open(sys.argv[1]).convert("RGB")).reshape(-1, 3)
colours = len(np.unique(pixels, axis=0))
if colours < 50:
    sys.exit(f"error: {sys.argv[1]} has {colours} colours: the bundled application drew nothing")
print(f"screenshot: {sys.argv[1]} ({colours} colours)")
PY
    echo "bundle: $BUNDLE, $(du -sh "$BUNDLE" | cut -f1) ($(du -sb "$BUNDLE" | cut -f1) bytes), built in ${build_s} s"
    ;;
  setup)
    setup
    ;;
  *)
    echo "usage: $0 demo|test|bundle|setup" >&2
    exit 2
    ;;
esac
