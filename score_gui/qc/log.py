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
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import pandas as pd

from score_gui.errors import ScoreInputError

REASONS = ("image_artifact", "posterior_arch_contact", "lesion_misclassified",
           "poor_image_quality", "segmentation_error", "other")
"""Why a slice failed (contract section 4), in the order of the QC widget's keys 1-6."""

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
        key = [scan_stem, source, slice_index]
        # Someone's later decision on this slice that nobody undid keeps the slice as it is.
        overridden = conn.execute(
            "SELECT 1 FROM decisions d WHERE scan = ? AND source = ? AND slice = ? AND seq > ?"
            " AND undoes IS NULL AND NOT EXISTS (SELECT 1 FROM decisions u WHERE u.undoes = d.seq)",
            key + [seq]).fetchone()
        if overridden is None:  # go back to whatever was in force just before it
            before = conn.execute("SELECT status, reason FROM decisions WHERE scan = ? AND source = ?"
                                  " AND slice = ? AND seq < ? ORDER BY seq DESC LIMIT 1",
                                  key + [seq]).fetchone()
            status, reason = before if before else (UNREVIEWED, "")
        else:
            status, reason = conn.execute("SELECT status, reason FROM decisions WHERE scan = ? AND"
                                          " source = ? AND slice = ? ORDER BY seq DESC LIMIT 1",
                                          key).fetchone()
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
        """The decision in force per scan, source and slice (the latest; unreviewed dropped)."""
        return in_force(self.decisions())

    def status_map(self, scan_stem: str, source: str) -> dict[int, tuple[str, str]]:
        """``{slice: (status, reason)}`` for :func:`score_gui.areas.areas_table` ``qc=``.

        One indexed query (the GUI asks after every key press).
        """
        with self._connect(create=False) as conn:
            if conn is None or not _has_table(conn):
                return {}
            rows = conn.execute(
                "SELECT slice, status, reason FROM decisions d WHERE scan = ? AND source = ? AND seq ="
                " (SELECT MAX(seq) FROM decisions l WHERE l.scan = d.scan AND l.source = d.source"
                " AND l.slice = d.slice) ORDER BY slice", [scan_stem, source]).fetchall()
        return {int(s): (status, reason) for s, status, reason in rows if status != UNREVIEWED}

    def reviewed_counts(self, source: str) -> dict[str, int]:
        """``{scan: slices with a decision in force}`` for one source."""
        with self._connect(create=False) as conn:
            if conn is None or not _has_table(conn):
                return {}
            rows = conn.execute(
                "SELECT scan, COUNT(*) FROM decisions d WHERE source = ? AND status != ? AND seq ="
                " (SELECT MAX(seq) FROM decisions l WHERE l.scan = d.scan AND l.source = d.source"
                " AND l.slice = d.slice) GROUP BY scan", [source, UNREVIEWED]).fetchall()
        return {scan: int(n) for scan, n in rows}

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


def in_force(decisions: pd.DataFrame) -> pd.DataFrame:
    """Keep the last row per ``(scan, source, slice)`` (rows in order), drop ``unreviewed``.

    Examples
    --------
    >>> rows = pd.DataFrame({"scan": ["a", "a"], "source": ["score"] * 2, "slice": [1, 1],
    ...                      "status": ["pass", "fail"], "reason": ["", "other"]})
    >>> in_force(rows)[["status", "reason"]].values.tolist()
    [['fail', 'other']]
    """
    latest = decisions.drop_duplicates(["scan", "source", "slice"], keep="last")
    latest = latest[latest["status"] != UNREVIEWED]
    latest = latest.sort_values(["scan", "source", "slice"], kind="stable")
    return _as_qc_columns(latest)


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
