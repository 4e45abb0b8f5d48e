"""SCORE Studio desktop application (``score-gui``): a napari-based shell over the core.

Run ``score-gui --demo`` to open the demo study; see :mod:`score_studio.main`.
"""

from __future__ import annotations

import sys

__all__ = ["__version__", "keep_none_alive"]
__version__ = "0.1.0"


def keep_none_alive() -> bool:
    """Work around a PySide6 6.12 reference-count bug on Python 3.11; True if applied.

    With PySide6 6.12 every call of a C++ method that returns void (``setText``, ``show``,
    ``showMessage``, ...) drops one reference to ``None`` without taking one. Python 3.12+
    makes ``None`` immortal, so nothing happens there; on 3.11 the count falls with every
    call and the interpreter aborts ("none_dealloc: deallocating None") after a few
    hundred thousand calls: minutes of real use. Raising the count by 2**40 once
    postpones that far beyond any session. Run at import, with the GIL held.

    Examples
    --------
    >>> keep_none_alive() == (sys.version_info < (3, 12))
    True
    >>> sys.version_info >= (3, 12) or sys.getrefcount(None) > 2**39
    True
    """
    if sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return False
    import ctypes

    refcount = ctypes.c_ssize_t.from_address(id(None))   # ob_refcnt is PyObject's first field
    if refcount.value < 2**39:
        refcount.value += 2**40
    return True


keep_none_alive()
