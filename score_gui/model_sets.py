"""Named model sets of a study: ensembles trained on the study's own labels, with their scores.

A model set lives in ``STUDY/derivatives/score/models/<name>/`` and is a model folder like
``resources/models/default`` (``ensemble.json`` + member checkpoints with their metadata,
usable with ``score segment --models``), plus:

- ``metrics.csv``: the out-of-fold metrics of the grouped cross-validation that made it
  (per scan, slice and compartment; mean rows with ``slice = mean``; a ``source`` column
  when several label sources were learnt);
- ``model_set.json``: what it learnt and how well: name, label sources, folds, iterations,
  starting model, time, mean out-of-fold Dice and HD95 per compartment, and the same
  numbers of the model it would replace (:func:`baseline_metrics`).

:func:`train_model_set` trains one (one cross-validation per label source: a rater, several
raters, or their consensus; each source's fold models are members of the ensemble) into
a hidden staging folder and swaps it in whole (:mod:`score_gui.filesets`): a reader sees
the old set or the complete new one, never a half-written one; an interrupted run stays
in ``.<name>.training/`` and resumes. :func:`list_model_sets` lists a study's sets with
their metrics for the GUI's model choice and the Train panel.

Examples
--------
>>> import tempfile
>>> root = Path(tempfile.mkdtemp())
>>> list_model_sets(root)
[]
>>> set_path(root, "lab-2024").relative_to(root).as_posix()
'derivatives/score/models/lab-2024'
>>> check_set_name("default")
Traceback (most recent call last):
...
score_gui.errors.ScoreInputError: default: model set name is reserved (default, none); choose another
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from score_gui.errors import ScoreInputError
from score_gui.progress import Progress, forward
from score_gui.study import DERIVATIVES, Study

MODELS_DIR = DERIVATIVES / "models"
SET_FILE = "model_set.json"
METRICS_FILE = "metrics.csv"
ENSEMBLE_FILE = "ensemble.json"
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}"
RESERVED_NAMES = ("default", "none")
DEFAULT_BASELINE = "default"
SOURCE_SPAN = 1000
"""Steps of the overall progress bar per label source trained (and for the comparison)."""


def _root(study) -> Path:
    return Path(study.root if isinstance(study, Study) else study)


def models_root(study) -> Path:
    """``STUDY/derivatives/score/models``."""
    return _root(study) / MODELS_DIR


def check_set_name(name: str) -> str:
    """A model set name: letters, digits, ``-`` and ``_`` (up to 64), not a reserved word."""
    name = str(name or "")
    if name.lower() in RESERVED_NAMES:
        raise ScoreInputError(name, f"model set name is reserved ({', '.join(RESERVED_NAMES)}); choose another")
    if not re.fullmatch(NAME_PATTERN, name):
        raise ScoreInputError(name or "''", "a model set name takes letters, digits, '-' and '_' "
                                            "(at most 64, starting with a letter or digit)")
    return name


def set_path(study, name: str) -> Path:
    """Where the model set ``name`` of a study lives."""
    return models_root(study) / check_set_name(name)


@dataclass
class ModelSet:
    """A study's model set as listed: its folder and its ``model_set.json``.

    Attributes
    ----------
    name : str
    path : Path
        The model folder (``ensemble.json``); give it to ``score segment --models``.
    info : dict
        ``model_set.json`` (or what ``metrics.csv`` tells for a folder without one).
    """

    name: str
    path: Path
    info: dict = field(default_factory=dict)

    @property
    def metrics(self) -> dict[str, dict[str, float]]:
        """compartment -> ``{"dice", "hd95_mm"}``: mean out-of-fold scores."""
        return dict(self.info.get("out_of_fold") or {})

    def dice(self) -> dict[str, float]:
        """compartment -> mean out-of-fold Dice."""
        return {name: values.get("dice") for name, values in self.metrics.items()}

    @property
    def sources(self) -> list[str]:
        """Label sources learnt (``raterA``, ``consensus``)."""
        return list(self.info.get("sources") or [])

    @property
    def created(self) -> str:
        return str(self.info.get("created") or "")

    @property
    def baseline(self) -> dict:
        """``{"name", "metrics", "how"}`` of the model this set was compared with (may be empty)."""
        return dict(self.info.get("compared_with") or {})

    def comparison(self) -> list[dict]:
        """Rows ``compartment, dice, baseline_dice, difference`` (see :func:`compare`)."""
        return compare(self.metrics, self.baseline.get("metrics") or {})

    def label(self) -> str:
        """``"lab-2024 (raterA, GM 0.81)"``: a short description for menus."""
        gm = self.dice().get("gm")
        parts = [", ".join(self.sources)] if self.sources else []
        if gm is not None and np.isfinite(gm):
            parts.append(f"GM {gm:.2f}")
        return f"{self.name} ({'; '.join(parts)})" if parts else self.name


def read_model_set(path) -> ModelSet:
    """The model set in folder ``path`` (``ensemble.json`` required)."""
    path = Path(path)
    if not (path / ENSEMBLE_FILE).is_file():
        raise ScoreInputError(path, f"no {ENSEMBLE_FILE} here: not a model set")
    info: dict = {}
    side = path / SET_FILE
    if side.is_file():
        try:
            info = json.loads(side.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ScoreInputError(side, f"invalid JSON ({exc})") from None
        if not isinstance(info, dict):
            raise ScoreInputError(side, "must hold a JSON object")
    elif (path / METRICS_FILE).is_file():  # trained with 'score train -o' into the study
        info = {"out_of_fold": mean_scores(_read_csv(path / METRICS_FILE))}
    return ModelSet(name=path.name, path=path, info=info)


def _read_csv(path: Path):
    import pandas as pd

    try:
        return pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise ScoreInputError(path, f"cannot read the metrics table ({exc})") from None


def list_model_sets(study) -> list[ModelSet]:
    """The study's model sets, oldest first; an interrupted swap is finished first.

    Folders being trained (``.<name>.training``), earlier versions (``.history``) and
    folders without ``ensemble.json`` are not listed; see :func:`interrupted_runs`.
    """
    from score_gui.filesets import TRAINING_SUFFIX, recover_model_swap

    folder = models_root(study)
    if not folder.is_dir():
        return []
    for staging in folder.glob(f".*{TRAINING_SUFFIX}"):
        try:
            recover_model_swap(folder / staging.name[1:-len(TRAINING_SUFFIX)])
        except ScoreInputError:
            continue  # read-only share: list what is there
    found = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not (path / ENSEMBLE_FILE).is_file():
            continue
        try:
            found.append(read_model_set(path))
        except ScoreInputError:
            found.append(ModelSet(path.name, path, {}))  # usable, its scores unreadable
    return sorted(found, key=lambda s: (s.created, s.name))


def interrupted_runs(study) -> list[str]:
    """Names of model sets whose training was interrupted (resumable with ``resume=True``)."""
    from score_gui.filesets import COMPLETE_MARKER, TRAINING_SUFFIX

    folder = models_root(study)
    if not folder.is_dir():
        return []
    return sorted(p.name[1:-len(TRAINING_SUFFIX)] for p in folder.glob(f".*{TRAINING_SUFFIX}")
                  if p.is_dir() and not (p / COMPLETE_MARKER).exists())


def find_model_set(study, name: str) -> ModelSet | None:
    """The study's set called ``name``, or None."""
    return next((s for s in list_model_sets(study) if s.name == name), None)


