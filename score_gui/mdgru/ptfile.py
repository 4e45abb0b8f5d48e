"""Reading a ``torch.save`` file of plain data and tensors without importing PyTorch.

Importing PyTorch takes 2-3 s on a 2-core machine, longer than segmenting a scan with the
numpy network (:mod:`score_gui.mdgru.numpy_net`), so inference reads its checkpoints here.
Since PyTorch 1.6 a saved file is a zip archive::

    <root>/data.pkl      the pickled object; each tensor is a call of
                         torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)
                         whose storage is a persistent reference ("storage", type, key, ...)
    <root>/data/<key>    the raw bytes of each storage
    <root>/byteorder     "little" (files of older versions have none and are little-endian)

The unpickler accepts only the globals such a file of tensors needs (an ordered dict,
the tensor rebuild, the storage types), as ``torch.load(weights_only=True)`` does, so no
pickled code runs. Tensors come back as numpy arrays (a copy, writable).

Examples
--------
>>> import tempfile, pathlib, torch
>>> path = pathlib.Path(tempfile.mkdtemp()) / "t.pt"
>>> torch.save({"w": torch.arange(6.0).view(2, 3).t(), "n": 3}, path)
>>> content = load(path)
>>> content["w"].tolist(), content["n"]
([[0.0, 3.0], [1.0, 4.0], [2.0, 5.0]], 3)
"""

from __future__ import annotations

import collections
import pickle
import zipfile
from pathlib import Path

import numpy as np

_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}
"""PyTorch's typed storage names (what ``torch.save`` pickles) and their numpy types;
bfloat16 and complex storages have no plain numpy type and are refused."""


class _StorageType:
    """What the pickle's ``torch.<Name>Storage`` global stands for: an element type."""

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype).newbyteorder("<")


def _rebuild_tensor(storage: np.ndarray, offset: int, size, stride, *_ignored) -> np.ndarray:
    """A tensor as a numpy array: ``size`` elements read from ``storage`` at ``offset`` with
    ``stride`` (in elements); refuses views that reach outside the storage (a corrupt file)."""
    size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
    if len(size) != len(stride) or any(s < 0 for s in size) or any(s < 0 for s in stride):
        raise pickle.UnpicklingError(f"tensor shape {size} / stride {stride} is not valid")
    if 0 in size:
        return np.zeros(size, storage.dtype)
    last = int(offset) + sum((n - 1) * s for n, s in zip(size, stride))
    if offset < 0 or last >= storage.size:
        raise pickle.UnpicklingError(f"tensor reaches element {last} of a storage of {storage.size}")
    item = storage.itemsize
    view = np.lib.stride_tricks.as_strided(storage[int(offset):], size, tuple(s * item for s in stride),
                                           writeable=False)
    return view.copy()


class _WeightsUnpickler(pickle.Unpickler):
    def __init__(self, file, archive: zipfile.ZipFile, root: str):
        super().__init__(file)
        self._archive, self._root = archive, root
        self._storages: dict[str, np.ndarray] = {}

    def find_class(self, module: str, name: str):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a weights file")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise pickle.UnpicklingError(f"unknown persistent reference {str(pid)[:60]}")
        _, kind, key, _location, count = pid
        key = str(key)
        if key not in self._storages:
            raw = self._archive.read(f"{self._root}/data/{key}")
            if len(raw) < int(count) * kind.dtype.itemsize:
                raise pickle.UnpicklingError(f"storage {key} holds {len(raw)} bytes, not {count} elements")
            self._storages[key] = np.frombuffer(raw, kind.dtype, int(count))
        return self._storages[key]


def load(path):
    """The object saved in ``path`` by ``torch.save``, with numpy arrays for its tensors.

    Raises
    ------
    zipfile.BadZipFile
        Not a zip archive (e.g. a legacy or truncated file).
    pickle.UnpicklingError
        Anything other than plain data and tensors, or a corrupt tensor.
    KeyError
        A storage the pickle names is missing from the archive.
    """
    with zipfile.ZipFile(Path(path)) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise pickle.UnpicklingError("not a torch.save archive (no single <root>/data.pkl)")
        root = pickles[0].split("/")[0]
        if f"{root}/byteorder" in archive.namelist() and archive.read(f"{root}/byteorder") != b"little":
            raise pickle.UnpicklingError("big-endian tensors are not supported")
        with archive.open(pickles[0]) as file:
            return _WeightsUnpickler(file, archive, root).load()
