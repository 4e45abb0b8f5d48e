"""The examples in score_studio's docstrings run (pytest collects only tests/ and score_gui/)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["score_studio.settings", "score_studio.rater", "score_studio.shortcuts",
           "score_studio.study_browser", "score_studio.actions", "score_studio.modes",
           "score_studio.opening", "score_studio.references", "score_studio.status"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, qapp):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
