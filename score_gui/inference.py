"""Segmenting scans with an ensemble of MDGRU models (one member per rater) and a canal localiser.

A model folder holds ``ensemble.json`` and the checkpoints it lists::

    {"members": [{"name": "A", "checkpoints": ["raterA.pt"]}, ...],
     "localiser": "localiser.pt"}

A member has one checkpoint per network of its task (one for the default fused
network; four for the paper's separate networks); ``localiser`` may be null. The
shipped models live in ``resources/models/<name>/`` (``SCORE_MODELS`` moves that root).

Per scan (:func:`segment_scan`): normalise, find the canal (localiser, else the image
centre), crop every slice on each member's grid, run the member's networks on the 12
crops, turn the probabilities back to the native grid, take the argmax with nesting
(one label map per member), keep the largest connected canal region of each slice
(:func:`keep_largest_canal`), and vote (:func:`score_gui.consensus.majority_vote`).

Examples
--------
>>> import tempfile
>>> from score_gui.scan import Scan
>>> from score_gui.progress import drain
>>> folder = make_untrained_ensemble(tempfile.mkdtemp(), n_members=2, tiny=True)
>>> ensemble = Ensemble.load(folder)
>>> scan = Scan.from_arrays(np.random.default_rng(0).random((2, 8, 24, 24)), pixel_spacing=(1.0, 1.0))
>>> result = drain(segment_scan(scan, ensemble, members_out=True))
>>> result.consensus.dseg.shape, sorted(result.members), result.disagreement.dtype
((2, 24, 24), ['m1', 'm2'], dtype('float32'))
"""

from __future__ import annotations

import json
import os
import queue
import re
import threading
import time
from collections.abc import Generator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from score_gui.atomic import atomic_path, write_text_atomic
from score_gui.devices import check_device
from score_gui.consensus import disagreement_map, majority_vote
from score_gui.errors import ScoreInputError
from score_gui.labels import LabelMap
from score_gui.mdgru.checkpoint import (DEFAULT_CROP_SIZE_PX, DEFAULT_PIXEL_SIZE_MM, Network, check_fits_scan,
                                        head_specs, load_network, save_model)
from score_gui.mdgru.heads import (DEFAULT_TASK, LOCALISER_TASK, TaskConfig, labels_from_probabilities,
                                   restrict_to_learnt, structure_probabilities)
from score_gui.mdgru.numpy_net import softmax
from score_gui.mdgru.preprocess import (LOCALISER_PIXEL_SIZE_MM, find_canal, model_grid, sample_crops,
                                        to_native, zscore_slices)
from score_gui.niftilib import nib
from score_gui.progress import Progress
from score_gui.regions import largest_region
from score_gui.scan import Scan, nifti_for, read_scan

ENSEMBLE_FILE = "ensemble.json"