# ---------------------------------------------------------------------------------------
# Scores
# ---------------------------------------------------------------------------------------

def mean_scores(table) -> dict[str, dict[str, float]]:
    """compartment -> mean ``dice`` and ``hd95_mm`` over a metrics table's per-slice rows.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"compartment": ["gm", "gm", "gm"], "slice": [0, 1, "mean"],
    ...                   "dice": [0.6, 0.8, 0.7], "hd95_mm": [1.0, float("nan"), 1.0]})
    >>> mean_scores(t)
    {'gm': {'dice': 0.7, 'hd95_mm': 1.0}}
    """
    if table is None or len(table) == 0:
        return {}
    rows = table[table["slice"].astype(str) != "mean"]
    out = {}
    for name in dict.fromkeys(rows["compartment"]):
        group = rows[rows["compartment"] == name]
        out[str(name)] = {column: (round(float(np.nanmean(group[column])), 4) if group[column].notna().any()
                                   else float("nan"))
                          for column in ("dice", "hd95_mm")}
    return out


def compare(new: dict, old: dict) -> list[dict]:
    """Rows ``compartment, dice, baseline_dice, difference`` (new minus old; NaN when missing).

    Examples
    --------
    >>> compare({"gm": {"dice": 0.8}, "cord": {"dice": 0.9}}, {"gm": {"dice": 0.7}})
    [{'compartment': 'cord', 'dice': 0.9, 'baseline_dice': nan, 'difference': nan}, {'compartment': 'gm', 'dice': 0.8, 'baseline_dice': 0.7, 'difference': 0.1}]
    """
    from score_gui.metrics import COMPARTMENTS

    order = [c for c in COMPARTMENTS if c in new or c in old] + sorted((set(new) | set(old)) - set(COMPARTMENTS))
    rows = []
    for name in order:
        a = (new.get(name) or {}).get("dice", float("nan"))
        b = (old.get(name) or {}).get("dice", float("nan"))
        a = float("nan") if a is None else float(a)
        b = float("nan") if b is None else float(b)
        rows.append({"compartment": name, "dice": a, "baseline_dice": b,
                     "difference": round(a - b, 4) if np.isfinite(a) and np.isfinite(b) else float("nan")})
    return rows


