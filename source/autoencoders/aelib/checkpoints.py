"""Save trained models and load them back safely (the files you submit with your notebook)."""
from __future__ import annotations

import pickle
from pathlib import Path

import torch
from torch import nn

MAX_CHECKPOINT_BYTES = 64 * 2**20


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable or does not fit the model."""


def save_model(model: nn.Module, filename: str | Path) -> None:
    """Save the parameters (`state_dict`) of `model` to `filename`."""
    torch.save(model.state_dict(), filename)
    print(f"Saved the model to {filename}.")


def _read_state_dict(path: Path, max_bytes: int) -> dict:
    """Read a state_dict from `path` without running any code stored in it."""
    if not path.is_file():
        raise CheckpointError(
            f"{path.name} was not found in {path.parent.resolve()}. Train the model with "
            f"skip_training = False, run the cell that saves it, and submit {path.name} "
            "together with your notebook.")
    size = path.stat().st_size
    if size > max_bytes:
        raise CheckpointError(
            f"{path.name} is {size / 2**20:.1f} MiB, more than the {max_bytes / 2**20:.0f} MiB "
            "allowed. Save only the model's state_dict (use save_model) and keep the model small.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "GLOBAL" not in str(error):  # anything but a blocked class or function: not a checkpoint
            raise CheckpointError(
                f"{path.name} is not a PyTorch checkpoint (it could not be read: {str(error)[:200]}). "
                "Save it again with save_model(model, filename) and resubmit it.") from None
        raise CheckpointError(
            f"{path.name} holds Python objects other than tensors (for example a whole model saved with "
            "torch.save(model, ...)), which are not loaded for safety. Save only the parameters with "
            "save_model(model, filename) and resubmit the file.") from None
    except Exception as error:  # any other unreadable file ends up here
        raise CheckpointError(
            f"{path.name} could not be read as a PyTorch state_dict ({type(error).__name__}: "
            f"{str(error).splitlines()[0][:200] if str(error) else 'no details'}). "
            "Save it again with save_model(model, filename) and resubmit it.") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(
            f"{path.name} does not hold a state_dict (a dict of tensors). "
            "Save it with save_model(model, filename), not torch.save(model, ...).")
    return state


def load_model(model: nn.Module, filename: str | Path, device: str | torch.device = "cpu",
               max_bytes: int = MAX_CHECKPOINT_BYTES) -> nn.Module:
    """Load the parameters saved in `filename` into `model`, move it to `device` and return it in eval mode."""
    state = _read_state_dict(Path(filename), max_bytes)
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        details = " ".join(str(error).split())[:400]
        raise CheckpointError(
            f"{Path(filename).name} does not fit {type(model).__name__}: {details}. "
            "Did you change the class after training? Train again and save the model.") from None
    print(f"Loaded the model from {filename}.")
    return model.to(device).eval()
