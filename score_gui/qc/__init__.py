"""Quality control: the per-study QC log, automatic suggestions and the HTML report.

* :mod:`score_gui.qc.log`: append-only decisions (``QCLog``), ``score qc set/export``, and
  :func:`~score_gui.qc.log.decision_in_force`, the one rule for the decision in force per
  scan, slice and source (image-level fails count for every source).
* :mod:`score_gui.qc.suggest`: per-slice hints for the reviewer (never applied silently).
* :mod:`score_gui.qc.report`: a self-contained HTML report per study, and the thumbnails
  the QC widget shows.
"""

from score_gui.qc.log import (ALL_SOURCES, COLUMNS, IMAGE_REASONS, REASONS, SEGMENTATION_REASONS, Decision,
                              QCLog, decision_in_force, read_qc_table)

__all__ = ["ALL_SOURCES", "COLUMNS", "IMAGE_REASONS", "REASONS", "SEGMENTATION_REASONS", "Decision", "QCLog",
           "decision_in_force", "read_qc_table"]
