"""Where SCORE Studio keeps its own files, and the settings it remembers between runs.

Everything lives under :func:`score_home` (``$SCORE_HOME``, else
``~/.local/share/score-studio``): ``settings.json`` (rater identity, recent studies,
window geometry, last workflow mode) and ``recovery/`` (unsaved labels after a crash).
A JSON file rather than QSettings keeps tests isolated by ``SCORE_HOME`` alone and lets
a lab copy one rater's settings to another machine.

Examples
--------
>>> import os, tempfile
>>> os.environ["SCORE_HOME"] = tempfile.mkdtemp()
>>> settings = AppSettings.load()
>>> settings.add_recent("/data/study1"); settings.add_recent("/data/study2")
>>> _ = settings.save(); AppSettings.load().recent[0]
'/data/study2'
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from score_gui.atomic import write_text_atomic

MAX_RECENT = 10


def score_home() -> Path:
    """SCORE Studio's data folder: ``$SCORE_HOME`` or ``~/.local/share/score-studio``."""
    env = os.environ.get("SCORE_HOME")
    return Path(env) if env else Path.home() / ".local" / "share" / "score-studio"


def settings_file() -> Path:
    return score_home() / "settings.json"


@dataclass
class AppSettings:
    """What the application remembers between runs (all plain JSON types).

    Attributes
    ----------
    rater_id : str
        The rater's alphanumeric ID; labels save as ``desc-rater<ID>``. Empty until asked.
    recent : list of str
        Recently opened studies or scans, newest first.
    geometry, window_state : str
        Base64 of ``QMainWindow.saveGeometry()`` / ``saveState()``.
    mode : str
        Last workflow mode (annotate, segment, qc, export).
    layout : str
        Last viewer layout (all, working, single).
    ensemble : str
        ``"default"`` or the folder of the last chosen ensemble.
    """

    rater_id: str = ""
    recent: list[str] = field(default_factory=list)
    geometry: str = ""
    window_state: str = ""
    mode: str = "annotate"
    layout: str = "working"
    ensemble: str = "default"

    @classmethod
    def load(cls) -> "AppSettings":
        """Read ``settings.json``; a missing or damaged file gives the defaults."""
        try:
            data = json.loads(settings_file().read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return cls()
        if not isinstance(data, dict):
            return cls()
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        settings = cls(**known)
        settings.recent = [str(p) for p in settings.recent if isinstance(p, str)][:MAX_RECENT]
        return settings

    def save(self) -> Path:
        """Write ``settings.json`` atomically."""
        return write_text_atomic(settings_file(), json.dumps(asdict(self), indent=2))

    def add_recent(self, path: str | os.PathLike) -> None:
        """Put ``path`` first in the recent list (no duplicates, at most ``MAX_RECENT``)."""
        path = str(path)
        self.recent = [path] + [p for p in self.recent if p != path]
        del self.recent[MAX_RECENT:]

    def existing_recent(self) -> list[str]:
        """Recent entries that still exist on disk."""
        return [p for p in self.recent if Path(p).exists()]
