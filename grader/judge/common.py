"""Judging helpers shared by every notebook: reading collected files safely, and tests of plain values.

Judges run in the TA's process, never in a student's kernel. They receive what a collector stored
(plain tensors and numbers in the format of grader/collect/record.py, read without following links and
decoded under caps) and the submission's `Inputs`, from which
they derive the true inputs and targets themselves: nothing the kernel wrote is trusted beyond being data.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

import torch

from grader.judge.carry import NO_RESULTS, Verdict, carry_out  # noqa: F401 (judges and tests import them from here)
from grader.collect.common import ERROR_KEY, FAULT_KEY, SAMPLING_COPIES, Inputs, quiet, single_thread
from grader.collect.record import RecordError, decode
from grader.checks import declaration, task_of
from grader.faults import GradingFault
from grader.judge.results import Agreement, Results, Shape, Span, compared, judging, measure, show
from grader.reference import Figure

# The fully connected 784-128-32-128-784 autoencoder that 1_ae (compression, sparse) and 2_dae (denoiser) share.
COMPRESSION_LAYERS = sorted([(128, 784), (32, 128), (128, 32), (784, 128)])
COMPRESSION_PARAMETERS = 784 * 128 + 128 + 128 * 32 + 32 + 32 * 128 + 128 + 128 * 784 + 784

def load_collected(carried: bytes | str) -> Any:
    """The collection in `carried` (raw bytes from `carry_out`), decoded under caps; AssertionError when unusable."""
    if isinstance(carried, str):
        raise AssertionError(carried)
    try:
        return decode(carried)
    except RecordError as error:
        raise AssertionError(f"The results collected for this cell were rejected: {error}.") from None


def judge_collection(judge: Callable, carried: bytes | str, inputs: Inputs) -> Verdict:
    """Run `judge` on one cell's carried-out collection: a verdict for the student's doing, GradingFault for ours.

    The student's doing: a failed check (AssertionError), a collection missing, unreadable, over a cap or
    holding the error their code raised, and judging that runs out of memory. The grading side's: a fault
    the kernel recorded (course data missing there) and any other exception of the judge.
    """
    declared = declaration(judge)
    cell = (declared.notebook, declared.grade_id) if declared else None
    with quiet(), single_thread(), torch.no_grad(), judging(cell) as results:
        try:
            data = load_collected(carried)
            if isinstance(data, dict) and FAULT_KEY in data:
                raise GradingFault(f"in the grading kernel: {str(data[FAULT_KEY])[:500]}")
            if isinstance(data, dict) and ERROR_KEY in data:
                raise AssertionError(str(data[ERROR_KEY])[:2000])
            if not isinstance(data, dict):
                raise AssertionError("The results collected for this cell are not in the expected form.")
            judge(Collected(data), inputs)
        except AssertionError as error:
            return verdict(False, str(error) or "A hidden test failed.", results)
        except MemoryError:
            return Verdict(False, "Judging this cell ran out of memory (the judge's memory limit): the results "
                                  "collected for it are too large to judge; they earn no points.")
        except GradingFault:
            raise
        except Exception as error:
            raise GradingFault(f"the judge {getattr(judge, '__name__', judge)} raised {type(error).__name__}: "
                               f"{str(error)[:500]}") from error
    task = task_of(judge)
    return verdict(True, f"Hidden tests passed: {task}" if task else "Hidden tests passed.", results)


def verdict(passed: bool, message: str, results: Results) -> Verdict:
    """A verdict whose message ends with the cell's summary: the figures that passed, the comparisons made and
    what its pictures show of a reference solution."""
    lines = results.summary()
    text = "\n".join([message, *lines]) if lines else message
    return Verdict(passed, text, results.figures(), tuple(results.pictures))


class Collected(dict):
    """A collection as judges read it: a key the collector should have stored but did not fails the cell."""

    def __getitem__(self, key):
        if key not in self:
            raise AssertionError(f"The results collected for this cell lack {key!r}: they earn no points.")
        return super().__getitem__(key)


def judge_cell(judge: Callable, grade_id: str, folder: Path, inputs: Inputs) -> Verdict:
    """Run `judge` on what the kernel collected for `grade_id` in `folder` (in this process: trusted folders only)."""
    return judge_collection(judge, carry_out(folder, grade_id), inputs)


def require_tensor(value: Any, what: str, shape: tuple[int, ...] | None = None) -> torch.Tensor:
    """Assert that `value` is a finite float tensor (of `shape` when given) and return it."""
    assert isinstance(value, torch.Tensor), f"{what} should be a torch.Tensor, got {describe(value)}."
    if shape is not None:
        assert tuple(value.shape) == tuple(shape), f"{what} should have shape {tuple(shape)}, got {tuple(value.shape)}."
    assert value.is_floating_point(), f"{what} should be a float tensor, got {value.dtype}."
    assert torch.isfinite(value).all(), (
        f"{what} contains NaN or infinite values: usually a training run that diverged (a learning rate too high) "
        "or a log or division of zero (clamp the argument, e.g. x.clamp_min(1e-7)). Check the losses the notebook "
        "printed while training.")
    if shape is not None:
        compared(Shape(what, tuple(shape)))
    return value


def require_scalar(value: Any, what: str, reduce_hint: str = "reduce over the batch too") -> float:
    """The float of a finite scalar tensor, or a failed test saying what the function returned."""
    assert isinstance(value, torch.Tensor), f"{what} should return a torch scalar tensor, got {describe(value)}."
    assert value.numel() == 1 and value.dim() == 0, (
        f"{what} should return a scalar (shape ()), got shape {tuple(value.shape)}: {reduce_hint}.")
    result = float(value)
    assert math.isfinite(result), f"{what} returned {result}."
    return result


def range_advice(outputs: torch.Tensor, what: str, fix: str) -> str:
    """Advice for outputs outside the images' [0, 1] (empty when they lie inside): `fix` says how to get there."""
    low, high = float(outputs.min()), float(outputs.max())
    if low >= 0 and high <= 1:
        return ""
    return (f"Your {what} range from {low:.3g} to {high:.3g}, outside the images' [0, 1]: {fix}, then train, save "
            "and submit again.")


