"""What a judge measured and showed, and every message about a threshold, built in one place.

Judges test a number against a reference figure (grader/reference.py) with `measure`, never by hand: it
records a `Measurement` (value, threshold, direction, pass or fail), and a failure raises AssertionError with
a message built here, whose advice depends on how far the value is from the threshold. Judges of trained
models add a picture of the student's results with `show`. `judging()` gathers both for one cell; the
verdict carries them into the graded cell's output, so the feedback says what was measured on a pass too.
"""
from __future__ import annotations

import base64
import contextlib
import math
from dataclasses import asdict, dataclass, field
from typing import Iterator

from grader.reference import Figure, figure_name

NEAR = 2.0  # a failing value within this many reference-to-threshold gaps of the threshold is "close"


@dataclass(frozen=True)
class Measurement:
    """One figure a judge measured on a submission, against the threshold it must reach."""
    figure: str          # its name in grader/reference.py, e.g. "AE.ae10_mse"
    name: str            # what was measured, in words: "test MSE"
    value: float
    threshold: float
    reference: float
    higher_is_better: bool
    passed: bool
    digits: int = 4      # decimals the value is printed with

    @property
    def direction(self) -> str:
        """"above" or "below": where the value must lie."""
        return "above" if self.higher_is_better else "below"

    @property
    def spare(self) -> float:
        """How far the value lies on the good side of the threshold, relative to the threshold (negative: short)."""
        distance = self.value - self.threshold if self.higher_is_better else self.threshold - self.value
        return distance / abs(self.threshold) if math.isfinite(self.value) else -math.inf

    @property
    def near(self) -> bool:
        """Whether a value lies within NEAR reference-to-threshold gaps of the threshold."""
        gap = abs(self.reference - self.threshold)
        return math.isfinite(self.value) and abs(self.value - self.threshold) <= NEAR * gap

    def summary(self) -> str:
        """One line for the feedback: the value, the threshold and the margin, on a pass or a fail."""
        if self.passed:
            outcome = f"passed with {self.spare:.0%} to spare"
        else:
            outcome = "failed" + (f", {-self.spare:.0%} short" if math.isfinite(self.spare) else "")
        return (f"{self.name}: {number(self.value, self.digits)}, needs {self.direction} {self.threshold:g} "
                f"(a reference solution: {self.reference:g}): {outcome}.")


@dataclass
class Results:
    """What the judge of one cell measured and the pictures it drew."""
    measurements: list[Measurement] = field(default_factory=list)
    pictures: list[str] = field(default_factory=list)  # base64 PNG

    def figures(self) -> tuple[dict, ...]:
        """The measurements as plain data (they cross from the judge's process to nbgrader's as JSON)."""
        return tuple(asdict(m) for m in self.measurements)


_CURRENT: list[Results] = []


@contextlib.contextmanager
def judging() -> Iterator[Results]:
    """Gather what the judge run inside measures and shows."""
    results = Results()
    _CURRENT.append(results)
    try:
        yield results
    finally:
        _CURRENT.remove(results)


def number(value: float, digits: int = 4) -> str:
    """A value as the messages print it: `digits` decimals below 10, one decimal above."""
    if not math.isfinite(value):
        return str(value)
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.{digits}f}"


def measure(figure: Figure, value: float, subject: str, name: str, *, close: str, far: str = "",
            context: str = "", digits: int = 4, label: str = "") -> float:
    """Test `value` against `figure`, record it, and fail with a message naming both and what to do.

    `subject` and `name` make the sentence ("Your trained Denoiser" reaches a "test MSE" of ...); `context` adds
    comparisons after the value ("(the noisy inputs: 0.040)"); `close` is the advice when the value is near the
    threshold, `far` when it is far from it (default: `close`); `label` names the figure in the feedback's
    summary line when `name` alone is ambiguous.
    """
    value = float(value)
    passed = figure.passes(value)
    measurement = Measurement(figure_name(figure), label or name, value, figure.threshold, figure.reference,
                              figure.higher_is_better, passed, digits)
    for results in _CURRENT:
        results.measurements.append(measurement)
    if not passed:
        advice = close if measurement.near or not far else far
        raise AssertionError(
            f"{subject} reaches a {name} of {number(value, digits)}{context}; it should be {measurement.direction} "
            f"{figure.threshold:g} (a reference solution reaches about {figure.reference:g}). {advice}")
    return value


def show(png: bytes) -> None:
    """Attach a PNG picture of the student's results to the cell being judged."""
    for results in _CURRENT:
        results.pictures.append(base64.b64encode(png).decode())
