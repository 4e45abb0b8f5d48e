"""Real single-contrast scans from another site (the Spinal Cord Toolbox's public test data,
``shared/data/sct_testing_data``: a T2*-weighted and an MT scan with manual cord and GM
masks) go through every command: transfer training from the default models, segmentation
with the trained models (the AMIRA default models refuse them with a pointer to training), areas and evaluation. Too small to judge
accuracy; it checks that nothing assumes the phantom (8 images, 0.67 mm, AMIRA contrast)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

SCT = Path(__file__).resolve().parents[3] / "shared" / "data" / "sct_testing_data"
SCANS = {"t2s": ("t2s/t2s.nii.gz", "t2s/t2s_seg.nii.gz", "t2s/t2s_gmseg_manual.nii.gz"),
         "mt": ("mt/mt1.nii.gz", "mt/mt1_seg.nii.gz", "mt/mt1_gmseg_goldstandard.nii.gz")}


def score(*args, timeout=600):
    env = {**os.environ, "SCORE_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", "import sys; from score_gui.cli import main; sys.exit(main())",
                           *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env)


def write_cord_gm_study(root: Path) -> Path:
    """The two scans as subjects of a study, labelled by rater G with cord (2) and GM (3) only."""
    for subject, (scan, cord, gm) in SCANS.items():
        anat = root / f"sub-{subject}" / "anat"
        anat.mkdir(parents=True)
        target = anat / f"sub-{subject}_T2starw.nii.gz"
        shutil.copyfile(SCT / scan, target)
        image = nib.load(SCT / scan)
        cord_mask = np.asarray(nib.load(SCT / cord).dataobj) > 0.5
        gm_mask = np.asarray(nib.load(SCT / gm).dataobj) > 0.5
        dseg = np.where(gm_mask, 3, np.where(cord_mask, 2, 0)).astype(np.uint8)
        labels = root / "derivatives" / "score" / f"sub-{subject}" / "anat"
        labels.mkdir(parents=True)
        name = f"sub-{subject}_T2starw_desc-raterG_dseg"
        nib.save(nib.Nifti1Image(dseg, image.affine, image.header), labels / f"{name}.nii.gz")
        (labels / f"{name}.json").write_text(json.dumps({"LabelledStructures": ["cord", "gm"]}))
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    assert SCT.is_dir(), f"the shared real scans are missing: {SCT}"
    tmp = tmp_path_factory.mktemp("sct")
    study = write_cord_gm_study(tmp / "study")
    done = score("train", study, "--rater", "G", "-o", tmp / "models", "--folds", "2", "--iterations", "4", "--batch-size", "1",
                 "--init", "default")
    assert done.returncode == 0, done.stderr
    return tmp, study, done


def test_real_single_contrast_scans_train_from_the_default_models(trained):
    tmp, _, done = trained
    assert "gm" in done.stdout and "cord" in done.stdout
    metrics = pd.read_csv(tmp / "models" / "metrics.csv")
    assert set(metrics["compartment"]) == {"cord", "wm", "gm"}  # only what rater G labelled
    member = json.loads((tmp / "models" / "ensemble.json").read_text())["members"][0]
    import torch
    meta = torch.load(tmp / "models" / member["checkpoints"][0], weights_only=True)["meta"]
    assert meta["in_channels"] == 1 and meta["training"]["initialised_from"].endswith(".pt")
    assert meta["training"]["learnt_structures"] == ["cord", "gm"]


def test_real_scans_segment_measure_and_evaluate(trained):
    tmp, study, _ = trained
    scan = study / "sub-t2s" / "anat" / "sub-t2s_T2starw.nii.gz"
    # The AMIRA default models refuse a single-contrast scan, pointing to transfer training.
    refused = score("segment", scan, "-o", tmp / "seg-default")
    lines = refused.stderr.strip().splitlines()
    assert refused.returncode == 2 and len(lines) == 1 and "score train --init default" in lines[0]
    done = score("segment", scan, "-o", tmp / "seg-trained", "--models", tmp / "models")
    assert done.returncode == 0, done.stderr
    dseg = tmp / "seg-trained" / "sub-t2s_T2starw_desc-score_dseg.nii.gz"
    assert nib.load(dseg).shape == nib.load(scan).shape
    assert set(np.unique(np.asarray(nib.load(dseg).dataobj)).tolist()) <= {0, 2, 3}  # cord and GM learnt
    dseg = tmp / "seg-trained" / "sub-t2s_T2starw_desc-score_dseg.nii.gz"
    done = score("areas", "--dseg", dseg, "-o", tmp / "areas.csv")
    assert done.returncode == 0, done.stderr
    areas = pd.read_csv(tmp / "areas.csv")
    assert len(areas) == nib.load(scan).shape[2] and (areas["pixel_area_mm2"] == 0.25).all()
    truth = study / "derivatives" / "score" / "sub-t2s" / "anat" / "sub-t2s_T2starw_desc-raterG_dseg.nii.gz"
    done = score("evaluate", "--pred", dseg, "--truth", truth, "-o", tmp / "metrics.csv")
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(tmp / "metrics.csv")
    assert {"cord", "gm"} <= set(table["compartment"]) and table["dice"].notna().any()