def show_and_measure(picture: bytes, figure: Figure, value: float, subject: str, name: str, *, close: str,
                     far: str = "", context: str = "", digits: int = 4,
                     range_check: tuple[torch.Tensor, str, str] | None = None) -> float:
    """Show a picture of the student's results, then test `value` against `figure` as `results.measure` does.

    `range_check` is (outputs, what they are, how to fix them) for outputs that belong in the images' [0, 1]:
    outside it, that is the advice instead of `close` and `far`.
    """
    show(picture)
    wrong_range = range_advice(*range_check) if range_check is not None else ""
    return measure(figure, value, subject, name, close=wrong_range or close, far=wrong_range or far, context=context,
                   digits=digits)


def describe(value: Any) -> str:
    """A short description of a collected value for messages (collectors store type names for non-tensors)."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def close(value: float, expected: float, rtol: float = 1e-4, atol: float = 1e-5) -> bool:
    """Whether two finite numbers agree as `agrees` decides, unrecorded: for hints that guess what a wrong value means."""
    value, expected = torch.tensor(float(value), dtype=torch.float64), torch.tensor(float(expected), dtype=torch.float64)
    return bool(torch.isfinite(value)) and bool(torch.isclose(value, expected, rtol=rtol, atol=atol))


def within(difference: Any, allowed: Any, what: str, target: str = "a correct implementation") -> Agreement:
    """Whether every difference is at most its tolerance (NaN never is), recorded for the cell's feedback."""
    difference, allowed = torch.broadcast_tensors(torch.as_tensor(difference, dtype=torch.float64).detach(),
                                                  torch.as_tensor(allowed, dtype=torch.float64).detach())
    if difference.numel() == 0:
        return compared(Agreement(what, 0.0, 0.0, True, target))
    difference, allowed = difference.reshape(-1), allowed.reshape(-1)
    ratio = torch.where(allowed > 0, difference / allowed.clamp_min(1e-300),
                        torch.where(difference > 0, math.inf, 0.0))
    worst = int(torch.nan_to_num(ratio, nan=math.inf).argmax())
    passed = bool((difference <= allowed).all())
    return compared(Agreement(what, float(difference[worst]), float(allowed[worst]), passed, target))


