"""Training helpers: device choice and progress bars that stay off stderr."""
from __future__ import annotations

import sys
from typing import Iterable, Iterator, TypeVar

import torch
from tqdm import tqdm

T = TypeVar("T")


def pick_device(skip_training: bool) -> torch.device:
    """The GPU when training and one is available, else the CPU (grading always uses the CPU)."""
    if not skip_training and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def progress(iterable: Iterable[T], **kwargs) -> Iterator[T]:
    """A tqdm progress bar written to stdout (nbgrader treats anything on stderr as a failure)."""
    kwargs.setdefault("file", sys.stdout)
    kwargs.setdefault("mininterval", 0.5)
    return tqdm(iterable, **kwargs)
