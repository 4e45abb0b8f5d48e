"""The multi-scan segmentation loop (inference.segment_scans) and nested progress (progress.forward)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from score_gui.inference import (Ensemble, ScanSegmented, make_untrained_ensemble, segment_files, segment_scan,
                                 segment_scans)
from score_gui.labels import read_labels
from score_gui.progress import Progress, drain, forward
from score_gui.scan import Scan, read_scan, write_scan


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch):
    monkeypatch.setenv("SCORE_THREADS", "1")


@pytest.fixture(scope="module")
def ensemble(tmp_path_factory):
    return Ensemble.load(make_untrained_ensemble(tmp_path_factory.mktemp("models"), n_members=2, tiny=True))


def _scan(stem: str, n_slices: int, seed: int) -> Scan:
    images = np.random.default_rng(seed).random((n_slices, 8, 24, 24)).astype(np.float32)
    return Scan.from_arrays(images, pixel_spacing=(1.0, 1.0), path=Path(f"/nowhere/{stem}.nii.gz"))


def test_scans_read_on_the_way_one_scale_results_and_write_timing(ensemble):
    read, written = [], []
    scans = [_scan("sub-01_amira", 2, 0), _scan("sub-02_amira", 3, 1)]

    def loader(i):
        def load():
            read.append(i)
            return scans[i]
        return load

    def write(index, scan, result):
        written.append((index, scan.stem, result.consensus.dseg.shape))
        return {"dseg": f"{scan.stem}.nii.gz"}

    job = segment_scans([loader(0), loader(1)], ensemble, write, steps_per_scan=100)
    items = []
    first = next(job)
    assert read == [0] and isinstance(first, Progress)     # the second scan is not read yet
    items.append(first)
    count = None
    try:
        while True:
            items.append(next(job))
    except StopIteration as stop:
        count = stop.value
    assert count == 2 and read == [0, 1]
    steps = [i for i in items if isinstance(i, Progress)]
    done = [i for i in items if isinstance(i, ScanSegmented)]
    assert {s.total for s in steps} == {200}
    assert [s.done for s in steps] == sorted(s.done for s in steps)           # never goes back
    assert steps[-1].done == 200 and steps[-1].message == "sub-02_amira (2/2): written"
    assert all(s.message.startswith(("sub-01_amira (1/2): ", "sub-02_amira (2/2): ")) for s in steps)
    assert not any(": sub-0" in s.message for s in steps)                   # the scan named once
    first_scan = [s for s in steps if s.message.startswith("sub-01")]
    assert max(s.done for s in first_scan) == 100                           # a scan's share: 100 steps
    assert [d.index for d in done] == [0, 1] and [d.scan.stem for d in done] == ["sub-01_amira", "sub-02_amira"]
    assert done[1].written == {"dseg": "sub-02_amira.nii.gz"} and written[1] == (1, "sub-02_amira", (3, 24, 24))
    assert {"members", "vote", "write", "total"} <= set(done[0].timing) and done[0].timing["write"] >= 0
    # Same labels as segmenting the scan alone.
    alone = drain(segment_scan(scans[1], ensemble))
    np.testing.assert_array_equal(done[1].result.consensus.dseg, alone.consensus.dseg)


def test_default_scale_counts_slices_times_members_and_needs_scans(ensemble):
    scans = [_scan("a", 2, 2), _scan("b", 1, 3)]
    steps = [i for i in segment_scans(scans, ensemble) if isinstance(i, Progress)]
    assert {s.total for s in steps} == {(2 + 1) * 2}
    assert steps[-1].done == 6 and [s.done for s in steps] == sorted(s.done for s in steps)
    with pytest.raises(TypeError):
        next(segment_scans([lambda: scans[0]], ensemble))


def test_stopping_early_reads_no_further_scan(ensemble):
    read = []
    scans = [_scan("a", 2, 4), _scan("b", 2, 5)]
    job = segment_scans([lambda i=i: read.append(i) or scans[i] for i in range(2)], ensemble, steps_per_scan=10)
    for item in job:
        if isinstance(item, ScanSegmented):
            break
    job.close()
    assert read == [0]


def test_segment_files_drives_the_loop_and_keeps_its_outputs(ensemble, tmp_path):
    paths = [write_scan(_scan("x", 2, 6), tmp_path / "sub-01_amira.nii.gz"),
             write_scan(_scan("y", 2, 7), tmp_path / "sub-02_amira.nii.gz")]
    job = segment_files(paths, tmp_path / "out", models=ensemble)
    steps = []
    try:
        while True:
            steps.append(next(job))
    except StopIteration as stop:
        outputs = stop.value
    assert all(isinstance(s, Progress) for s in steps) and steps[-1].done == steps[-1].total == 8
    assert len(outputs) == 2 and "write" in outputs[1]["timing"]
    assert read_labels(outputs[1]["score_dseg"], read_scan(paths[1])).dseg.shape == (2, 24, 24)


def test_forward_passes_results_through_and_keeps_extra():
    def inner():
        yield Progress(1, 4, "a", 0.0, {"loss": 0.5})
        yield "result item"
        yield Progress(4, 4, "b", 0.0)
        return 7

    got = []
    outer = forward(inner(), base=3, total=10, started=1.0, items=str.upper)
    try:
        while True:
            got.append(next(outer))
    except StopIteration as stop:
        assert stop.value == 7
    assert got[0] == Progress(4, 10, "a", 1.0, {"loss": 0.5})
    assert got[1] == "RESULT ITEM" and got[2].done == 7
    assert list(forward(inner(), span=2))[0].done == 0     # 1/4 of 2 steps rounds down