def in_range(values: torch.Tensor, what: str, low: float | None = None, high: float | None = None,
             strict: bool = False) -> Span:
    """Whether every value lies within the bounds (excluded when `strict`; None: open), recorded for the feedback."""
    values = values.detach().double()
    if values.numel() == 0:
        return compared(Span(what, math.nan, math.nan, low, high, True, strict))
    lowest, highest = float(values.min()), float(values.max())
    above = low is None or (lowest > low if strict else lowest >= low)
    below = high is None or (highest < high if strict else highest <= high)
    return compared(Span(what, lowest, highest, low, high, above and below, strict))


def agrees(value: Any, expected: Any, what: str, *, rtol: float = 0.0, atol: float = 0.0,
           target: str = "a correct implementation") -> Agreement:
    """Whether `value` equals `expected` elementwise as torch.allclose decides (|v - e| <= atol + rtol |e|), recorded
    for the cell's feedback; the Agreement is true or false and holds the largest difference."""
    value = torch.as_tensor(value, dtype=torch.float64).detach()
    expected = torch.as_tensor(expected, dtype=torch.float64).detach()
    try:
        torch.broadcast_shapes(value.shape, expected.shape)
    except RuntimeError:
        return compared(Agreement(what, math.inf, atol, False, target))
    difference = torch.where(value == expected, 0.0, (value - expected).abs())  # equal infinities agree
    return within(difference, atol + rtol * expected.abs(), what, target)


def require_reparameterised(sampled: Any, what: str, decode: str) -> None:
    """Codes a VAE decoded are z_mean + exp(z_logvar / 2) * eps with eps ~ N(0, I), judged per image and dimension."""
    assert isinstance(sampled, dict) and isinstance(sampled.get("codes"), torch.Tensor), (
        f"{what}'s forward should decode the codes it samples with {decode} once per call (got "
        f"{describe(sampled.get('codes') if isinstance(sampled, dict) else sampled)}).")
    z_mean = require_tensor(sampled.get("z_mean"), f"z_mean of {what}")
    z = require_tensor(sampled["codes"], f"the codes {what} decodes", tuple(z_mean.shape))
    z_logvar = require_tensor(sampled.get("z_logvar"), f"z_logvar of {what}", tuple(z_mean.shape))
    noise = ((z.double() - z_mean.double()) / torch.exp(0.5 * z_logvar.double())).reshape(-1, SAMPLING_COPIES,
                                                                                          z.shape[1])
    mean, std = noise.mean(dim=1), noise.std(dim=1)
    # 1,000 draws a dimension: the mean of N(0, 1) noise lies within 0.15 and its spread within 12 % of 1 (about 5 sigma)
    assert within(mean.abs(), 0.15, f"The mean of the noise eps in the codes {what} decodes", target="0") and within(
        (std - 1).abs(), 0.12, f"The standard deviation of the noise eps in the codes {what} decodes", target="1"), (
        f"The codes {what} decodes are not z_mean + exp(z_logvar / 2) * eps with eps ~ N(0, I): over 1,000 forward "
        f"passes of one image, (z - z_mean) / exp(z_logvar / 2) has means from {float(mean.min()):.2f} to "
        f"{float(mean.max()):.2f} and standard deviations from {float(std.min()):.2f} to {float(std.max()):.2f} "
        "(expected 0 and 1). Draw eps with torch.randn_like and scale it by the standard deviation exp(z_logvar / 2).")