def baseline_for(study, init) -> str:
    """The model a new set would replace: the study's set it starts from, else ``default``."""
    if init is not None and isinstance(init, str) and find_model_set(study, init) is not None:
        return init
    if init is not None and Path(str(init)).parent == models_root(study) and Path(str(init)).is_dir():
        return Path(str(init)).name
    return DEFAULT_BASELINE


def baseline_metrics(study, baseline: str, sources: Sequence[str]) -> Generator[Progress, None, dict]:
    """The scores of the model a new set would replace, on the same footing.

    A study's own model set (``baseline`` names one): its stored out-of-fold scores (no
    work; scoring it on the labels it learnt from would flatter it). Any other model
    folder (``default``): it never saw this study's labels, so all of them are out of
    sample: every scan the ``sources`` labelled is segmented (as ``score segment`` does)
    and scored on its reviewed slices. Returns ``{"name", "how", "metrics"}``.
    """
    import pandas as pd

    from score_gui.inference import Ensemble, segment_scan
    from score_gui.labels import read_labels
    from score_gui.metrics import compare_labels
    from score_gui.scan import read_scan
    from score_gui.training.data import rater_scans, rater_who

    study = study if isinstance(study, Study) else Study.open(study)
    own = find_model_set(study, baseline) if baseline != DEFAULT_BASELINE else None
    if own is not None:
        return {"name": baseline, "how": "its own out-of-fold scores", "metrics": own.metrics}
    ensemble = Ensemble.load(baseline)
    jobs = [(entry, rater_who(source)) for source in sources for entry in rater_scans(study, source)]
    started = time.monotonic()
    tables = []
    for i, (entry, who) in enumerate(jobs):
        scan = read_scan(entry.path)
        result = yield from forward(segment_scan(scan, ensemble), base=i * SOURCE_SPAN,
                                    total=len(jobs) * SOURCE_SPAN, span=SOURCE_SPAN, started=started,
                                    message=lambda m, stem=entry.stem: f"scoring {baseline} on {stem}: {m}")
        truth = read_labels(entry.dseg_path(who), scan)
        predicted = result.consensus
        compared = set(truth.labelled) & set(predicted.labelled)
        tables.append(compare_labels(predicted.dseg, truth.dseg, scan.pixel_spacing,
                                     pred_lesion=predicted.lesion,
                                     truth_lesion=truth.lesion if "lesion" in compared else None,
                                     labelled=compared, slices=np.flatnonzero(truth.reviewed_slices())))
    table = pd.concat(tables, ignore_index=True) if tables else None
    return {"name": baseline, "how": f"segmented {len(jobs)} labelled scan(s) of the study",
            "metrics": mean_scores(table)}


# ---------------------------------------------------------------------------------------
# Training a set
# ---------------------------------------------------------------------------------------

def resolve_start(study, init):
    """``init`` as :func:`score_gui.training.loop.cross_validate` takes it: a study set's
    name becomes its folder; ``none`` becomes None; ``default``, other names and folders pass."""
    if init is None or str(init).lower() == "none":
        return None
    if str(init).lower() == "default" or os.sep in str(init):
        return init
    own = find_model_set(study, str(init))
    return own.path if own is not None else init


