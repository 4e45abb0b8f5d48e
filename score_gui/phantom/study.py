"""Synthetic scans, demo files and whole demo studies with true and rater labels.

Examples
--------
>>> scan, truth, info = make_scan("ms", seed=2, n_slices=4, shape=(64, 64))
>>> scan.images.shape, truth.dseg.shape, scan.levels
((4, 8, 64, 64), (4, 64, 64), ['C2', 'C3', 'C4', 'C5'])
>>> len(info["degraded"])
4
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zlib
from pathlib import Path

import numpy as np

from score_gui.labels import LabelMap, write_labels
from score_gui.phantom.anatomy import SLICE_SPACING_MM, Subject, random_subject
from score_gui.phantom.raters import simulate_rater
from score_gui.phantom.render import make_slice
from score_gui.scan import Scan, write_scan
from score_gui.study import ScanEntry, Study, scan_path

DEMO_STUDY_NAME = "demo-study"
DEMO_STUDY_VERSION = 3
"""Bump when the demo study changes enough that a cached one should be regenerated
(2: with the default ensemble's ``desc-score`` labels; 3: ``sub-ms01`` followed over 3 sessions)."""

DEMO_SESSIONS = {"ms01": 3}
"""Sessions per subject of the demo study beyond :func:`make_study`'s defaults: one MS patient
followed up three times, so the longitudinal view has a series to show."""


def _pixel_pair(pixel_size) -> tuple[float, float]:
    if np.ndim(pixel_size) == 0:
        return (float(pixel_size), float(pixel_size))
    return (float(pixel_size[0]), float(pixel_size[1]))


def scan_of_subject(subject: Subject, rng: np.random.Generator, *, n_slices: int = 12,
                    shape=(192, 192), pixel_size=0.67, contrast: str = "amira",
                    reposition=(0.0, 0.0, 0.0), subject_id: str | None = None,
                    session: str | None = None) -> tuple[Scan, LabelMap, dict]:
    """Image one subject: ``n_slices`` slices 8 mm apart over C2-C5 (a scan and its truth)."""
    pixel = _pixel_pair(pixel_size)
    slices = []
    for index in range(n_slices):
        level = subject.level_of(index, n_slices)
        slices.append(make_slice(rng, level=level, subject=subject, shape=shape, pixel_size=pixel,
                                 contrast=contrast, z_mm=index * SLICE_SPACING_MM,
                                 reposition=reposition))
    levels = [s.info["level"] for s in slices]
    scan = Scan.from_arrays(np.stack([s.images for s in slices]), pixel_spacing=pixel,
                            slice_thickness=SLICE_SPACING_MM, levels=levels,
                            subject=subject_id, session=session)
    truth = LabelMap(dseg=np.stack([s.dseg for s in slices]),
                     lesion=np.stack([s.lesion for s in slices]), who="truth")
    info = {
        "kind": subject.kind,
        "degraded": [s.info["degraded"] for s in slices],
        "slices": [s.info for s in slices],
        "flip_angle_deg": round(subject.signal.flip_angle_deg, 2),
        "cycle_ms": round(subject.signal.cycle_ms, 1),
        "snr_gm": round(subject.snr_gm, 2),
        "n_plaques": len(subject.plaques),
    }
    return scan, truth, info


def make_scan(kind: str = "hc", seed: int = 0, n_slices: int = 12, shape=(192, 192),
              pixel_size=0.67, contrast: str = "amira") -> tuple[Scan, LabelMap, dict]:
    """A synthetic scan of a new subject, fully determined by ``kind`` and ``seed``.

    Returns
    -------
    scan : Scan
        Images ``[S, T, H, W]`` with levels C2..C5 spread over the slices and
        ``subject = "<kind><seed:02d>"``.
    truth : LabelMap
        True dseg and lesion map (``who = "truth"``).
    info : dict
        ``degraded``: per slice None or the reason (``motion``, ``arch_contact``, ``low_snr``);
        ``slices``: per-slice details; sequence and subject parameters.
    """
    rng = np.random.default_rng([int(seed), zlib.crc32(kind.encode())])
    subject = random_subject(rng, kind, n_slices=n_slices)
    return scan_of_subject(subject, rng, n_slices=n_slices, shape=shape, pixel_size=pixel_size,
                           contrast=contrast, subject_id=f"{kind}{int(seed):02d}")


def _scan_metadata(info: dict) -> dict:
    return {"SimulatedDegradation": info["degraded"], "SimulatedKind": info["kind"],
            "SimulatedFlipAngle": info["flip_angle_deg"], "SimulatedCycleTime": info["cycle_ms"],
            "SimulatedLesions": [s["lesions"] for s in info["slices"]]}


def _write_scan_and_labels(scan: Scan, truth: LabelMap, info: dict, path: Path,
                           labels_dir: Path) -> dict[str, Path]:
    scan.path = path
    written = {"scan": write_scan(scan, path, metadata=_scan_metadata(info))}
    written["sidecar"] = path.with_name(scan.stem + ".json")
    labels = write_labels(scan, truth, labels_dir, "truth", keep_previous=False)
    written["dseg"], written["lesion"] = labels["dseg"], labels["lesion"]
    return written


def write_demo(outdir, kind: str = "ms", seed: int = 1, n_slices: int = 12,
               contrast: str = "amira", pixel_size=0.67, shape=(192, 192)) -> dict[str, Path]:
    """Write a synthetic scan, its sidecar and its true labels into ``outdir``.

    Files: ``sub-<kind><seed:02d>_amira.nii.gz`` (+ ``.json`` with InversionTimes,
    VertebralLevels, SubjectID and SimulatedDegradation), ``<stem>_desc-truth_dseg.nii.gz``
    and ``<stem>_desc-truth_lesion.nii.gz`` (T2*w scans are named ``_T2starw``).

    Returns
    -------
    dict
        ``scan``, ``sidecar``, ``dseg``, ``lesion`` -> path.
    """
    scan, truth, info = make_scan(kind, seed, n_slices, shape, pixel_size, contrast)
    suffix = "amira" if contrast == "amira" else "T2starw"
    path = Path(outdir) / f"sub-{kind}{int(seed):02d}_{suffix}.nii.gz"
    return _write_scan_and_labels(scan, truth, info, path, Path(outdir))


def make_study(root, n_hc: int = 3, n_ms: int = 3, seed: int = 0, n_slices: int = 12,
               raters=("A", "B", "C"), shape=(192, 192), pixel_size=0.67, models=None,
               sessions: dict[str, int] | None = None) -> Study:
    """Write a BIDS-like study (contract section 5) with true and simulated rater labels.

    Healthy controls ``sub-hc01..`` have two sessions (``ses-1``, ``ses-2``: same anatomy,
    new noise and a small repositioning, for scan-rescan analyses); MS patients
    ``sub-ms01..`` have one. ``sessions`` gives other counts per subject (``{"ms01": 3}``:
    ``ses-1..ses-3``, rescans of the same anatomy; the phantom has no atrophy, so a follow-up
    shows only scan-rescan variation). Every scan gets ``desc-truth`` labels and one
    ``desc-rater<ID>`` label set per rater in ``derivatives/score``. A
    ``participants.tsv`` gives each subject's group. With ``models`` (``"default"``, a
    model folder or an :class:`~score_gui.inference.Ensemble`) every scan is also
    segmented by that ensemble (``desc-score``, as ``score segment`` writes it), so QC and
    export have the automatic result to show (about 5 s per scan on a CPU).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rows = ["participant_id\tgroup"]
    for kind, count in (("hc", n_hc), ("ms", n_ms)):
        for number in range(1, count + 1):
            subject_id = f"{kind}{number:02d}"
            rng = np.random.default_rng([int(seed), number, zlib.crc32(kind.encode())])
            subject = random_subject(rng, kind, n_slices=n_slices)
            count_sessions = (sessions or {}).get(subject_id, 2 if kind == "hc" else 1)
            sessions_of = tuple(str(k) for k in range(1, count_sessions + 1)) if count_sessions > 1 else (None,)
            for session in sessions_of:
                reposition = (0.0, 0.0, 0.0) if session in (None, "1") else (
                    float(rng.normal(0, 1.0)), float(rng.normal(0, 1.0)), float(rng.normal(0, 2.0)))
                scan, truth, info = scan_of_subject(
                    subject, rng, n_slices=n_slices, shape=shape, pixel_size=pixel_size,
                    reposition=reposition, subject_id=subject_id, session=session)
                path = scan_path(root, subject_id, session)
                entry = ScanEntry(root, path)
                _write_scan_and_labels(scan, truth, info, path, entry.derivatives_dir)
                for rater in raters:
                    dseg, lesion = simulate_rater(truth.dseg, truth.lesion, rater, rng)
                    write_labels(scan, LabelMap(dseg, lesion, who=f"rater{rater}"),
                                 entry.derivatives_dir, f"rater{rater}", keep_previous=False)
            rows.append(f"sub-{subject_id}\t{kind}")
    (root / "participants.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    study = Study.open(root)
    if models is not None:
        segment_study(study, models)
    return study


def segment_study(study: Study, models="default") -> None:
    """Write the ensemble's ``desc-score`` result for every scan of ``study`` (real models)."""
    from score_gui.inference import Ensemble, segment_scan
    from score_gui.outputs import write_result
    from score_gui.progress import drain
    from score_gui.scan import read_scan

    ensemble = models if isinstance(models, Ensemble) else Ensemble.load(models)
    for entry in study.scans:
        scan = read_scan(entry.path)
        write_result(scan, drain(segment_scan(scan, ensemble)), entry.derivatives_dir)


def data_home() -> Path:
    """The user's SCORE data folder: ``$SCORE_HOME`` or ``~/.local/share/score-studio``."""
    env = os.environ.get("SCORE_HOME")
    return Path(env).expanduser() if env else Path.home() / ".local" / "share" / "score-studio"


def ensure_demo_study(root=None) -> Path:
    """The demo study, generated on first use (about a minute: the default ensemble
    segments every scan) and reused afterwards; a cache from an older
    :data:`DEMO_STUDY_VERSION` is rebuilt.

    It is built in a temporary folder beside the target and renamed into place, so an
    interrupted run never leaves half a study behind.
    """
    parent = Path(root) if root is not None else data_home()
    target = parent / DEMO_STUDY_NAME
    marker = target / ".phantom-version"
    if marker.exists() and marker.read_text().strip() == str(DEMO_STUDY_VERSION):
        return target
    parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{DEMO_STUDY_NAME}-", dir=parent))
    try:
        make_study(building, models="default", sessions=DEMO_SESSIONS)
        (building / ".phantom-version").write_text(f"{DEMO_STUDY_VERSION}\n")
        building.chmod(0o755)  # mkdtemp made it private
        if target.exists():  # an older phantom version: replace it
            stale = parent / f".{DEMO_STUDY_NAME}-old-{os.getpid()}"
            os.replace(target, stale)
            shutil.rmtree(stale, ignore_errors=True)
        os.replace(building, target)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return target
