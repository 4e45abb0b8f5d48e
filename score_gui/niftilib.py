"""nibabel, imported without pydicom.

nibabel imports pydicom at start-up whenever it is installed, only to decode DICOM header
extensions inside NIfTI files (extension code 2), which SCORE never reads. pydicom is
installed for :mod:`score_gui.dicom` and costs 0.15-0.45 s to import (it pulls in
``requests`` for its example downloads), a tenth to a fifth of a whole ``score segment``
run. Modules of the core take nibabel from here, so that pydicom is imported only when a
DICOM series is read. A NIfTI file with a DICOM extension still loads; nibabel then keeps
that extension as raw bytes.

Examples
--------
>>> from score_gui.niftilib import nib
>>> nib.Nifti1Image
<class 'nibabel.nifti1.Nifti1Image'>
"""

from __future__ import annotations

import sys


def _import_nibabel():
    hide = "nibabel" not in sys.modules and "pydicom" not in sys.modules
    if hide:  # a None entry makes `import pydicom` fail, so nibabel's optional import gives up
        sys.modules["pydicom"] = None
    try:
        import nibabel
    finally:
        if hide:
            del sys.modules["pydicom"]
    return nibabel


nib = _import_nibabel()

__all__ = ["nib"]