def train_model_set(study, name: str, sources: Sequence[str], *, folds: int = 3,
                    iterations: int | None = None, init="default", resume: bool = False,
                    compare_with: str | None = None, fixed_folds: dict | None = None,
                    extra_info: dict | None = None, **cross_validate_args
                    ) -> Generator[Progress, None, ModelSet]:
    """Train the study's model set ``name`` on the labels of ``sources``; return it.

    Parameters
    ----------
    study : Study or path
    name : str
        The set's name (:func:`check_set_name`); an existing set of that name is replaced
        (kept in ``models/.history``) once the new one is complete.
    sources : list of str
        Raters (``A`` or ``raterA``) or ``consensus``: one grouped cross-validation each
        (:func:`score_gui.training.loop.cross_validate`), whose fold models all become
        members of the set's ensemble.
    folds, iterations, init
        As :func:`~score_gui.training.loop.cross_validate`; ``init`` may also name one of
        the study's sets, or map each source to its own start (a retrained set's members
        start from the same source's members).
    resume : bool
        Continue an interrupted run of this name (finished folds are kept, a stopped one
        continues from its last step).
    compare_with : str, optional
        The model the set would replace (default: :func:`baseline_for` ``init``); its
        scores are stored beside the set's (:func:`baseline_metrics`). ``"none"``: no comparison.
    fixed_folds : dict, optional
        Source -> {subject: fold} kept from an earlier set (see ``cross_validate``).
    extra_info : dict, optional
        Added to ``model_set.json`` (e.g. what a retrained set came from).
    cross_validate_args
        Passed on (``device``, ``seed``, ``architecture``, ``batch_size``, ...).

    Yields :class:`Progress` on one scale (``loss`` in ``extra`` while a network trains).
    """
    import pandas as pd

    from score_gui.atomic import atomic_path, write_text_atomic
    from score_gui.filesets import mark_complete, prepare_model_staging, swap_in_folder
    from score_gui.training.data import rater_scans, rater_who
    from score_gui.training.loop import cross_validate, write_ensemble_json

    study = study if isinstance(study, Study) else Study.open(study)
    target = set_path(study, name)
    sources = list(dict.fromkeys(rater_who(s) for s in sources))
    if not sources:
        raise ScoreInputError(study.root, "choose at least one rater (or the consensus) to learn from")
    for source in sources:
        rater_scans(study, source)  # a source without labels fails before anything is written
    starts = {source: resolve_start(study, init.get(source) if isinstance(init, dict) else init)
              for source in sources}
    start = next(iter(starts.values()))
    if not isinstance(init, dict):
        init = {source: init for source in sources}
    baseline = None if compare_with == "none" else (compare_with or baseline_for(study, init[sources[0]]))
    staging = prepare_model_staging(target, resume=resume)
    started = time.monotonic()
    total = SOURCE_SPAN * (len(sources) + (baseline is not None))
    results, tables, members, localiser, trained_on = [], [], [], None, {}
    for i, source in enumerate(sources):
        out = staging if len(sources) == 1 else staging / source
        job = cross_validate(study, source, out, folds=folds, iterations=iterations,
                             init=starts[source] or "none", resume=resume,
                             fixed_folds=(fixed_folds or {}).get(source), **cross_validate_args)
        prefix = f"{source}: " if len(sources) > 1 else ""
        result = yield from forward(job, base=i * SOURCE_SPAN, total=total, span=SOURCE_SPAN, started=started,
                                    message=lambda m, p=prefix: p + m)
        results.append(result)
        trained_on[source] = result.trained_slices
        table = result.metrics.copy()
        table.insert(0, "source", source)
        tables.append(table)
        spec = json.loads((out / ENSEMBLE_FILE).read_text(encoding="utf-8"))
        rel = "" if out == staging else f"{source}/"
        members += [(m["name"], rel + m["checkpoints"][0]) for m in spec["members"]]
        localiser = localiser or (rel + spec["localiser"] if spec.get("localiser") else None)
    metrics = pd.concat(tables, ignore_index=True)
    if len(sources) > 1:
        write_ensemble_json(staging, members, localiser)
    with atomic_path(staging / METRICS_FILE) as tmp:
        metrics.to_csv(tmp, index=False)
    compared = {}
    if baseline is not None:
        compared = yield from forward(baseline_metrics(study, baseline, sources), base=len(sources) * SOURCE_SPAN,
                                      total=total, span=SOURCE_SPAN, started=started)
    info = {
        "name": name, "sources": sources, "folds": folds,
        "iterations": iterations, "init": None if start is None else str(init[sources[0]]),
        "created": datetime.now().isoformat(timespec="seconds"),
        "seconds": round(time.monotonic() - started, 1),
        "members": [m for m, _ in members],
        "out_of_fold": mean_scores(metrics),
        "compared_with": compared,
        "trained_on": trained_on,
        **(extra_info or {}),
    }
    write_text_atomic(staging / SET_FILE, json.dumps(_plain(info), indent=2))
    mark_complete(staging)
    swap_in_folder(staging, target)
    yield Progress(total, total, f"model set {name} saved", started)
    return read_model_set(target)


def _plain(value):
    """JSON with NaN written as null (``model_set.json`` stays standard JSON)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
