"""Cohort batch: segment every scan of a study on Dask, then compute the study's areas.

:func:`batch_job` submits one task per scan to a ``dask.distributed`` cluster: a
``LocalCluster`` by default (worker processes, one thread each, PyTorch limited to one
thread per worker so N workers use N cores), or an existing scheduler given by its address
(``tcp://host:8786``) for a real cluster. Each task loads the ensemble once per worker
process (cached), segments the scan with :func:`score_gui.inference.segment_files` into the
study's ``derivatives/score/...`` folder and returns what it wrote, or the error: **a
failed scan is reported and does not stop the others**. With ``skip_existing`` scans that
already have a ``desc-score`` dseg are skipped, so an interrupted batch resumes where it
stopped. Finally the areas of every label map of the study (QC log applied) go to
``derivatives/score/areas.csv``.

The job is a generator yielding one :class:`~score_gui.progress.Progress` per finished
scan (``extra``: segmented/skipped/failed counts) and returning a :class:`BatchResult`.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path

from score_gui.errors import ScoreInputError
from score_gui.progress import Progress

_ENSEMBLES: dict[tuple[str, str], object] = {}


@dataclass
class BatchResult:
    """What a batch did, per scan stem."""

    segmented: dict[str, dict] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    bad_input: set[str] = field(default_factory=set)
    """Stems in ``failed`` whose scan (or sidecar) was bad input rather than an unexpected error."""
    areas_failed: dict[str, str] = field(default_factory=dict)
    """Label maps left out of the study's areas table: ``{file: error}`` (always bad input)."""
    areas_path: Path | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed and not self.areas_failed

    @property
    def exit_code(self) -> int:
        """0 all went well, 2 some input was bad (contract), 1 only unexpected errors."""
        if self.ok:
            return 0
        return 2 if self.bad_input or self.areas_failed else 1


def segment_one(scan_path: str, out_dir: str, models: str, device: str = "cpu") -> dict:
    """Worker task: segment one scan; never raises (returns ``{"error": ...}`` instead).

    Runs in a Dask worker: one thread per worker, BLAS included (the cluster's workers
    share the cores), and the ensemble loaded once per worker process.
    """
    started = time.monotonic()
    try:
        from threadpoolctl import threadpool_limits

        from score_gui.inference import Ensemble, segment_files
        from score_gui.progress import drain

        key = (str(models), str(device))
        if key not in _ENSEMBLES:
            _ENSEMBLES[key] = Ensemble.load(models, device)
        with threadpool_limits(1, user_api="blas"):
            outputs = drain(segment_files([scan_path], out_dir, _ENSEMBLES[key], device, workers=1))
        written = {k: str(v) for k, v in outputs[0].items() if k != "timing"}
        return {"scan": scan_path, "written": written, "seconds": time.monotonic() - started}
    except ScoreInputError as exc:
        return {"scan": scan_path, "error": str(exc), "bad_input": True,
                "seconds": time.monotonic() - started}
    except Exception as exc:  # noqa: BLE001 - one bad scan must not stop the cohort
        last = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
        where = f" at {Path(last.filename).name}:{last.lineno}" if last else ""
        return {"scan": scan_path, "error": f"{type(exc).__name__}: {exc}{where}",
                "seconds": time.monotonic() - started}


def make_client(scheduler: str | None = None, workers: int | None = None, processes: bool = True):
    """A Dask client: to ``scheduler`` when given, else to a new LocalCluster.

    The LocalCluster has ``workers`` workers (default: cores, at most 4) with one thread
    each and no dashboard.
    """
    from dask.distributed import Client, LocalCluster

    if scheduler:
        address = check_scheduler_address(scheduler)
        try:
            return Client(address, timeout="20s")
        except (OSError, TimeoutError) as exc:
            raise ScoreInputError(scheduler, f"cannot reach the Dask scheduler ({exc})") from None
    n_workers = workers or max(1, min(os.cpu_count() or 1, 4))
    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=processes,
                           dashboard_address=None, silence_logs=40,
                           # the worker processes' native libraries start with one thread each
                           env={"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"} if processes else None)
    return Client(cluster)


_HOST_PORT_SCHEMES = ("tcp", "tls", "ws", "wss")