def models_root() -> Path:
    """Folder holding the named model sets: ``$SCORE_MODELS`` or ``<repo>/resources/models``."""
    env = os.environ.get("SCORE_MODELS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1] / "resources" / "models"


def resolve_models(models: str | os.PathLike) -> Path:
    """A model set name (``"default"``) or a folder -> the folder holding ``ensemble.json``."""
    candidate = Path(models)
    if (candidate / ENSEMBLE_FILE).is_file():
        return candidate
    named = models_root() / str(models)
    if re.fullmatch(r"[A-Za-z0-9_.-]+", str(models)) and (named / ENSEMBLE_FILE).is_file():
        return named
    where = candidate if candidate.exists() or os.sep in str(models) else named
    raise ScoreInputError(where, f"no {ENSEMBLE_FILE} here; give a model folder or a model set name "
                                 f"under {models_root()} (train one with 'score train')")


def worker_count() -> int:
    """Default CPU workers for inference: ``$SCORE_THREADS`` or min(cores, 4).

    Only the default of an entry point that is not told otherwise (the command line);
    the application and ``score batch`` pass their number explicitly (``workers=``).
    """
    wanted = os.environ.get("SCORE_THREADS")
    if wanted and wanted.isdigit() and int(wanted) > 0:
        return int(wanted)
    return max(1, min(os.cpu_count() or 1, 4))


# ---------------------------------------------------------------------------------------
# Ensemble
# ---------------------------------------------------------------------------------------

@dataclass
class Member:
    """One ensemble member (usually trained on one rater): its networks
    (:func:`score_gui.mdgru.checkpoint.load_network`) and their metadata."""

    name: str
    networks: list[tuple[Network, dict]]

    @property
    def pixel_size_mm(self) -> float:
        return float(self.networks[0][1]["pixel_size_mm"])

    @property
    def crop_size_px(self) -> int:
        return int(self.networks[0][1].get("crop_size_px", 0))


@dataclass
class Ensemble:
    """Members plus an optional canal localiser, loaded from a model folder."""

    members: list[Member]
    localiser: tuple[Network, dict] | None = None
    folder: Path | None = None
    device: str = "cpu"

    @classmethod
    def load(cls, models: str | os.PathLike = "default", device: str = "cpu") -> "Ensemble":
        """Load ``ensemble.json`` and its checkpoints from a folder or a named model set."""
        folder = resolve_models(models)
        spec_path = folder / ENSEMBLE_FILE
        try:
            spec = json.loads(spec_path.read_text(encoding="utf-8"))
            member_specs = spec["members"]
            if not member_specs:
                raise ValueError("no members")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ScoreInputError(spec_path, f"not a valid ensemble description ({type(exc).__name__}: {exc})") \
                from None
        dev = check_device(device)
        members = []
        for i, entry in enumerate(member_specs):
            entry = entry if isinstance(entry, dict) else {"checkpoints": [entry]}
            files = entry.get("checkpoints") or [entry.get("checkpoint")]
            networks = [load_network(folder / str(f), dev) for f in files if f]
            if not networks:
                raise ScoreInputError(spec_path, f"member {i + 1} lists no checkpoint")
            name = str(entry.get("name") or networks[0][1].get("name") or f"m{i + 1}")
            members.append(Member(name=name, networks=networks))
        localiser = None
        if spec.get("localiser"):
            localiser = load_network(folder / str(spec["localiser"]), dev)
        return cls(members=members, localiser=localiser, folder=folder, device=dev)

    def check_fits(self, scan: Scan) -> None:
        """ScoreInputError when any network's input channels differ from the scan's images."""
        for member in self.members:
            for _, meta in member.networks:
                check_fits_scan(meta, scan, self.folder)
        if self.localiser is not None:
            check_fits_scan(self.localiser[1], scan, self.folder)


def make_untrained_ensemble(folder, n_members: int = 3, in_channels: int = 8, architecture=None,
                            task: TaskConfig = DEFAULT_TASK, localiser: bool = True, seed: int = 0,
                            pixel_size_mm: float = DEFAULT_PIXEL_SIZE_MM,
                            crop_size_px: int = DEFAULT_CROP_SIZE_PX, tiny: bool = False) -> Path:
    """Write an ensemble of randomly initialised models (for tests and benchmarks).

    ``tiny=True`` uses a very small architecture and a 16-pixel crop so that tests run in
    well under a second.
    """
    import torch

    from score_gui.mdgru.model import DEFAULT_ARCHITECTURE, LOCALISER_ARCHITECTURE, MDGRUNet

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if architecture is None:
        architecture = {"hidden": (4, 4), "fc": (6,), "kernel": 3} if tiny else DEFAULT_ARCHITECTURE
    if tiny:
        crop_size_px = min(crop_size_px, 16)
    torch.manual_seed(seed)
    members = []
    for i in range(n_members):
        name = f"m{i + 1}"
        files = []
        for network in task.networks:
            net = MDGRUNet(in_channels, network.n_outputs, **architecture)
            file = f"{name}_{network.name}.pt"
            save_model(folder / file, net, {"name": name, "heads": list(network.heads),
                                            "pixel_size_mm": pixel_size_mm, "crop_size_px": crop_size_px,
                                            "training": {"untrained": True}})
            files.append(file)
        members.append({"name": name, "checkpoints": files})
    spec = {"members": members, "localiser": None}
    if localiser:
        arch = {"hidden": (4,), "fc": (), "kernel": 3} if tiny else LOCALISER_ARCHITECTURE
        net = MDGRUNet(in_channels, 2, **arch)
        save_model(folder / "localiser.pt", net, {"name": "localiser", "heads": list(LOCALISER_TASK.networks[0].heads),
                                                  "pixel_size_mm": LOCALISER_PIXEL_SIZE_MM, "crop_size_px": 0,
                                                  "training": {"untrained": True}})
        spec["localiser"] = "localiser.pt"
    write_text_atomic(folder / ENSEMBLE_FILE, json.dumps(spec, indent=2))
    return folder


# ---------------------------------------------------------------------------------------
# Segmenting one scan
# ---------------------------------------------------------------------------------------

@dataclass
class SegmentationResult:
    """What :func:`segment_scan` returns.

    Attributes
    ----------
    consensus : LabelMap
        Majority vote of the members (``who = "score"``), nesting applied.
    members : dict name -> LabelMap
        Each member's own labels (filled when ``members_out``; always used for the vote).
    disagreement : float32 [S, H, W]
        Fraction of members whose label differs from the consensus.
    centres : [S, 2]
        Canal centres used for the crops (native row, col).
    timing : dict
        Seconds: ``localise``, ``members`` (all networks), ``vote``, ``total``, ``per_slice``.
    probabilities : dict name -> float32 [S, H, W]
        The soft vote's P(cord), P(gm) and P(lesion) per pixel (empty after a hard vote),
        the models' prior for click correction.
    """

    consensus: LabelMap
    members: dict[str, LabelMap]
    disagreement: np.ndarray
    centres: np.ndarray
    timing: dict
    probabilities: dict = field(default_factory=dict)


def keep_largest_canal(dseg: np.ndarray) -> np.ndarray:
    """Set everything outside the largest connected canal region of a slice to 0.

    A slice cuts the spinal canal once, so smaller separate canal regions are false
    positives (bright CSF-like structures elsewhere in the crop).

    >>> d = np.zeros((1, 9), np.uint8); d[0, :4] = [1, 2, 3, 1]; d[0, 7] = 1
    >>> keep_largest_canal(d).tolist()
    [[1, 2, 3, 1, 0, 0, 0, 0, 0]]
    """
    return np.where(largest_region(dseg > 0), dseg, 0).astype(dseg.dtype)


def _member_inputs(members: list[Member], scan: Scan, normalised: np.ndarray, centres: np.ndarray) -> dict:
    """Grids and crops per distinct (pixel size, crop size) of the members, computed once."""
    inputs = {}
    for member in members:
        key = (member.pixel_size_mm, member.crop_size_px)
        if key not in inputs:
            grids = [model_grid(scan.pixel_spacing, scan.shape_hw, tuple(c), *key) for c in centres]
            inputs[key] = (grids, sample_crops(normalised, grids))
    return inputs


SLICES_PER_BATCH = 12
"""Slices one network sees per forward pass: a 12-slice scan in one pass. The recurrence is
thousands of small sequential steps, so batching the slices makes each step a larger matrix
product and cuts the per-step overhead twelvefold (see ``benchmarks/bench_segment.py``)."""


def _member_heads(member: Member) -> list:
    return [h for _, meta in member.networks for h in head_specs(meta)]


def _empty_probabilities(member: Member, scan: Scan) -> dict[str, np.ndarray]:
    return {h.name: np.zeros((h.n_classes, *scan.label_shape), np.float32) for h in _member_heads(member)}


def _member_probabilities(member: Member, scan: Scan, inputs: dict, probs: dict[str, np.ndarray],
                          slices: range, batch: int = SLICES_PER_BATCH) -> Generator[int, None, None]:
    """Run a member's networks on ``slices`` in batches; write per-head probabilities on the
    native grid into ``probs`` (``{head: [K, S, H, W]}``); yield the end of each batch done."""
    grids, crops = inputs[(member.pixel_size_mm, member.crop_size_px)]
    for first in range(slices.start, slices.stop, batch):
        last = min(first + batch, slices.stop)
        for network, meta in member.networks:
            logits = network(crops[first:last])
            start = 0
            for head in head_specs(meta):
                part = softmax(logits[:, start:start + head.n_classes], axis=1)
                for i, s in enumerate(range(first, last)):
                    probs[head.name][:, s] = to_native(part[i], grids[s], scan.shape_hw, outside_class=0)
                start += head.n_classes
        yield last


def _slice_ranges(n_slices: int, n_members: int, workers: int) -> list[range]:
    """Split a scan's slices so that ``workers`` threads get equal shares of all the members'
    work (3 members on 2 cores: halves, not whole members, or one core idles a third of the time).

    >>> _slice_ranges(12, 3, 2), _slice_ranges(12, 2, 2), _slice_ranges(5, 3, 1)
    ([range(0, 6), range(6, 12)], [range(0, 12)], [range(0, 5)])
    """
    parts = 1 if workers <= 1 or n_members % workers == 0 else workers
    bounds = np.linspace(0, n_slices, parts + 1).round().astype(int)
    return [range(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def member_learnt(member: Member) -> set[str]:
    """Structures a member's labels are trusted for: its checkpoints' ``learnt_structures``
    (transfer-trained models), else everything its heads predict."""
    learnt = None
    for _, meta in member.networks:
        recorded = meta.get("training", {}).get("learnt_structures") or meta.get("learnt_structures")
        if recorded:
            learnt = set(recorded) if learnt is None else learnt & set(recorded)
    if learnt is not None:
        return learnt
    heads = [h for _, meta in member.networks for h in head_specs(meta)]
    return {"canal", "cord", "gm", "horns"} | ({"lesion"} if any(h.kind == "lesion" for h in heads) else set())


def labels_from_member_probabilities(probs: dict[str, np.ndarray], heads, learnt: set[str],
                                     who: str) -> LabelMap:
    """A LabelMap from per-head probabilities ``[K, S, H, W]``: nested decision, the largest
    canal region of each slice, lesions inside the cord, reduced to what was learnt."""
    dseg, lesion = labels_from_probabilities(probs, heads)
    for s in range(dseg.shape[0]):
        dseg[s] = keep_largest_canal(dseg[s])
    dseg = restrict_to_learnt(dseg, learnt)
    has_lesion = lesion is not None and "lesion" in learnt
    return LabelMap(dseg=dseg, lesion=(lesion * (dseg >= 2)).astype(np.uint8) if has_lesion else None,
                    labelled=set(learnt) - ({"lesion"} if not has_lesion else set()), who=who)


def segment_scan(scan: Scan, ensemble: Ensemble, device: str | None = None,
                 members_out: bool = False, vote: str = "soft",
                 workers: int | None = None) -> Generator[Progress, None, SegmentationResult]:
    """Segment one scan with every member and vote; yields Progress per batch of member slices.

    Parameters
    ----------
    scan : Scan
    ensemble : Ensemble
    device : str, optional
        Defaults to the device the ensemble was loaded on.
    members_out : bool
        Keep each member's LabelMap in the result (they are computed anyway).
    vote : {"soft", "hard"}
        ``soft`` (default): the consensus is the nested decision on the members' mean
        probabilities, so a boundary pixel is decided by how sure the members are, not by
        how many are just above one half (more consistent areas between rescans, see
        ``benchmarks/bench_rescan.py``); ``hard``: majority vote of the members' label maps
        (:func:`score_gui.consensus.majority_vote`).
    workers : int, optional
        CPU threads running members side by side (default :func:`worker_count`; at most
        one per member). Each BLAS call runs on one thread meanwhile.

    Raises
    ------
    ScoreInputError
        When a model does not fit the scan (number of images).
    """
    if vote not in ("soft", "hard"):
        raise ValueError(f"vote must be 'soft' or 'hard', not {vote!r}")
    started = time.monotonic()
    ensemble.check_fits(scan)
    if device is not None and check_device(device) != ensemble.device:
        raise ValueError(f"the models were loaded for {ensemble.device}, not {device}")
    workers = worker_count() if workers is None else max(1, int(workers))
    workers = min(workers, len(ensemble.members)) if ensemble.device == "cpu" else 1
    # Each BLAS call on one thread, the cores shared by member threads instead: MDGRU is
    # thousands of small matrix products, which BLAS threads slow down (3 members in turn:
    # 1.47 s with 2 BLAS threads, 1.58 s with 1; side by side on 2 threads: 0.93 s with 1,
    # twice as long with 2 each). Restored afterwards, also on cancel.
    with threadpool_limits(1, user_api="blas"):
        return (yield from _segment(scan, ensemble, workers, members_out, started, vote))


def _segment(scan: Scan, ensemble: Ensemble, workers: int, members_out: bool,
             started: float, vote: str) -> Generator[Progress, None, SegmentationResult]:
    total = scan.n_slices * len(ensemble.members)
    yield Progress(0, total, f"{scan.stem}: finding the canal", started)
    normalised = _broadcast_single_contrast(zscore_slices(scan.images), ensemble)
    centres = find_canal(scan, ensemble.localiser, normalised)
    t_localised = time.monotonic()
    inputs = _member_inputs(ensemble.members, scan, normalised, centres)
    member_probs = [_empty_probabilities(member, scan) for member in ensemble.members]
    ranges = _slice_ranges(scan.n_slices, len(ensemble.members), workers)
    jobs, owners, starts = [], [], []
    for i, member in enumerate(ensemble.members):
        for part in ranges:
            jobs.append(_member_probabilities(member, scan, inputs, member_probs[i], part))
            owners.append(member)
            starts.append(part.start)
    yield from _run_members(jobs, owners, workers, scan, total, started, starts)
    t_members = time.monotonic()
    member_maps: dict[str, LabelMap] = {}
    for member, probs in zip(ensemble.members, member_probs):
        name = _unique(member.name, member_maps)
        heads = _member_heads(member)
        member_maps[name] = labels_from_member_probabilities(
            probs, heads, member_learnt(member), "model" + re.sub(r"[^A-Za-z0-9]", "", member.name))
    maps = list(member_maps.values())
    consensus, probabilities = _consensus(ensemble, member_probs, maps, vote)
    disagreement = disagreement_map(maps, consensus)
    finished = time.monotonic()
    timing = {"localise": t_localised - started, "members": t_members - t_localised,
              "vote": finished - t_members, "total": finished - started,
              "per_slice": (finished - started) / max(scan.n_slices, 1)}
    return SegmentationResult(consensus=consensus, members=member_maps if members_out else {},
                              disagreement=disagreement, centres=centres, timing=timing,
                              probabilities=probabilities)


def _broadcast_single_contrast(normalised: np.ndarray, ensemble: Ensemble) -> np.ndarray:
    """A single-contrast scan repeated on every input of models that accept that
    (:func:`score_gui.mdgru.checkpoint.broadcasts_single_contrast`); else unchanged."""
    inputs = {int(meta["in_channels"]) for m in ensemble.members for _, meta in m.networks}
    if ensemble.localiser is not None:
        inputs.add(int(ensemble.localiser[1]["in_channels"]))
    if normalised.shape[1] == 1 and len(inputs) == 1 and (wanted := inputs.pop()) > 1:
        return np.repeat(normalised, wanted, axis=1)
    return normalised


def _consensus(ensemble: Ensemble, member_probs: list[dict], maps: list[LabelMap],
               vote: str) -> tuple[LabelMap, dict]:
    """The ensemble's labels (soft vote when the members share their heads, else majority
    vote) and the soft vote's structure probabilities (empty after a hard vote).

    The soft vote sums the members' probabilities into the first member's arrays."""
    same_heads = len({tuple(sorted(p)) for p in member_probs}) == 1
    if (vote == "hard" or not same_heads) and len(maps) > 1:
        return majority_vote(maps, who="score", skip_unlabelled_slices=False), {}
    mean = {name: _mean_in_place([p[name] for p in member_probs]) for name in member_probs[0]}
    heads = [h for _, meta in ensemble.members[0].networks for h in head_specs(meta)]
    probabilities = structure_probabilities(mean, heads)
    if len(maps) == 1:
        return _relabel(maps[0], "score"), probabilities
    learnt = set.intersection(*(member_learnt(m) for m in ensemble.members))
    return labels_from_member_probabilities(mean, heads, learnt, "score"), probabilities


def _mean_in_place(arrays: list[np.ndarray]) -> np.ndarray:
    """The mean of same-shaped arrays, summed into the first (the members' probabilities are not
    used after the vote). ``np.mean`` of the list would stack them into a new array three times
    their size first: 0.5 s in a fresh ``score segment`` process, whose new memory pages each
    cost a fault.

    >>> a, b = np.ones(3, np.float32), np.full(3, 2, np.float32)
    >>> _mean_in_place([a, b]).tolist(), a is _mean_in_place([a])
    ([1.5, 1.5, 1.5], True)
    """
    total = arrays[0]
    for other in arrays[1:]:
        total += other
    if len(arrays) > 1:
        total *= np.float32(1.0 / len(arrays))
    return total


def _run_members(jobs, members, workers: int, scan: Scan, total: int, started: float, starts=None):
    """Drive the members' generators (each yields the slice it has reached, beginning at its
    ``starts`` entry), ``workers`` at a time; yield Progress; return what each returned."""
    done = 0
    reached = list(starts) if starts is not None else [0] * len(jobs)
    label = [f"{scan.stem}: model {m.name} slice {{}}/{scan.n_slices}" for m in members]
    if workers <= 1:
        results = []
        for i, job in enumerate(jobs):
            try:
                while True:
                    finished = next(job)
                    done += finished - reached[i]
                    reached[i] = finished
                    yield Progress(done, total, label[i].format(finished), started)
            except StopIteration as stop:
                results.append(stop.value)
        return results
    events: queue.Queue = queue.Queue()
    stop_requested = threading.Event()  # set when the caller stops (cancel) or fails

    def drive(i, job):
        try:
            while not stop_requested.is_set():
                events.put((i, next(job)))
        except StopIteration as stop:
            return stop.value
        return None

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="score-member") as pool:
        futures = [pool.submit(drive, i, job) for i, job in enumerate(jobs)]
        try:
            while done < total:
                try:
                    i, finished = events.get(timeout=0.2)
                except queue.Empty:
                    failed = [f for f in futures if f.done() and f.exception() is not None]
                    if failed:
                        raise failed[0].exception()
                    continue
                done += finished - reached[i]
                reached[i] = finished
                yield Progress(done, total, label[i].format(finished), started)
            return [f.result() for f in futures]
        finally:
            stop_requested.set()


def _unique(name: str, taken: dict) -> str:
    candidate, i = name, 2
    while candidate in taken:
        candidate, i = f"{name}{i}", i + 1
    return candidate


def _relabel(label_map: LabelMap, who: str) -> LabelMap:
    return LabelMap(dseg=label_map.dseg, lesion=label_map.lesion, labelled=set(label_map.labelled), who=who)


# ---------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------

def disagreement_path(out_dir, stem: str) -> Path:
    from score_gui.naming import label_file_name

    return Path(out_dir) / label_file_name(stem, "score", "disagreement")


def write_disagreement(scan: Scan, disagreement: np.ndarray, out_dir) -> Path:
    """The disagreement map as float32 NIfTI on the scan's grid and affine."""
    path = disagreement_path(out_dir, scan.stem)
    img = nifti_for(scan, scan.to_file_grid(disagreement.astype(np.float32)), np.float32)
    img.header.set_zooms(tuple(img.header.get_zooms()[:3]))
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))
    return path


