"""Cohort batch on a tiny Dask LocalCluster with a tiny untrained ensemble: every scan
segmented, a broken scan reported without stopping the others, resumable, areas written."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from dask.distributed import Client, LocalCluster

from score_gui.areas import COLUMNS
from score_gui.batch import batch_job
from score_gui.cli import main
from score_gui.inference import make_untrained_ensemble
from score_gui.progress import drain
from score_gui.scan import Scan, write_scan
from score_gui.study import Study, scan_path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return make_untrained_ensemble(tmp_path_factory.mktemp("models"), n_members=2, tiny=True)


@pytest.fixture(scope="module")
def client():
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None)
    with Client(cluster) as c:
        yield c
    cluster.close()


def make_study(root, broken=True):
    rng = np.random.default_rng(0)
    for subject in ("01", "02", "03"):
        path = scan_path(root, subject)
        path.parent.mkdir(parents=True)
        scan = Scan.from_arrays(rng.random((2, 8, 24, 24)), pixel_spacing=(0.7, 0.6),
                                levels=["C2", "C3"], path=path)
        write_scan(scan, path)
    if broken:
        bad = scan_path(root, "04")
        bad.parent.mkdir(parents=True)
        bad.write_bytes(b"this is not a NIfTI file")
    return root


def test_batch_segments_reports_failures_and_resumes(tmp_path, models, client):
    root = make_study(tmp_path / "study")
    steps = []
    job = batch_job(root, models=str(models), client=client)
    try:
        while True:
            steps.append(next(job))
    except StopIteration as stop:
        result = stop.value
    assert sorted(result.segmented) == ["sub-01_amira", "sub-02_amira", "sub-03_amira"]
    assert list(result.failed) == ["sub-04_amira"] and "not a NIfTI" in result.failed["sub-04_amira"]
    assert [s.done for s in steps] == [1, 2, 3, 4] and steps[-1].total == 4
    assert any("FAILED" in s.message for s in steps)
    study = Study.open(root)
    for entry in study.scans[:3]:
        assert entry.dseg_path("score").is_file() and entry.lesion_path("score").is_file()
    areas = pd.read_csv(result.areas_path, dtype={"subject": str})
    assert list(areas.columns) == COLUMNS and len(areas) == 3 * 2
    assert set(areas["level"]) == {"C2", "C3"}
    assert areas["pixel_area_mm2"].iloc[0] == pytest.approx(0.42)

    before = {e.stem: e.dseg_path("score").stat().st_mtime_ns for e in study.scans[:3]}
    again = drain(batch_job(root, models=str(models), client=client, skip_existing=True))
    assert sorted(again.skipped) == sorted(before) and list(again.failed) == ["sub-04_amira"]
    assert not again.segmented
    assert before == {e.stem: e.dseg_path("score").stat().st_mtime_ns for e in study.scans[:3]}


def test_batch_local_cluster_and_cli(tmp_path, models, capsys):
    root = make_study(tmp_path / "study", broken=False)
    code = main(["batch", str(root), "--workers", "1", "--models", str(models)])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "segmented 3, skipped 0, failed 0" in out.out
    assert Study.open(root).areas_csv.is_file()
    assert main(["batch", str(root), "--models", str(tmp_path / "no_models")]) == 2
    assert main(["batch", str(tmp_path / "no_study"), "--models", str(models)]) == 2