def check_scheduler_address(address: str) -> str:
    """The scheduler address in full (``host:port`` means ``tcp://host:port``), or bad input.

    Checked before a study is touched: a malformed address otherwise ends as a
    ``ValueError`` from deep inside Dask.

    Examples
    --------
    >>> check_scheduler_address("localhost:8786")
    'tcp://localhost:8786'
    >>> check_scheduler_address("tcp://cluster:port")
    Traceback (most recent call last):
    ...
    score_gui.errors.ScoreInputError: tcp://cluster:port: not a Dask scheduler address (port 'port' is not a number 1-65535); e.g. tcp://host:8786
    """
    from distributed.comm.registry import backends

    text = str(address).strip()
    full = text if "://" in text else f"tcp://{text}"
    scheme, _, location = full.partition("://")

    def bad(why: str) -> ScoreInputError:
        return ScoreInputError(address, f"not a Dask scheduler address ({why}); e.g. tcp://host:8786")

    if scheme not in backends:
        raise bad(f"unknown protocol {scheme!r}; one of {', '.join(sorted(backends))}")
    if scheme in _HOST_PORT_SCHEMES:
        host, sep, port = location.rpartition(":")
        if not sep or not host.strip("[]"):
            raise bad("host:port expected")
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            raise bad(f"port {port!r} is not a number 1-65535")
    elif not location:
        raise bad("nothing after the protocol")
    return full


def check_batch_inputs(scheduler: str | None, models: str, device: str) -> str:
    """Device, models and scheduler address checked once, before any work; returns the model folder.

    Inside the workers each of these would fail once per scan, after the cluster started.
    Loading the ensemble here also proves every checkpoint readable on ``device``.
    """
    from score_gui.inference import Ensemble, check_device, resolve_models

    if scheduler:
        check_scheduler_address(scheduler)
    check_device(device)
    Ensemble.load(models, device)
    return str(resolve_models(models))


def batch_job(study_root, scheduler: str | None = None, workers: int | None = None,
              models: str = "default", device: str = "cpu", skip_existing: bool = False,
              processes: bool = True, client=None) -> Generator[Progress, None, BatchResult]:
    """Segment every scan of a study on Dask and write the study's areas (see module notes).

    Parameters
    ----------
    study_root : path
        The study folder.
    scheduler : str, optional
        Address of a running Dask scheduler; default: a LocalCluster.
    workers : int, optional
        LocalCluster workers (one thread each).
    models : str
        ``default`` or a model folder (checked before anything is submitted).
    skip_existing : bool
        Skip scans that already have ``<stem>_desc-score_dseg.nii.gz`` (resume).
    processes : bool
        LocalCluster with worker processes (default) or threads (tests).
    client : dask.distributed.Client, optional
        Use this client instead of making one (it is not closed).
    """
    from dask.distributed import as_completed

    from score_gui.areas import read_qc, study_areas, write_areas_table
    from score_gui.study import Study

    started = time.monotonic()
    study = Study.open(study_root)
    if not study.scans:
        raise ScoreInputError(study.root, "no scans found in the study (sub-*/[ses-*/]anat/*.nii.gz)")
    model_dir = check_batch_inputs(scheduler, models, device)
    result = BatchResult()
    todo = []
    for entry in study.scans:
        if skip_existing and entry.dseg_path("score").exists():
            result.skipped.append(entry.stem)
        else:
            todo.append(entry)
    total = len(study.scans)

    def progress(message: str) -> Progress:
        done = len(result.segmented) + len(result.skipped) + len(result.failed)
        return Progress(done, total, message, started, {"segmented": len(result.segmented),
                                                        "skipped": len(result.skipped),
                                                        "failed": len(result.failed)})

    if result.skipped:
        yield progress(f"skipped {len(result.skipped)} scans already segmented")
    if todo:
        own_client = client is None
        client = client or make_client(scheduler, workers, processes)
        try:
            futures = [client.submit(segment_one, str(e.path), str(e.derivatives_dir), model_dir, device,
                                     key=f"segment-{e.stem}-{time.time_ns()}", pure=False) for e in todo]
            for future in as_completed(futures):
                outcome = future.result()
                stem = Path(outcome["scan"]).name.split(".nii")[0]
                if "error" in outcome:
                    result.failed[stem] = outcome["error"]
                    if outcome.get("bad_input"):
                        result.bad_input.add(stem)
                    yield progress(f"{stem} FAILED: {outcome['error']}")
                else:
                    result.segmented[stem] = outcome
                    yield progress(f"{stem} segmented in {outcome['seconds']:.1f} s")
        finally:
            if own_client:
                cluster = getattr(client, "cluster", None)
                client.close()
                if cluster is not None:
                    cluster.close()
    qc = read_qc(study.qc_dir) if study.qc_dir.exists() else None
    # One rule for every bad file: report it, keep the rest (a bad sidecar must not cost the table).
    table = study_areas(study, qc=qc, errors=result.areas_failed)
    if len(table):
        result.areas_path = write_areas_table(table, study.areas_csv)
    result.seconds = time.monotonic() - started
    return result
