"""Safe checkpoint loading: every way a submitted file goes wrong ends in a clear CheckpointError."""
from __future__ import annotations

import os

import pytest
import torch
from torch import nn

from aelib.checkpoints import CheckpointError, load_model, save_model


class Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def model() -> nn.Module:
    return nn.Sequential(nn.Linear(3, 2))


def test_round_trip(tmp_path):
    original = model()
    save_model(original, tmp_path / "m.pth")
    loaded = load_model(model(), tmp_path / "m.pth")
    assert torch.equal(loaded[0].weight, original[0].weight) and not loaded.training


def test_missing_file_says_what_to_submit(tmp_path):
    with pytest.raises(CheckpointError, match="m.pth was not found.*skip_training = False.*submit"):
        load_model(model(), tmp_path / "m.pth")


def test_size_cap(tmp_path):
    save_model(model(), tmp_path / "m.pth")
    with pytest.raises(CheckpointError, match="more than"):
        load_model(model(), tmp_path / "m.pth", max_bytes=100)


def test_garbage(tmp_path):
    (tmp_path / "m.pth").write_bytes(b"\x00garbage" * 50)
    with pytest.raises(CheckpointError, match="could not be read"):
        load_model(model(), tmp_path / "m.pth")


def test_pickled_code_never_runs(tmp_path):
    marker = tmp_path / "ran"
    torch.save({"0.weight": Payload(marker)}, tmp_path / "m.pth")
    with pytest.raises(CheckpointError, match="not loaded for safety"):
        load_model(model(), tmp_path / "m.pth")
    assert not marker.exists()


def test_whole_model_instead_of_state_dict(tmp_path):
    torch.save([torch.zeros(2)], tmp_path / "m.pth")
    with pytest.raises(CheckpointError, match="state_dict"):
        load_model(model(), tmp_path / "m.pth")


def test_wrong_architecture(tmp_path):
    save_model(nn.Sequential(nn.Linear(5, 2)), tmp_path / "m.pth")
    with pytest.raises(CheckpointError, match="does not fit Sequential.*size mismatch"):
        load_model(model(), tmp_path / "m.pth")
