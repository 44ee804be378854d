"""Collection helpers shared by every notebook: secret inputs, storing results, calling student code safely."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import nn

from aelib.checkpoints import CheckpointError, load_model
from aelib.data import DatasetNotFoundError, load_mnist
from grader.collect.layout import GRADING_DIR, INPUTS_FILE, collected_relative
from grader.collect.record import encode

PICTURED_SAMPLES, PICTURED_SAMPLES_SEED = 10, 0  # VAE samples in the feedback: the same codes for everyone
SEED_ENV = "AECOURSE_GRADING_SEED"     # for running hidden tests outside nbgrader (tests, a maintainer)
ERROR_KEY = "collection_error"         # what `store` writes when the student's code raised
FAULT_KEY = "grading_fault"            # what `store` writes when the grading side failed in the kernel


class CollectionFailed(Exception):
    """Raised by collectors with a message for the student when the student's code cannot be collected from."""


class GraderSideError(Exception):
    """The grading side failed where it ran (course data or grading inputs missing), not the student: no score, a retry."""


@dataclass(frozen=True)
class Inputs:
    """The submission's secret seed, and the inputs both sides derive from it."""
    seed: int

    def generator(self, stream: str) -> torch.Generator:
        """A torch generator for the stream of random inputs named `stream` (the judge derives the same one)."""
        if not isinstance(stream, str) or not stream:
            raise TypeError(f"a stream of secret inputs is named by a string, got {stream!r}")
        digest = hashlib.blake2b(f"{self.seed}/{stream}".encode(), digest_size=8).digest()
        return torch.Generator().manual_seed(int.from_bytes(digest, "big") >> 1)

    def subset(self, total: int, count: int, stream: str) -> torch.Tensor:
        """`count` distinct indices out of `total`, sorted, chosen by the stream named `stream`."""
        return torch.randperm(total, generator=self.generator(stream))[:count].sort().values

    def torch_seed(self, stream: str) -> int:
        """An integer seed for `torch.manual_seed` drawn from the stream named `stream`."""
        return int(torch.randint(2**31 - 1, (1,), generator=self.generator(stream)))


def grading_inputs(folder: Path | None = None) -> Inputs:
    """The inputs the TA's process handed to this kernel (or the seed in AECOURSE_GRADING_SEED)."""
    path = Path(folder or Path.cwd()) / GRADING_DIR / INPUTS_FILE
    if path.is_file():
        return Inputs(int(json.loads(path.read_text())["seed"]))
    if os.environ.get(SEED_ENV):
        return Inputs(int(os.environ[SEED_ENV]))
    raise GraderSideError("No grading inputs were handed to this kernel: hidden tests run only under autograde.")


def collected_path(grade_id: str, folder: Path | None = None) -> Path:
    """Where the collection of grade cell `grade_id` is stored."""
    return Path(folder or Path.cwd()) / collected_relative(grade_id)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
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


