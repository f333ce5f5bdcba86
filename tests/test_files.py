"""srpo.files: the shared JSON and torch readers turn unreadable files into the caller's one-line error."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from srpo.errors import CheckpointCorruptError, InputFileError
from srpo.files import load_torch, read_json


def test_read_json_returns_the_value_and_names_the_file_it_cannot_parse(tmp_path: Path):
    good = tmp_path / "good.json"
    good.write_text('{"a": [1, 2]}')
    assert read_json(good) == {"a": [1, 2]}
    bad = tmp_path / "bad.json"
    bad.write_text('{"a": ')
    with pytest.raises(InputFileError, match=r"bad\.json is not valid JSON \(Expecting value: line 1"):
        read_json(bad)
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe{")
    with pytest.raises(CheckpointCorruptError, match=r"binary\.json is not valid JSON \(.*codec.*\); redo it$"):
        read_json(binary, CheckpointCorruptError, "; redo it")


def test_load_torch_reads_tensors_and_refuses_junk_and_pickled_code(tmp_path: Path):
    good = tmp_path / "good.pt"
    torch.save({"w": torch.arange(3)}, good)
    assert torch.equal(load_torch(good, "weights file")["w"], torch.arange(3))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(InputFileError, match=r"junk\.pt is not a readable weights file \(.+\): it is truncated"):
        load_torch(junk, "weights file")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:40])
    with pytest.raises(CheckpointCorruptError, match=r"truncated\.pt is not a readable trainer state \(.+\): redo$"):
        load_torch(truncated, "trainer state", CheckpointCorruptError, "redo")
    code = tmp_path / "code.pt"
    torch.save({"f": Path}, code)  # a class: only a full unpickler would import it
    with pytest.raises(InputFileError, match=r"code\.pt is not a readable weights file \(Weights only load failed"):
        load_torch(code, "weights file")
    folder = tmp_path / "folder.pt"
    folder.mkdir()
    with pytest.raises(InputFileError, match=r"folder\.pt is not a readable weights file"):
        load_torch(folder, "weights file")