def write_result(scan: Scan, result: SegmentationResult, out_dir, members: bool = False,
                 disagreement: bool = False) -> dict[str, Path]:
    """Write one scan's files as a set; moved to :func:`score_gui.outputs.write_result`."""
    from score_gui.outputs import write_result as write_set

    return write_set(scan, result, out_dir, members=members, disagreement=disagreement)


@dataclass
class ScanSegmented:
    """One scan finished by :func:`segment_scans`.

    Attributes
    ----------
    index : int
        Its place in the scans given.
    scan : Scan
    result : SegmentationResult
    written : dict
        What the ``write`` callback returned (``{kind: path}``; empty without one).
    timing : dict
        ``result.timing`` plus ``write`` (seconds spent in the callback).
    """

    index: int
    scan: Scan
    result: SegmentationResult
    written: dict
    timing: dict


def segment_scans(scans, ensemble: Ensemble, write=None, device: str | None = None, members_out: bool = False,
                  vote: str = "soft", steps_per_scan: int | None = None,
                  started: float | None = None, workers: int | None = None) -> Generator[Progress | ScanSegmented, None, int]:
    """Segment several scans one after the other on one progress scale: the loop that
    ``score segment`` (:func:`segment_files`), ``score batch`` (through it) and the
    application's "Segment all" drive.

    Yields :class:`~score_gui.progress.Progress` (messages ``"<stem> (i/n): ..."``, or
    ``"<stem>: ..."`` for one scan) and, after each scan, a :class:`ScanSegmented`, then
    the scan's last step (``"<stem>: written"``). Returns the number of scans done.

    Parameters
    ----------
    scans : sequence of Scan, or of callables returning one
        A callable is called when its scan's turn comes (a study's scans are not all
        read, nor held, up front).
    ensemble : Ensemble
    write : callable ``(index, scan, result) -> dict``, optional
        Writes one scan's result (e.g. :func:`score_gui.outputs.write_result`); its time
        goes into the timing as ``write``.
    device, members_out, vote, workers
        As for :func:`segment_scan`.
    steps_per_scan : int, optional
        Steps each scan counts for on the overall scale. Default: its slices times the
        members (every scan must then be a Scan, to know the total up front).
    started : float, optional
        ``time.monotonic()`` of the start of the whole job (for the ETA).
    """
    from score_gui.progress import forward

    started = time.monotonic() if started is None else started
    scans = list(scans)
    if steps_per_scan is None:
        if not all(isinstance(item, Scan) for item in scans):
            raise TypeError("steps_per_scan is needed when scans are read on the way")
        spans = [item.n_slices * len(ensemble.members) for item in scans]
    else:
        spans = [int(steps_per_scan)] * len(scans)
    total, base = sum(spans), 0
    for index, item in enumerate(scans):
        scan = item if isinstance(item, Scan) else item()
        prefix = f"{scan.stem} ({index + 1}/{len(scans)})" if len(scans) > 1 else scan.stem
        inner_prefix = f"{scan.stem}: "

        def message(text: str, prefix=prefix, inner_prefix=inner_prefix) -> str:
            return f"{prefix}: {text.removeprefix(inner_prefix)}"   # the scan is named once

        job = segment_scan(scan, ensemble, device, members_out=members_out, vote=vote, workers=workers)
        span = None if steps_per_scan is None else spans[index]
        result = yield from forward(job, base, total, span=span, started=started, message=message)
        writing = time.monotonic()
        written = dict(write(index, scan, result)) if write is not None else {}
        timing = {**result.timing, "write": time.monotonic() - writing}
        yield ScanSegmented(index, scan, result, written, timing)
        base += spans[index]
        yield Progress(base, total, f"{prefix}: written", started)
    return len(scans)


