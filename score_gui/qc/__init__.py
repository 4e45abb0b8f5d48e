"""Quality control: the per-study QC log, automatic suggestions and the HTML report.

* :mod:`score_gui.qc.log`: append-only decisions (``QCLog``), ``score qc set/export``.
* :mod:`score_gui.qc.suggest`: per-slice hints for the reviewer (never applied silently).
* :mod:`score_gui.qc.report`: a self-contained HTML report per study, and the thumbnails
  the QC widget shows.
"""

from score_gui.qc.log import COLUMNS, REASONS, Decision, QCLog, read_qc_table

__all__ = ["COLUMNS", "REASONS", "Decision", "QCLog", "read_qc_table"]