def store(grade_id: str, collector: Callable, *student_objects: Any) -> None:
    """Run `collector(inputs, *student_objects)` and save what it returns for the judge of `grade_id`."""
    path = collected_path(grade_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    with quiet(), single_thread():
        try:
            data = collector(grading_inputs(), *student_objects)
        except GraderSideError as error:
            data = {FAULT_KEY: str(error)[:2000]}
        except (CollectionFailed, AssertionError) as error:
            data = {ERROR_KEY: str(error)}
        except Exception as error:  # the student's code raised: the judge reports it
            frames = traceback.extract_tb(error.__traceback__)
            where = f" (in {frames[-1].name}, line {frames[-1].lineno})" if frames else ""
            data = {ERROR_KEY: f"{type(error).__name__}: {str(error)[:500]}{where}"}
    path.write_bytes(encode(data))
    print(f"Collected the results of {grade_id} for grading.")


def call(function: Callable, *args, **kwargs) -> Any:
    """Call a student's function; a stub becomes a CollectionFailed that says it is not implemented."""
    try:
        return function(*args, **kwargs)
    except NotImplementedError:
        raise CollectionFailed(f"{getattr(function, '__name__', 'This function')} is not implemented yet.") from None


def construct(cls: Callable, *args, seed: int = 0) -> nn.Module:
    """Build a student's model with a fixed seed, so every run of a collector sees the same weights."""
    torch.manual_seed(seed)
    try:
        return cls(*args)
    except NotImplementedError:
        raise CollectionFailed(f"{getattr(cls, '__name__', 'The class')}({', '.join(map(repr, args))}) "
                               "is not implemented yet.") from None


def load_submitted(model: nn.Module, filename: str) -> nn.Module:
    """Load a submitted checkpoint on the CPU; any problem becomes a CollectionFailed with its reason."""
    try:
        with contextlib.redirect_stdout(None):
            return load_model(model, filename, device="cpu")
    except CheckpointError as error:
        raise CollectionFailed(str(error)) from None


def prior_samples(decode: Callable, components: int) -> dict:
    """{"samples": images `decode` makes of fixed codes from the prior N(0, I)}, for the feedback's picture only.

    No verdict depends on them, so a decoder that fails here costs nothing: the picture shows no samples.
    """
    codes = torch.randn(PICTURED_SAMPLES, components, generator=torch.Generator().manual_seed(PICTURED_SAMPLES_SEED))
    try:
        with torch.no_grad():
            images = decode(codes)
    except Exception:
        return {}
    return {"samples": as_plain(images)} if isinstance(images, torch.Tensor) else {}


def as_plain(value: Any) -> Any:
    """A detached, dense CPU copy of a tensor, or the type name of anything that is not a tensor."""
    if isinstance(value, torch.Tensor):
        value = value.detach()
        if value.layout != torch.strided:
            value = value.to_dense()
        return value.as_subclass(torch.Tensor).cpu().clone()
    return type(value).__name__


SAMPLING_COPIES = 1000  # forward passes of each image when checking the codes a VAE draws


def sampled_codes(model: nn.Module, decode: str, images: torch.Tensor, train: bool) -> dict:
    """The codes a VAE's forward decodes for `SAMPLING_COPIES` copies of each image, beside its z_mean and z_logvar.

    `decode` names what forward must decode with: a submodule (`decoder`) or a method (`decode`); what it
    receives is recorded. The judge tests that the codes are z_mean + exp(z_logvar / 2) * eps, eps ~ N(0, I).
    """
    batch = images.repeat_interleave(SAMPLING_COPIES, dim=0)
    received: list[torch.Tensor] = []
    target = getattr(model, decode, None)
    if isinstance(target, nn.Module):
        handle = target.register_forward_pre_hook(lambda module, args: received.append(as_plain(args[0])))
        restore = handle.remove
    elif callable(target):
        def recording(z, *args, **kwargs):
            received.append(as_plain(z))
            return target(z, *args, **kwargs)
        setattr(model, decode, recording)
        restore = lambda: delattr(model, decode)  # noqa: E731 (the class's method shows through again)
    else:
        return {"codes": f"no {decode}"}
    model.train(train)
    try:
        with torch.no_grad():
            output = call(model, batch)
    finally:
        restore()
    if not isinstance(output, tuple) or len(output) != 3:
        return {"codes": type(output).__name__}
    return {"codes": received[0] if len(received) == 1 else f"{len(received)} calls",
            "z_mean": as_plain(output[1]), "z_logvar": as_plain(output[2])}


def split(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and labels of the course's train or test split (never downloaded while grading)."""
    try:
        return load_mnist(name, download=False)
    except (DatasetNotFoundError, ValueError, OSError) as error:
        raise GraderSideError(f"the course's MNIST files could not be read where this grading ran: {error}") from None


def grading_device() -> torch.device:
    """The device for short training runs inside collectors: the GPU when there is one."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


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
