"""Pieces shared by the hidden checks: quiet execution, data, checkpoints, short training runs."""
from __future__ import annotations

import contextlib
import functools
import sys
import warnings
from typing import Any, Callable, Iterator

import torch
from torch import nn

from aelib.checkpoints import CheckpointError, load_model
from aelib.data import load_mnist


@contextlib.contextmanager
def quiet():
    """Keep warnings and stray stderr writes out of a grade cell (nbgrader zeroes cells with stderr)."""
    with warnings.catch_warnings(), contextlib.redirect_stderr(sys.stdout):
        warnings.simplefilter("ignore")
        yield


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one CPU thread inside (reproducible, and no thrashing on a busy machine), then restore it."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def hidden_check(function: Callable) -> Callable:
    """Run a check quietly, so only its AssertionError (or success) reaches the notebook."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with quiet():
            return function(*args, **kwargs)
    return wrapper


def grading_device() -> torch.device:
    """The device for short training runs inside checks: the GPU when there is one."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def split(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and labels of the course's train or test split, as the grader sees them."""
    return load_mnist(name)


def as_plain(value: Any) -> Any:
    """A detached CPU copy of a tensor, or the type name of anything that is not a tensor."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().clone()
    return type(value).__name__


def require_tensor(value: Any, what: str, shape: tuple[int, ...] | None = None) -> torch.Tensor:
    """Assert that `value` is a finite float tensor (of `shape` when given) and return it."""
    assert isinstance(value, torch.Tensor), f"{what} should be a torch.Tensor, got {value}."
    if shape is not None:
        assert tuple(value.shape) == shape, f"{what} should have shape {shape}, got {tuple(value.shape)}."
    assert value.is_floating_point(), f"{what} should be a float tensor, got {value.dtype}."
    assert torch.isfinite(value).all(), f"{what} contains NaN or infinite values."
    return value


def load_submitted(model: nn.Module, filename: str) -> nn.Module:
    """Load a submitted checkpoint on the CPU, turning any problem into a failed check with its reason."""
    try:
        with contextlib.redirect_stdout(None):
            return load_model(model, filename, device="cpu")
    except CheckpointError as error:
        raise AssertionError(str(error)) from None


def construct(cls: Callable, *args, seed: int = 0) -> nn.Module:
    """Build a student's model with a fixed seed, so every run of a check sees the same weights."""
    torch.manual_seed(seed)
    try:
        return cls(*args)
    except NotImplementedError:
        raise AssertionError(f"{cls.__name__}({', '.join(map(repr, args))}) is not implemented yet.") from None


def train_briefly(model: nn.Module, images: torch.Tensor, steps: int, loss_of: Callable,
                  lr: float = 1e-3, batch_size: int = 64, seed: int = 0) -> nn.Module:
    """Train `model` for a few hundred Adam steps on `images`; `loss_of(model, batch)` gives the loss."""
    device = grading_device()
    model.to(device).train()
    images = images.to(device)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        index = torch.randint(len(images), (batch_size,), generator=generator).to(device)
        loss = loss_of(model, images[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.cpu().eval()
