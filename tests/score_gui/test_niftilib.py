"""nibabel without pydicom at start-up (``score_gui.niftilib``), in fresh interpreters."""

import subprocess
import sys

import numpy as np


def run_fresh(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_nibabel_comes_without_pydicom_and_pydicom_still_imports():
    out = run_fresh("import sys; from score_gui.niftilib import nib; "
                    "before = 'pydicom' in sys.modules; import pydicom; "
                    "print(before, nib.Nifti1Image.__name__, pydicom.Dataset.__name__)")
    assert out == "False Nifti1Image Dataset"


def test_a_nifti_file_with_a_dicom_extension_still_loads(tmp_path):
    import nibabel

    path = tmp_path / "with_dicom_extension.nii.gz"
    img = nibabel.Nifti1Image(np.arange(24, dtype=np.int16).reshape(2, 3, 4), np.eye(4))
    img.header.extensions.append(nibabel.nifti1.Nifti1Extension(2, b"not decoded by SCORE"))
    nibabel.save(img, str(path))
    out = run_fresh("from score_gui.niftilib import nib; "
                    f"img = nib.load({str(path)!r}); "
                    "print(int(img.get_fdata().sum()), img.header.extensions[0].get_code(), "
                    "bytes(img.header.extensions[0].get_content()[:3]))")
    assert out == "276 2 b'not'"


def test_the_core_and_the_plugin_take_nibabel_from_niftilib():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    direct = [str(path.relative_to(root)) for folder in ("score_gui", "plugins", "app")
              for path in (root / folder).rglob("*.py")
              if path.name != "niftilib.py" and any(line.strip().startswith(("import nibabel", "from nibabel"))
                                                    for line in path.read_text().splitlines())]
    assert direct == []
