"""Checkpoints read without PyTorch: the same content as torch.load, nothing but data accepted."""

from __future__ import annotations

import io
import pickle
import zipfile

import numpy as np
import pytest
import torch

from score_gui.errors import ScoreInputError
from score_gui.mdgru import ptfile
from score_gui.mdgru.checkpoint import read_checkpoint


def test_content_is_what_torch_load_gives(tmp_path):
    base = torch.arange(24, dtype=torch.float32).view(4, 6)
    content = {
        "format": "x", "numbers": [1, 2.5, None, True], "nested": {"name": "A", "shape": (3, 4)},
        "dtypes": {str(dtype): torch.arange(5).to(dtype) for dtype in
                   (torch.float32, torch.float64, torch.float16, torch.int64, torch.int32, torch.uint8, torch.bool)},
        "transposed": base.t(), "sliced": base[1:3, 2:5], "strided": base[:, ::2],
        "shared": base[0], "scalar": torch.tensor(3.5), "empty": torch.zeros(0, 3),
    }
    torch.save(content, tmp_path / "c.pt")
    expected = torch.load(tmp_path / "c.pt", weights_only=True)
    got = ptfile.load(tmp_path / "c.pt")
    assert got["numbers"] == [1, 2.5, None, True] and got["nested"] == {"name": "A", "shape": (3, 4)}
    for key in ("transposed", "sliced", "strided", "shared", "scalar", "empty"):
        assert got[key].shape == tuple(expected[key].shape)
        np.testing.assert_array_equal(got[key], expected[key].numpy())
    for name, tensor in expected["dtypes"].items():
        assert got["dtypes"][name].dtype == tensor.numpy().dtype
        np.testing.assert_array_equal(got["dtypes"][name], tensor.numpy())
    got["transposed"][0, 0] = -1.0                      # a writable copy, not a view of the file
    assert got["sliced"][0, 0] == 8.0


def _archive_with_pickle(path, payload: bytes, storages: dict[str, bytes] | None = None):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("root/data.pkl", payload)
        archive.writestr("root/byteorder", "little")
        for key, raw in (storages or {}).items():
            archive.writestr(f"root/data/{key}", raw)
    return path


class _RunsCode:
    def __reduce__(self):
        return (open, ("should-not-exist", "w"))


def test_code_in_the_pickle_is_refused_not_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = _archive_with_pickle(tmp_path / "evil.pt", pickle.dumps({"x": _RunsCode()}, protocol=2))
    with pytest.raises(pickle.UnpicklingError, match="not allowed"):
        ptfile.load(path)
    assert not (tmp_path / "should-not-exist").exists()
    with pytest.raises(ScoreInputError, match="not a readable model checkpoint"):
        read_checkpoint(path)


def test_corrupt_files_are_errors_naming_the_problem(tmp_path):
    good = tmp_path / "good.pt"
    torch.save({"w": torch.ones(4)}, good)
    (tmp_path / "truncated.pt").write_bytes(good.read_bytes()[:200])
    with pytest.raises(zipfile.BadZipFile):
        ptfile.load(tmp_path / "truncated.pt")

    # a tensor that claims more elements than its storage holds
    buffer = io.BytesIO()
    torch.save({"w": torch.ones(4)}, buffer)
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as archive:
        names = archive.namelist()
        parts = {n.split("/", 1)[1]: archive.read(n) for n in names}
    short = _archive_with_pickle(tmp_path / "short.pt", parts["data.pkl"], {"0": parts["data/0"][:8]})
    with pytest.raises(pickle.UnpicklingError, match="holds 8 bytes"):
        ptfile.load(short)
    missing = _archive_with_pickle(tmp_path / "missing.pt", parts["data.pkl"])
    with pytest.raises(KeyError):
        ptfile.load(missing)
    for bad in (tmp_path / "truncated.pt", short, missing):
        with pytest.raises(ScoreInputError, match="not a readable model checkpoint"):
            read_checkpoint(bad)
