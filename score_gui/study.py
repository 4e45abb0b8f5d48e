"""Study folders (contract section 5): subjects, sessions, scans and their derivatives.

::

    STUDY/sub-<id>/[ses-<id>/]anat/sub-<id>[_ses-<id>]_amira.nii.gz (+ .json)
    STUDY/derivatives/score/sub-<id>/[ses-<id>/]anat/<stem>_desc-<who>_dseg.nii.gz
    STUDY/derivatives/score/qc          (the QC log)
    STUDY/derivatives/score/areas.csv

Examples
--------
>>> import tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> (root / "sub-01" / "anat").mkdir(parents=True)
>>> _ = (root / "sub-01" / "anat" / "sub-01_amira.nii.gz").write_bytes(b"")
>>> study = Study.open(root)
>>> [s.stem for s in study.scans], study.subjects()
(['sub-01_amira'], ['01'])
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from score_gui.errors import ScoreInputError
from score_gui.naming import label_file_name, parse_label_name
from score_gui.scan import NIFTI_SUFFIXES, bids_entities, nifti_stem

DERIVATIVES = Path("derivatives") / "score"


@dataclass(frozen=True)
class ScanEntry:
    """One scan of a study and where its derivatives live."""

    study_root: Path
    path: Path

    @property
    def stem(self) -> str:
        return nifti_stem(self.path)

    @property
    def subject(self) -> str:
        return bids_entities(self.path).get("sub", self.stem)

    @property
    def session(self) -> str | None:
        return bids_entities(self.path).get("ses")

    @property
    def derivatives_dir(self) -> Path:
        """``derivatives/score/<same relative folder as the scan>``."""
        relative = self.path.parent.relative_to(self.study_root)
        return self.study_root / DERIVATIVES / relative

    def dseg_path(self, who: str) -> Path:
        return self.derivatives_dir / label_file_name(self.stem, who, "dseg")

    def lesion_path(self, who: str) -> Path:
        return self.derivatives_dir / label_file_name(self.stem, who, "lesion")

    def label_sources(self) -> list[str]:
        """Every ``<who>`` with a dseg for this scan, sorted (score, raters, consensus, ...)."""
        folder = self.derivatives_dir
        if not folder.is_dir():
            return []
        found = []
        for file in folder.glob(f"{self.stem}_desc-*_dseg.nii*"):
            name = parse_label_name(file)
            if name.source and name.kind == "dseg" and name.stem == self.stem:
                found.append(name.source)
        return sorted(found)

    def raters(self) -> list[str]:
        """Rater IDs with labels for this scan (``desc-rater<ID>``)."""
        return [w[len("rater"):] for w in self.label_sources() if w.startswith("rater") and len(w) > 5]


@dataclass
class Study:
    """A BIDS-like study folder."""

    root: Path
    scans: list[ScanEntry]

    @classmethod
    def open(cls, root: str | Path) -> "Study":
        root = Path(root).resolve()
        if not root.exists():
            raise ScoreInputError(root, "study folder not found")
        if not root.is_dir():
            raise ScoreInputError(root, "is not a folder (expected a study folder)")
        study = cls(root=root, scans=discover_scans(root))
        study.recover_interrupted_writes()
        return study

    def recover_interrupted_writes(self) -> None:
        """Make result sets whole that a killed ``score segment`` left half replaced.

        Cheap when there is nothing to do (one listing per derivatives folder); see
        :func:`score_gui.filesets.recover_folder`.
        """
        from score_gui.filesets import recover_folder

        for folder in dict.fromkeys(entry.derivatives_dir for entry in self.scans):
            if folder.is_dir():
                recover_folder(folder)

    @property
    def derivatives(self) -> Path:
        return self.root / DERIVATIVES

    @property
    def qc_dir(self) -> Path:
        return self.derivatives / "qc"

    @property
    def areas_csv(self) -> Path:
        return self.derivatives / "areas.csv"

    def subjects(self) -> list[str]:
        return sorted({s.subject for s in self.scans})

    def sessions(self, subject: str) -> list[str | None]:
        return sorted({s.session for s in self.scans if s.subject == subject}, key=lambda v: v or "")

    def find(self, stem: str) -> ScanEntry:
        """The scan with this stem (file name without .nii.gz)."""
        for entry in self.scans:
            if entry.stem == stem or entry.path.name == stem:
                return entry
        raise ScoreInputError(self.root, f"no scan named {stem!r} in the study")


def is_scan_file(path: Path) -> bool:
    name = path.name
    return name.endswith(NIFTI_SUFFIXES) and "_desc-" not in name and not name.startswith(".")


def discover_scans(root: Path) -> list[ScanEntry]:
    """All scans under ``sub-*`` folders (derivatives and hidden files excluded), sorted."""
    found = []
    for subject_dir in sorted(root.glob("sub-*")):
        if not subject_dir.is_dir():
            continue
        for file in sorted(subject_dir.rglob("*.nii*")):
            if is_scan_file(file) and ".history" not in file.parts:
                found.append(ScanEntry(root, file))
    return found


def scan_path(root: str | Path, subject: str, session: str | None = None, suffix: str = "amira") -> Path:
    """Where a scan goes in a study: ``sub-<id>/[ses-<id>/]anat/sub-<id>[_ses-<id>]_<suffix>.nii.gz``."""
    folder = Path(root) / f"sub-{subject}"
    name = f"sub-{subject}"
    if session:
        folder = folder / f"ses-{session}"
        name += f"_ses-{session}"
    return folder / "anat" / f"{name}_{suffix}.nii.gz"
