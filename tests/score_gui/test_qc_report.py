"""The HTML QC report: self-contained, with thumbnails, decisions, counts and suggestions."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest
from PIL import Image

from score_gui.cli import main
from score_gui.labels import LABEL_COLORS, LabelMap, write_labels
from score_gui.phantom.study import make_scan
from score_gui.progress import drain
from score_gui.qc.log import Decision, QCLog
from score_gui.qc.report import thumbnail_rgb, write_report_job
from score_gui.study import ScanEntry, Study, scan_path


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("qc-report")
    for subject, seed in (("01", 3), ("02", 4)):
        scan, truth, _ = make_scan("hc", seed=seed, n_slices=4, shape=(96, 96))
        scan.path = path = scan_path(root, subject)
        from score_gui.scan import write_scan

        write_scan(scan, path)
        write_labels(scan, LabelMap(truth.dseg, truth.lesion, who="score"),
                     ScanEntry(root, path).derivatives_dir, "score")
    log = QCLog(root)
    log.record(Decision("01", "", "sub-01_amira", 0, "score", "pass", "", "ana"))
    log.record(Decision("01", "", "sub-01_amira", 1, "score", "fail", "posterior_arch_contact", "ana",
                        "cord <on> the arch"))
    log.record(Decision("02", "", "sub-02_amira", 3, "score", "fail", "image_artifact", "ben"))
    log.record(Decision("02", "", "sub-02_amira", 2, "score", "fail", "image_artifact", "ben"))
    return Study.open(root)


def test_thumbnail_draws_contours_in_label_colours():
    rng = np.random.default_rng(0)
    dseg = np.zeros((60, 60), np.uint8)
    dseg[20:40, 20:40] = 1
    dseg[24:36, 24:36] = 2
    dseg[28:32, 28:32] = 4
    tile = thumbnail_rgb(rng.random((60, 60)) * 0.1, dseg, size=120)
    colours = {tuple(c) for c in tile.reshape(-1, 3)}
    gold = tuple(int(LABEL_COLORS[1][i:i + 2], 16) for i in (1, 3, 5))
    red = tuple(int(LABEL_COLORS[4][i:i + 2], 16) for i in (1, 3, 5))
    assert gold in colours and red in colours
    plain = thumbnail_rgb(rng.random((60, 60)), None, size=50)
    assert plain.shape == (50, 50, 3) and np.all(plain[..., 0] == plain[..., 1])  # grey, no contours


def test_report_is_self_contained_with_thumbnails_counts_and_decisions(study, tmp_path):
    out = drain(write_report_job(study, tmp_path / "report.html"))
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 8  # one per slice of both scans
    first = Image.open(io.BytesIO(base64.b64decode(images[0])))
    assert first.size == (160, 160) and np.asarray(first).std() > 10
    assert "http://" not in page and "https://" not in page and "<script" not in page
    # counts: 8 slices, 4 reviewed, 1 passed, 3 failed; per reason 1 arch contact, 2 artifacts
    cards = dict((label, int(value)) for value, label in re.findall(r"<b>(\d+)</b>(\w+)", page))
    assert cards["slices"] == 8 and cards["reviewed"] == 4 and cards["passed"] == 1 and cards["failed"] == 3
    assert "<td>posterior_arch_contact</td><td>1</td>" in page
    assert "<td>image_artifact</td><td>2</td>" in page
    assert "<td>ben</td><td>2</td>" in page and "<td>ana</td><td>2</td>" in page
    assert "cord &lt;on&gt; the arch" in page  # comments escaped
    assert page.count('class="tile fail"') == 3 and page.count('class="tile pass"') == 1


def test_cli_report(study, tmp_path, capsys):
    out = tmp_path / "r.html"
    assert main(["qc", "report", str(study.root), "-o", str(out), "--average", "1-5"]) == 0
    assert "images average\n1-5 ·" in out.read_text(encoding="utf-8")
    assert main(["qc", "report", str(tmp_path / "missing"), "-o", str(out)]) == 2


def test_flagged_only_report_draws_failed_and_suggested_slices(study, tmp_path):
    out = tmp_path / "flagged.html"
    assert main(["qc", "report", str(study.root), "-o", str(out), "--flagged-only"]) == 0
    page = out.read_text(encoding="utf-8")
    tiles = re.findall(r'alt="(sub-\d+_amira slice \d+)"', page)
    assert {"sub-01_amira slice 1", "sub-02_amira slice 2", "sub-02_amira slice 3"} <= set(tiles)
    assert "sub-01_amira slice 0" not in tiles  # passed, no suggestion
    assert len(tiles) < 8
