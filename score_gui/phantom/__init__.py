"""Synthetic AMIRA data: realistic slices, scans, studies and simulated raters.

``docs/amira_physics.md`` holds the physics and anatomy the phantom follows.

Examples
--------
>>> import numpy as np
>>> s = make_slice(np.random.default_rng(3), level="C2", shape=(64, 64))
>>> s.images.shape
(8, 64, 64)
"""

from score_gui.phantom.anatomy import LEVELS, Subject, random_subject
from score_gui.phantom.artifacts import DEGRADATIONS
from score_gui.phantom.raters import RaterProfile, simulate_rater
from score_gui.phantom.render import SyntheticSlice, make_slice
from score_gui.phantom.study import (data_home, ensure_demo_study, make_scan, make_study,
                                     scan_of_subject, write_demo)

__all__ = ["DEGRADATIONS", "LEVELS", "RaterProfile", "Subject", "SyntheticSlice", "data_home",
           "ensure_demo_study", "make_scan", "make_slice", "make_study", "random_subject",
           "scan_of_subject", "simulate_rater", "write_demo"]
