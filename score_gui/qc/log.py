"""The QC log of a study: append-only per-slice decisions (contract section 4).

Where and how
-------------
The log lives in ``STUDY/derivatives/score/qc/qc_log.sqlite``. It is an SQLite database
because SQLite gives, with no server, exactly what two reviewers working at once need:

* **Nothing lost on a crash.** Each decision is one ``INSERT`` in its own
  ``BEGIN IMMEDIATE ... COMMIT`` transaction, in WAL mode with ``synchronous=FULL``:
  once :meth:`QCLog.record` returns, the decision is on disk (the WAL is fsync'ed at
  commit), and a process killed half-way through a transaction leaves no trace of it
  (the uncommitted WAL frames are ignored when the database is next opened).
* **Two processes at once.** ``BEGIN IMMEDIATE`` takes the write lock before reading, and
  a ``busy_timeout`` makes a second writer wait instead of failing. Readers never block
  writers in WAL mode, so the GUI can refresh while the command line records.
* **Append-only, enforced.** Triggers refuse every ``UPDATE`` and ``DELETE`` on the
  table, so history cannot be rewritten through this module or by accident.
* **"Later wins" without trusting clocks.** ``seq`` (an ``AUTOINCREMENT`` key) is the
  commit order. Two reviewers' machines may disagree on the time; the log's own order
  does not. ``time`` (ISO 8601 with time zone) is kept for people and the export.

An append-only text file with ``fcntl`` locks and ``fsync`` would also work, but needs its
own torn-line recovery and has no portable locking on Windows; SQLite has both built in.
(WAL needs a local file system or one with working POSIX locks; on a share where WAL
cannot be enabled the database falls back to its rollback journal, still transactional.)

Reading only
------------
Exports, reports, statistics and areas only read the log, and a reviewer may only have read
access to the study. Readers therefore open it read-only (``mode=ro``) and never ask for
WAL. A WAL database read-only still wants to create its ``-shm`` index beside it; when the
folder is read-only too and no ``-wal`` file is there (every decision is in the database
file itself, the state a writer leaves when it closes), the log is opened ``immutable``,
which needs neither. A ``-wal`` file that cannot be indexed holds decisions the database
file lacks: that is an error, never a silently older answer.

Undo
----
:meth:`QCLog.undo_last` never deletes: it appends a decision (``undoes`` = the undone
decision's ``seq``) that restores the slice's state from just before the undone one:
the earlier decision's status and reason, or ``unreviewed`` when there was none.
Repeated undos walk further back through the reviewer's own decisions.

Which decision is in force
--------------------------
A decision is recorded on one label source (the labels the reviewer was looking at), but
it does not always judge only that source (contract section 4):

* An **image-level fail** (:data:`IMAGE_REASONS`: ``image_artifact``,
  ``poor_image_quality``, ``posterior_arch_contact``) judges the image, so it fails the
  slice for every source of the scan: the ensemble's result, each rater, the consensus.
* A **segmentation-level fail** (:data:`SEGMENTATION_REASONS`: ``segmentation_error``,
  ``lesion_misclassified``, ``other``) stays with its source.
* A **pass** says the image *and* that source's labels are fine. Nobody passes a slice
  whose image they consider unusable, so a pass on any source clears an image-level fail
  recorded before it, for every source; it says nothing about the other sources' labels,
  which fall back to their own latest decision (or ``unreviewed``).
* A decision recorded on source ``*`` (:data:`ALL_SOURCES`; ``score qc export`` writes
  image-level fails so, an empty source in older TSVs means the same) applies to every source.

So for ``(scan, slice, source)`` the decision in force is the later of the source's own
latest decision (on that source or ``*``, image-level fails aside) and the image-level
fail in force on the slice, if any. :func:`decision_in_force` is the one function that
decides it; the log, the export, ``score areas --qc``, the statistics, the report and the
QC and export panels all go through it. An undone decision counts as never made (its
undo stays in the log for the record). Logs written before this rule read unchanged;
their image-level fails now count for every source.

Examples
--------
>>> import tempfile
>>> log = QCLog(tempfile.mkdtemp())
>>> _ = log.record(Decision("01", "", "sub-01_amira", 3, "score", "fail", "image_artifact", "ana"))
>>> _ = log.record(Decision("01", "", "sub-01_amira", 3, "score", "pass", "", "ben"))
>>> log.status_map("sub-01_amira", "score")
{3: ('pass', '')}
>>> _ = log.undo_last("ben")
>>> log.status_map("sub-01_amira", "score")
{3: ('fail', 'image_artifact')}
>>> len(log.decisions())
3
>>> _ = log.record(Decision("01", "", "sub-01_amira", 3, "raterA", "fail", "poor_image_quality", "ana"))
>>> log.status_map("sub-01_amira", "score")   # the image fails for every source
{3: ('fail', 'poor_image_quality')}
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from score_gui.errors import ScoreInputError

REASONS = ("image_artifact", "posterior_arch_contact", "lesion_misclassified",
           "poor_image_quality", "segmentation_error", "other")
"""Why a slice failed (contract section 4), in the order of the QC widget's keys 1-6."""
IMAGE_REASONS = ("image_artifact", "poor_image_quality", "posterior_arch_contact")
"""Reasons that judge the image: a fail for one source fails the slice for every source."""
SEGMENTATION_REASONS = ("segmentation_error", "lesion_misclassified", "other")
"""Reasons that judge one source's labels: a fail stays with that source."""
ALL_SOURCES = "*"
"""The source of a decision that applies to every source of the scan (``score qc export``)."""