def segment_files(paths, out_dir, models: str | os.PathLike | Ensemble = "default", device: str = "cpu",
                  members: bool = False, disagreement: bool = False,
                  vote: str = "soft", workers: int | None = None) -> Generator[Progress, None, list[dict]]:
    """Segment scan files and write ``<stem>_desc-score_dseg/lesion.nii.gz`` and ``<stem>_areas.csv``.

    Also ``<stem>_desc-model<NAME>_dseg/lesion.nii.gz`` per member (``members``) and
    ``<stem>_desc-score_disagreement.nii.gz`` (``disagreement``). Every scan is read and
    checked against the models before anything is computed, so a bad file stops the run
    before any output is written. Two scans with the same file name are refused (their
    outputs would share names). Each scan's files replace its previous result as one set
    (:func:`score_gui.outputs.write_result`); an interrupted earlier run in ``out_dir`` is
    finished or cleaned first. ``workers`` as for :func:`segment_scan`. Returns one
    ``{kind: path}`` per scan (plus ``timing``).
    """
    from score_gui.outputs import check_distinct_names, check_result_targets, write_result as write_set

    started = time.monotonic()
    check_distinct_names(paths)
    scans = [read_scan(p) for p in paths]
    ensemble = models if isinstance(models, Ensemble) else Ensemble.load(models, device)
    for scan in scans:
        ensemble.check_fits(scan)
    check_result_targets(out_dir, [scan.stem for scan in scans])
    outputs = []

    def write(index: int, scan: Scan, result: SegmentationResult) -> dict:
        return write_set(scan, result, out_dir, members=members, disagreement=disagreement, inputs=paths)

    job = segment_scans(scans, ensemble, write, device, members_out=members, vote=vote, started=started,
                        workers=workers)
    try:
        for item in job:
            if isinstance(item, ScanSegmented):
                outputs.append({**item.written, "timing": item.timing})
            else:
                yield item
    finally:
        job.close()     # stopped early: the members' threads stop now, not when collected
    return outputs
