"""Property tests of the command line's numeric options: any value drawn for any numeric
option of any command ends with exit code 0 or 2 and, for 2, one ``error:`` line; never a
traceback, never exit code 1, never a hang.

The command lines pair the drawn value with inputs that end the command quickly (a study
that does not exist, an output folder that cannot be made), so an accepted number never
starts long work; the number is parsed and checked first either way.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from score_gui.cli import _args, build_parser

SCORE = str(Path(sys.executable).with_name("score"))

# Every numeric option of every command: (command line before the option, option, values it takes).
NUMERIC_OPTIONS = [
    (["demo", "{blocked}"], "--seed", 1),
    (["demo", "{blocked}"], "--slices", 1),
    (["demo", "{blocked}"], "--pixel-size", 1),
    (["demo", "{blocked}"], "--shape", 2),
    (["areas", "--study", "{missing}"], "--workers", 1),
    (["batch", "{missing}"], "--workers", 1),
    (["qc", "set", "{missing}", "--scan", "s", "--status", "pass", "--reviewer", "r"], "--slice", 1),
    (["refine", "{missing}", "--dseg", "{missing}", "--structure", "gm", "--click", "1,1,+", "-o", "{out}"],
     "--slice", 1),
    (["train", "{missing}", "--rater", "A", "-o", "{out}"], "--folds", 1),
    (["train", "{missing}", "--rater", "A", "-o", "{out}"], "--iterations", 1),
    (["train", "{missing}", "--rater", "A", "-o", "{out}"], "--seed", 1),
    (["train", "{missing}", "--rater", "A", "-o", "{out}"], "--threads", 1),
    (["train", "{missing}", "--rater", "A", "-o", "{out}"], "--batch-size", 1),
    (["train", "{missing}", "--rater", "A", "-o", "{out}"], "--workers", 1),
]

ODD_TEXT = ["0", "-0", "-1", "-5", "1e3", "1.5", "nan", "inf", "-inf", "1e999", "", " ", "0x10",
            "1_000", "\u0663", "4294967296", "99999999999999999999", "+3", " 7 ", "abc"]

VALUES = st.one_of(
    st.integers(min_value=-10**12, max_value=10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(ODD_TEXT),
)


def test_every_numeric_option_is_listed():
    """NUMERIC_OPTIONS covers every option whose parser type is a number check."""
    parser = build_parser()
    found = set()
    for command, sub in parser._subparsers._group_actions[0].choices.items():
        parsers = [(command, sub)]
        if sub._subparsers is not None:
            parsers = [(f"{command} {name}", p) for name, p in sub._subparsers._group_actions[0].choices.items()]
        for name, p in parsers:
            for action in p._actions:
                if action.type in (int, float):
                    raise AssertionError(f"score {name} {action.option_strings}: plain {action.type.__name__}")
                if getattr(action.type, "__module__", "") == _args.__name__:
                    found.add((name.split()[0], action.option_strings[-1]))
    listed = {(prefix[0], option) for prefix, option, _ in NUMERIC_OPTIONS}
    assert found == listed


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(VALUES, st.text(max_size=12)))
def test_argument_types_return_a_number_in_range_or_refuse(text):
    checks = {_args.positive_int: (1, math.inf), _args.non_negative_int: (0, math.inf),
              _args.seed: (0, _args.SEED_MAX), _args.workers: (1, _args.WORKERS_MAX),
              _args.int_range(32, 1024): (32, 1024), _args.positive_float: (5e-324, math.inf),
              _args.fraction: (0.0, 1.0), _args.float_range(0.2, 2.0): (0.2, 2.0)}
    for parse, (lo, hi) in checks.items():
        try:
            value = parse(text)
        except argparse.ArgumentTypeError as exc:
            assert str(exc) and "\n" not in str(exc)
            continue
        assert math.isfinite(value) and lo <= value <= hi, (parse, text, value)


@pytest.fixture(scope="module")
def places(tmp_path_factory):
    root = tmp_path_factory.mktemp("props")
    (root / "afile").write_text("keep")
    return {"blocked": root / "afile" / "out", "missing": root / "no_study", "out": root / "models"}


@settings(max_examples=14, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=st.sampled_from(NUMERIC_OPTIONS), values=st.lists(VALUES, min_size=2, max_size=2))
def test_any_number_for_any_option_exits_0_or_2_with_one_line(places, case, values):
    prefix, option, n_values = case
    args = [a.format(**places) for a in prefix] + [f"{option}={values[0]}" if n_values == 1
                                                   else option, *([] if n_values == 1 else values)]
    env = {k: v for k, v in os.environ.items() if k != "SCORE_DEBUG"}
    proc = subprocess.run([SCORE, *args], capture_output=True, text=True, timeout=90, env=env)
    assert proc.returncode in (0, 2), (args, proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    if proc.returncode == 2:
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, proc.stderr)
        if "argument " in lines[0]:
            assert option in lines[0], lines[0]
    assert (places["blocked"].parent.read_text() == "keep" and not places["missing"].exists()
            and not places["out"].exists())