STATUSES = ("pass", "fail")
UNREVIEWED = "unreviewed"
COLUMNS = ["subject", "session", "scan", "slice", "source", "status", "reason", "reviewer",
           "time", "comment"]
"""Columns of a decision and of ``score qc export`` (contract section 4), in order."""

LOG_NAME = "qc_log.sqlite"
BUSY_TIMEOUT_MS = 30_000

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS decisions (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    subject  TEXT NOT NULL,
    session  TEXT NOT NULL DEFAULT '',
    scan     TEXT NOT NULL,
    slice    INTEGER NOT NULL CHECK (slice >= 0),
    source   TEXT NOT NULL,
    status   TEXT NOT NULL CHECK (status IN ('pass', 'fail', '{UNREVIEWED}')),
    reason   TEXT NOT NULL DEFAULT '',
    reviewer TEXT NOT NULL,
    time     TEXT NOT NULL,
    comment  TEXT NOT NULL DEFAULT '',
    undoes   INTEGER REFERENCES decisions (seq)
);
CREATE INDEX IF NOT EXISTS decisions_slice ON decisions (scan, source, slice, seq);
CREATE TRIGGER IF NOT EXISTS decisions_no_update BEFORE UPDATE ON decisions
    BEGIN SELECT RAISE(ABORT, 'the QC log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS decisions_no_delete BEFORE DELETE ON decisions
    BEGIN SELECT RAISE(ABORT, 'the QC log is append-only'); END;
"""
_SCHEMA_STATEMENTS = [part.strip() + ";" for part in _SCHEMA.split(";\n") if part.strip()]
# The triggers hold ';' inside BEGIN ... END: rejoin them.
_SCHEMA_STATEMENTS = [s.replace("; END;;", "; END;") for s in _SCHEMA_STATEMENTS]


def _retry_while_locked(action, timeout_s: float = BUSY_TIMEOUT_MS / 1000):
    import time

    deadline = time.monotonic() + timeout_s
    delay = 0.005
    while True:
        try:
            return action()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


def now_iso() -> str:
    """The local time as ISO 8601 with its UTC offset, e.g. ``2026-11-24T13:05:12.345+01:00``."""
    return datetime.now().astimezone().isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Decision:
    """One QC decision on one slice of one label source.

    ``status`` is ``pass`` or ``fail`` (``unreviewed`` only appears when an undo restores
    a slice nobody had decided); ``reason`` is one of :data:`REASONS`, required for
    ``fail`` and empty for ``pass``. ``time`` defaults to now, with the time zone.
    """

    subject: str
    session: str
    scan: str
    slice: int
    source: str
    status: str
    reason: str = ""
    reviewer: str = ""
    comment: str = ""
    time: str = field(default_factory=now_iso)

    def __post_init__(self):
        object.__setattr__(self, "session", self.session or "")
        object.__setattr__(self, "reason", self.reason or "")
        object.__setattr__(self, "comment", self.comment or "")
        check_decision(self)


def check_decision(decision: Decision, allow_unreviewed: bool = False) -> None:
    """Raise :class:`ScoreInputError` naming what is wrong with a decision."""
    where = f"{decision.scan} slice {decision.slice}"
    allowed = STATUSES + ((UNREVIEWED,) if allow_unreviewed else ())
    if decision.status not in allowed:
        raise ScoreInputError(where, f"status {decision.status!r} is not one of {', '.join(STATUSES)}")
    if decision.status == "fail" and not decision.reason:
        raise ScoreInputError(where, f"a failed slice needs a reason: one of {', '.join(REASONS)}")
    if decision.reason and decision.reason not in REASONS:
        raise ScoreInputError(where, f"unknown reason {decision.reason!r}; one of {', '.join(REASONS)}")
    if decision.reason and decision.status == "pass":
        raise ScoreInputError(where, "a reason is only given for a failed slice")
    if not str(decision.reviewer).strip():
        raise ScoreInputError(where, "the reviewer's name is missing")
    if not decision.scan or not decision.source:
        raise ScoreInputError(where, "scan and source must not be empty")
    if int(decision.slice) < 0:
        raise ScoreInputError(where, "slice numbers start at 0")
    _check_time(decision.time, where)


def _check_time(text: str, where: str) -> None:
    try:
        parsed = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise ScoreInputError(where, f"time {text!r} is not ISO 8601") from None
    if parsed.tzinfo is None:
        raise ScoreInputError(where, f"time {text!r} lacks a time zone")


def resolve_qc_dir(study_root_or_qc_dir: str | Path) -> Path:
    """The QC folder for a study root, a QC folder, or the log file itself."""
    path = Path(study_root_or_qc_dir)
    if path.name == LOG_NAME:
        return path.parent
    if path.name == "qc" or (path / LOG_NAME).exists():
        return path
    from score_gui.study import DERIVATIVES

    return path / DERIVATIVES / "qc"


class QCLog:
    """A study's QC log (see the module docstring for the storage and its guarantees).

    Parameters
    ----------
    study_root_or_qc_dir : path
        The study folder, its ``derivatives/score/qc`` folder, or the log file. Reading
        a log that does not exist yet gives empty tables; the first :meth:`record`
        creates it.
    """

    def __init__(self, study_root_or_qc_dir: str | Path):
        self.qc_dir = resolve_qc_dir(study_root_or_qc_dir)
        self.path = self.qc_dir / LOG_NAME
        self._prepared = False  # schema checked by this object (saves a write lock per record)

    def __repr__(self) -> str:
        return f"QCLog({str(self.qc_dir)!r})"

    # -- connections ---------------------------------------------------------------------
    @contextlib.contextmanager
    def _connect(self, create: bool) -> Iterator[sqlite3.Connection | None]:
        """A connection for one operation: read-write with ``create``, else read-only (or None)."""
        if not self.path.exists() and not create:
            yield None
            return
        if create:
            from score_gui.atomic import ensure_writable_dir

            ensure_writable_dir(self.qc_dir)
        conn = self._open_writable() if create else self._open_read_only()
        try:
            if create:
                conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
                if not (self._prepared and self.path.exists()):
                    self._prepare(conn)
                    self._prepared = True
                conn.execute("PRAGMA synchronous = FULL")
            yield conn
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.IntegrityError):
                raise ScoreInputError(self.path, f"refused by the QC log ({exc})") from None
            raise ScoreInputError(self.path, f"QC log unreadable ({exc})") from None
        finally:
            conn.close()

    def _open_writable(self) -> sqlite3.Connection:
        try:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, one decision each.
            return sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        except sqlite3.Error as exc:
            raise ScoreInputError(self.path, f"cannot open the QC log ({exc})") from None

    def _open_read_only(self) -> sqlite3.Connection:
        """Open for reading without writing anything (see "Reading only" in the module notes)."""
        uri = self.path.resolve().as_uri()
        conn = None
        try:
            conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("SELECT 1 FROM sqlite_master LIMIT 1")  # WAL: opens (or fails to make) -shm
            return conn
        except sqlite3.OperationalError as exc:
            if conn is not None:
                conn.close()
            if "readonly" not in str(exc) and "unable to open" not in str(exc):
                raise ScoreInputError(self.path, f"QC log unreadable ({exc})") from None
        wal = self.path.with_name(self.path.name + "-wal")
        if wal.exists():
            raise ScoreInputError(wal, "the QC log's folder is read-only and this file holds decisions "
                                       "not yet in the log file; someone who can write to the study "
                                       "must open the log once")
        try:
            return sqlite3.connect(f"{uri}?immutable=1", uri=True)
        except sqlite3.Error as exc:
            raise ScoreInputError(self.path, f"cannot open the QC log ({exc})") from None

    @staticmethod
    def _prepare(conn: sqlite3.Connection) -> None:
        # journal_mode is persistent in the file; asking again is cheap and harmless. Switching
        # to WAL needs an exclusive lock and SQLite does not always call the busy handler for it
        # (two processes creating the log at once), so retry here until the busy timeout.
        _retry_while_locked(lambda: conn.execute("PRAGMA journal_mode = WAL"))
        conn.execute("BEGIN IMMEDIATE")  # two processes creating the log at once take turns
        try:
            for statement in _SCHEMA_STATEMENTS:
                conn.execute(statement)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    # -- writing -------------------------------------------------------------------------
    def record(self, decision: Decision) -> int:
        """Append one decision in its own transaction; return its ``seq`` (commit order)."""
        check_decision(decision)
        with self._connect(create=True) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                seq = self._insert(conn, decision, undoes=None)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return seq

    @staticmethod
    def _insert(conn: sqlite3.Connection, decision: Decision, undoes: int | None) -> int:
        row = asdict(decision)
        cursor = conn.execute(
            "INSERT INTO decisions (subject, session, scan, slice, source, status, reason, reviewer,"
            " time, comment, undoes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [str(row["subject"]), str(row["session"]), str(row["scan"]), int(row["slice"]),
             str(row["source"]), row["status"], row["reason"], str(row["reviewer"]).strip(),
             row["time"], str(row["comment"]), undoes])
        return int(cursor.lastrowid)

    def undo_last(self, reviewer: str, scan: str | None = None) -> Decision | None:
        """Undo ``reviewer``'s latest decision not undone yet (optionally on one scan).

        Appends a decision restoring the slice's state from before the undone one and
        returns it; returns None when the reviewer has nothing left to undo. If someone
        else decided on that slice since, their decision stays in force: the undo is still
        recorded (so the next undo goes further back) but keeps the current state.
        """
        if not self.path.exists():
            return None  # nothing was ever decided; asking must not create an empty log
        with self._connect(create=True) as conn:
            conn.execute("BEGIN IMMEDIATE")  # read and append under one lock
            try:
                restored = self._undo_in(conn, reviewer, scan)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return restored

    def _undo_in(self, conn, reviewer: str, scan: str | None) -> Decision | None:
        query = ("SELECT seq, subject, session, scan, slice, source FROM decisions d"
                 " WHERE reviewer = ? AND undoes IS NULL"
                 " AND NOT EXISTS (SELECT 1 FROM decisions u WHERE u.undoes = d.seq)")
        params: list = [reviewer.strip()]
        if scan is not None:
            query += " AND scan = ?"
            params.append(scan)
        target = conn.execute(query + " ORDER BY seq DESC LIMIT 1", params).fetchone()
        if target is None:
            return None
        seq, subject, session, scan_stem, slice_index, source = target
        # Back to the slice as if the undone decision had never been made: whatever else is
        # in force then (someone's later decision, an image-level fail on another source,
        # an earlier decision) stays; nothing at all is "unreviewed".
        rows = live_rows(pd.read_sql_query(
            "SELECT * FROM decisions WHERE scan = ? AND slice = ? ORDER BY seq", conn,
            params=[scan_stem, slice_index]), also_undone=(seq,))
        kept = decision_in_force(rows, source)
        status, reason = (kept["status"], kept["reason"]) if kept is not None else (UNREVIEWED, "")
        restored = _restoring_decision(subject, session, scan_stem, slice_index, source, status,
                                       reason, reviewer, f"undo of decision {seq}")
        self._insert(conn, restored, undoes=seq)
        return restored

    # -- reading -------------------------------------------------------------------------
    def decisions(self) -> pd.DataFrame:
        """Every decision ever recorded, in commit order (``seq``), undos included."""
        with self._connect(create=False) as conn:
            if conn is None or not _has_table(conn):
                return _empty_decisions()
            table = pd.read_sql_query("SELECT * FROM decisions ORDER BY seq", conn)
        table["undoes"] = table["undoes"].astype("Int64")
        return table

    def in_force(self) -> pd.DataFrame:
        """The decisions in force, as ``score qc export`` writes them (see :func:`in_force`)."""
        return in_force(self.decisions())

    def in_force_for(self, source: str) -> pd.DataFrame:
        """The decision in force per slice for one source (see :func:`in_force_for`)."""
        return in_force_for(self.decisions(), source)

    def status_map(self, scan_stem: str, source: str) -> dict[int, tuple[str, str]]:
        """``{slice: (status, reason)}`` in force for one source of one scan.

        Image-level fails recorded on any source of the scan count (module notes). For
        :func:`score_gui.areas.areas_table` ``qc=``; one indexed query (the GUI asks after
        every key press).
        """
        with self._connect(create=False) as conn:
            if conn is None or not _has_table(conn):
                return {}
            rows = pd.read_sql_query("SELECT * FROM decisions WHERE scan = ? ORDER BY seq", conn,
                                     params=[scan_stem])
        found = {}
        for (_scan, slice_index), group in rows_by_slice(live_rows(rows)).items():
            row = decision_in_force(group, source)
            if row is not None:
                found[slice_index] = (row["status"], row["reason"])
        return dict(sorted(found.items()))

    def image_fail(self, scan_stem: str, slice_index: int) -> dict | None:
        """The image-level fail in force on one slice (recorded on any source), or None."""
        with self._connect(create=False) as conn:
            if conn is None or not _has_table(conn):
                return None
            rows = pd.read_sql_query("SELECT * FROM decisions WHERE scan = ? AND slice = ? ORDER BY seq",
                                     conn, params=[scan_stem, int(slice_index)])
        return image_fail_in_force(live_rows(rows))

    def reviewed_counts(self, source: str) -> dict[str, int]:
        """``{scan: slices with a decision in force}`` for one source (image-level fails included)."""
        table = self.in_force_for(source)
        return {str(scan): int(n) for scan, n in table.groupby("scan").size().items()}

    def export(self, path: str | Path) -> Path:
        """Write the decisions in force as TSV with :data:`COLUMNS` (atomically)."""
        return write_qc_tsv(self.in_force(), path)


def _restoring_decision(subject, session, scan, slice_index, source, status, reason, reviewer,
                        comment) -> Decision:
    # Built without __post_init__'s checks: 'unreviewed' is allowed only here.
    decision = object.__new__(Decision)
    for name, value in (("subject", subject), ("session", session or ""), ("scan", scan),
                        ("slice", int(slice_index)), ("source", source), ("status", status),
                        ("reason", reason or ""), ("reviewer", reviewer.strip()),
                        ("comment", comment), ("time", now_iso())):
        object.__setattr__(decision, name, value)
    check_decision(decision, allow_unreviewed=True)
    return decision


def _has_table(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'decisions'"
                        ).fetchone() is not None


def _empty_decisions() -> pd.DataFrame:
    table = pd.DataFrame({c: pd.Series(dtype="int64" if c in ("seq", "slice") else "object")
                          for c in ["seq"] + COLUMNS})
    table["undoes"] = pd.Series(dtype="Int64")
    return table


def is_image_level(status: str, reason: str) -> bool:
    """True for a fail that judges the image (:data:`IMAGE_REASONS`), not one source's labels.

    Examples
    --------
    >>> is_image_level("fail", "image_artifact"), is_image_level("fail", "other"), is_image_level("pass", "")
    (True, False, False)
    """
    return status == "fail" and reason in IMAGE_REASONS


def for_every_source(source: str) -> bool:
    """True for the source of a decision that applies to every source: ``*`` (or empty, older TSVs)."""
    return source in (ALL_SOURCES, "")


def _in_force_index(rows: Sequence[Mapping], source: str) -> int | None:
    own = image = None
    for index, row in enumerate(rows):
        status, reason, decided_on = row["status"], row["reason"], row["source"]
        mine = decided_on == source or for_every_source(decided_on)
        if is_image_level(status, reason):
            image = index              # judges the image: every source
        elif status == UNREVIEWED:
            own = None if mine else own  # only in hand-made TSVs: "back to unreviewed"
        else:
            if status == "pass":
                image = None           # the image is fine after all
            if mine:
                own = index
    chosen = [i for i in (own, image) if i is not None]
    return max(chosen) if chosen else None


def decision_in_force(rows: Sequence[Mapping], source: str) -> Mapping | None:
    """The decision in force for ``source`` on one slice, or None (unreviewed).

    The rule of contract section 4, in one place (see the module notes): the later of the
    source's own latest decision (recorded on it or on ``*``; image-level fails aside)
    and the image-level fail in force on the slice (recorded on any source, and not
    cleared by a later pass on any source).

    Parameters
    ----------
    rows : sequence of mappings
        Every live decision on one slice of one scan, in the order they were made, each
        with at least ``source``, ``status`` and ``reason``.
    source : str
        The label source asked about.

    Examples
    --------
    >>> rows = [dict(source="raterA", status="pass", reason=""),
    ...         dict(source="score", status="fail", reason="image_artifact")]
    >>> decision_in_force(rows, "raterA")["reason"]      # the image fails for raterA too
    'image_artifact'
    >>> rows.append(dict(source="score", status="fail", reason="segmentation_error"))
    >>> decision_in_force(rows, "raterA")["reason"]      # a segmentation fail stays with score
    'image_artifact'
    >>> rows.append(dict(source="raterB", status="pass", reason=""))
    >>> decision_in_force(rows, "raterA")["status"]      # a pass clears the image fail
    'pass'
    >>> decision_in_force(rows, "score")["reason"]
    'segmentation_error'
    >>> decision_in_force(rows, "consensus") is None    # nobody judged these labels
    True
    """
    index = _in_force_index(rows, source)
    return None if index is None else rows[index]


def image_fail_in_force(rows: Sequence[Mapping]) -> Mapping | None:
    """The image-level fail in force on one slice (rows as for :func:`decision_in_force`), or None.

    Examples
    --------
    >>> rows = [dict(source="score", status="fail", reason="poor_image_quality")]
    >>> image_fail_in_force(rows)["reason"]
    'poor_image_quality'
    >>> image_fail_in_force(rows + [dict(source="raterA", status="pass", reason="")]) is None
    True
    """
    current = None
    for row in rows:
        if is_image_level(row["status"], row["reason"]):
            current = row
        elif row["status"] == "pass":
            current = None
    return current


def live_rows(decisions: pd.DataFrame, also_undone: Iterable[int] = ()) -> list[dict]:
    """Decisions as dicts, in order, without undone decisions and the undos themselves
    (the input of :func:`decision_in_force`, after :func:`rows_by_slice`)."""
    table = decisions
    if "undoes" in table and "seq" in table:
        undone = set(pd.to_numeric(table["undoes"], errors="coerce").dropna().astype(int)) | set(also_undone)
        table = table[table["undoes"].isna() & ~table["seq"].isin(undone)]
    records = table.to_dict("records")
    for row in records:
        for column in ("source", "status", "reason"):
            value = row.get(column, "")
            row[column] = "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)
    return records


def rows_by_slice(records: list[dict]) -> dict[tuple[str, int], list[dict]]:
    """``{(scan, slice): rows}``, each list in the order of ``records``."""
    groups: dict[tuple[str, int], list[dict]] = {}
    for row in records:
        groups.setdefault((str(row["scan"]), int(row["slice"])), []).append(row)
    return groups


def in_force_for(decisions: pd.DataFrame, source: str) -> pd.DataFrame:
    """The decision in force per scan and slice for one source (:func:`decision_in_force`).

    ``decisions`` are rows in the order they were made (the log's, or a TSV's sorted by
    time). The ``source`` column of the result says where each decision was recorded:
    another source (or ``*``) for an image-level fail made while reviewing other labels.

    Examples
    --------
    >>> rows = pd.DataFrame({"scan": ["a", "a"], "slice": [1, 2], "source": ["score", "score"],
    ...                      "status": ["fail", "fail"], "reason": ["image_artifact", "other"]})
    >>> in_force_for(rows, "raterA")[["slice", "source", "reason"]].values.tolist()
    [[1, 'score', 'image_artifact']]
    """
    kept = [row for group in rows_by_slice(live_rows(decisions)).values()
            if (row := decision_in_force(group, source)) is not None]
    table = pd.DataFrame(kept, columns=list(decisions.columns))
    return _as_qc_columns(table.sort_values(["scan", "slice"], kind="stable") if len(table) else table)


def in_force(decisions: pd.DataFrame) -> pd.DataFrame:
    """The decisions in force, one row per slice and source, as ``score qc export`` writes them.

    An image-level fail in force is one row with source ``*`` (it applies to every source
    of the scan); each source whose own decision is in force on top of it (a later
    segmentation-level fail), or that has one in force on a slice without an image-level
    fail, gets its own row. Reading the result back with :func:`decision_in_force` (as
    ``score areas --qc`` does) gives every source the same decision as the log. Undone
    decisions and ``unreviewed`` slices are left out. Rows are sorted by scan, source, slice.

    Examples
    --------
    >>> rows = pd.DataFrame({"scan": ["a", "a", "a"], "source": ["score", "raterA", "score"],
    ...                      "slice": [1, 1, 2], "status": ["fail", "fail", "pass"],
    ...                      "reason": ["image_artifact", "other", ""]})
    >>> in_force(rows)[["source", "slice", "status", "reason"]].values.tolist()
    [['*', 1, 'fail', 'image_artifact'], ['raterA', 1, 'fail', 'other'], ['score', 2, 'pass', '']]
    """
    kept: list[dict] = []
    for group in rows_by_slice(live_rows(decisions)).values():
        sources = [ALL_SOURCES] + list(dict.fromkeys(r["source"] for r in group if not for_every_source(r["source"])))
        chosen: dict[int, str] = {}
        image = image_fail_in_force(group)
        if image is not None:
            chosen[next(i for i, r in enumerate(group) if r is image)] = ALL_SOURCES
        for source in sources:
            index = _in_force_index(group, source)
            if index is not None and index not in chosen:
                row = group[index]
                chosen[index] = ALL_SOURCES if for_every_source(row["source"]) else row["source"]
        for index, source in sorted(chosen.items()):
            kept.append({**group[index], "source": source})
    table = pd.DataFrame(kept, columns=list(decisions.columns))
    if len(table):
        table = table.sort_values(["scan", "source", "slice"], kind="stable")
    return _as_qc_columns(table)


def _as_qc_columns(table: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame({c: (table[c] if c in table else pd.Series([""] * len(table), index=table.index,
                                                                   dtype=object)) for c in COLUMNS})
    for column in COLUMNS:
        if column == "slice":
            out[column] = out[column].astype("int64")
        else:
            out[column] = out[column].astype(object).where(out[column].notna(), "").astype(str)
    return out.reset_index(drop=True)


def write_qc_tsv(table: pd.DataFrame, path: str | Path) -> Path:
    """Write a QC table as TSV with :data:`COLUMNS`, atomically."""
    from score_gui.atomic import atomic_path

    with atomic_path(path) as tmp:
        table.reindex(columns=COLUMNS).to_csv(tmp, sep="\t", index=False)
    return Path(path)


def read_qc_table(path: str | Path) -> pd.DataFrame:
    """Decisions in force from a study, its QC folder, the log file, or an exported TSV.

    Used by ``score areas --qc`` (through :func:`score_gui.areas.read_qc`). A TSV may hold
    several rows for one slice: the later row (by ``time``, then by position) wins.

    Raises
    ------
    ScoreInputError
        Missing path, unreadable file, missing columns, unknown status or reason.
    """
    path = Path(path)
    if not path.exists():
        raise ScoreInputError(path, "QC file or folder not found")
    if path.is_dir() or _is_sqlite(path):
        return QCLog(path).in_force()
    try:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise ScoreInputError(path, f"cannot read QC table ({exc})") from None
    missing = {"scan", "slice", "status"} - set(table.columns)
    if missing:
        raise ScoreInputError(path, f"QC table lacks columns {sorted(missing)} (expected {', '.join(COLUMNS)})")
    table = table.reindex(columns=COLUMNS, fill_value="")
    try:
        table["slice"] = table["slice"].astype(int)
    except ValueError:
        raise ScoreInputError(path, "QC table has a slice that is not a whole number") from None
    bad_status = set(table["status"]) - set(STATUSES) - {UNREVIEWED}
    if bad_status:
        raise ScoreInputError(path, f"unknown QC status {sorted(bad_status)[:3]} (pass or fail)")
    bad_reason = set(table["reason"]) - set(REASONS) - {""}
    if bad_reason:
        raise ScoreInputError(path, f"unknown QC reason {sorted(bad_reason)[:3]}; one of {', '.join(REASONS)}")
    # Later wins: by the moment (time zones compared in UTC), then by position.
    table["_when"] = pd.to_datetime(table["time"], utc=True, errors="coerce", format="ISO8601")
    table["_order"] = range(len(table))
    table = table.sort_values(["_when", "_order"], kind="stable", na_position="first")
    table = table.drop(columns=["_when", "_order"])
    return in_force(table)


def _is_sqlite(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(16) == b"SQLite format 3\x00"
