"""What a judge measured and showed, and every message about a threshold, built in one place.

Judges test a number against a reference figure (grader/reference.py) with `measure`, never by hand: it
records a `Measurement` (value, threshold, direction, pass or fail), and a failure raises AssertionError with
a message built here, whose advice depends on how far the value is from the threshold. Exact checks
record each comparison with what a correct implementation gives (`Agreement`, through
`judge.common.agrees`). Judges of trained models add a picture of the student's results with `show`.
`judging()` gathers all of it for one cell; the verdict carries it into the graded cell's output, so the
feedback says what was measured, and against what, on a pass too.
"""
from __future__ import annotations

import base64
import contextlib
import math
from dataclasses import asdict, dataclass, field
from typing import Iterator

from grader.reference import Figure, figure_name

NEAR = 2.0  # a failing value within this many reference-to-threshold gaps of the threshold is "close"
MAX_COMPARISON_LINES = 4  # comparisons (or shapes) listed in a cell's feedback; the others are counted
BESIDE_CAPTION = "The picture shows your result beside a reference solution's ({what})."


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


@dataclass(frozen=True)
class Agreement:
    """One comparison of a student's values with what they should be on the same inputs, element by element."""
    what: str            # what was compared, in words: "make_encoder(2) on the hidden inputs"
    difference: float    # the difference at the element nearest to (or furthest past) its tolerance
    allowed: float       # the tolerance at that element
    passed: bool
    target: str = "a correct implementation"

    def __bool__(self) -> bool:
        return self.passed

    @property
    def key(self) -> tuple:
        """Comparisons with the same key share one line of feedback."""
        return ("agreement", self.what, self.target)

    @property
    def ratio(self) -> float:
        """The difference as a fraction of its tolerance (above 1: outside it)."""
        if self.allowed > 0:
            return self.difference / self.allowed
        return 0.0 if self.difference == 0 else math.inf

    def merged(self, earlier: "Agreement") -> "Agreement":
        """The one to report of this and an earlier comparison of the same key: a failure, else the closer call."""
        return earlier if not earlier.passed or earlier.ratio >= self.ratio else self

    def summary(self) -> str:
        """One line for the feedback: the largest difference against its tolerance."""
        verb = "matches" if self.passed else "does not match"
        return (f"{self.what}: {verb} {self.target} (largest difference {self.difference:.2g}, "
                f"{self.allowed:.2g} allowed).")


@dataclass(frozen=True)
class Span:
    """The range a student's values took, against the range they must lie in (a bound of None: open)."""
    what: str
    lowest: float
    highest: float
    low: float | None
    high: float | None
    passed: bool
    strict: bool = False  # the bounds themselves are outside

    def __bool__(self) -> bool:
        return self.passed

    @property
    def key(self) -> tuple:
        """Spans with the same key share one line of feedback."""
        return ("span", self.what, self.low, self.high, self.strict)

    def merged(self, earlier: "Span") -> "Span":
        """Both spans as one."""
        return Span(self.what, min(self.lowest, earlier.lowest), max(self.highest, earlier.highest), self.low,
                    self.high, self.passed and earlier.passed, self.strict)

    def summary(self) -> str:
        """One line for the feedback: the values' range against the bounds."""
        if self.low is not None and self.high is not None:
            bounds = f"inside ({self.low:g}, {self.high:g})" if self.strict else f"inside [{self.low:g}, {self.high:g}]"
        elif self.low is not None:
            bounds = f"{'above' if self.strict else 'at or above'} {self.low:g}"
        else:
            bounds = f"{'below' if self.strict else 'at or below'} {self.high:g}"
        return f"{self.what}: from {self.lowest:.3g} to {self.highest:.3g}, {'' if self.passed else 'not '}{bounds}."


@dataclass(frozen=True)
class Shape:
    """The shape of a student's output, as required (a wrong one fails before it is recorded)."""
    what: str
    shape: tuple[int, ...]
    passed: bool = True

    @property
    def key(self) -> tuple:
        """A shape is listed once."""
        return ("shape", self.what, self.shape)

    def merged(self, earlier: "Shape") -> "Shape":
        """The same shape."""
        return earlier

    def summary(self) -> str:
        """One line for the feedback."""
        return f"{self.what}: shape {self.shape}, as required."


@dataclass
class Results:
    """What the judge of one cell measured, compared and the pictures it drew."""
    measurements: list[Measurement] = field(default_factory=list)
    pictures: list[str] = field(default_factory=list)  # base64 PNG
    comparisons: list[Agreement | Span] = field(default_factory=list)  # one per key
    shapes: list[Shape] = field(default_factory=list)
    cell: tuple[str, str] | None = None                   # (notebook, grade id) of the cell judged, when declared
    beside: list[str] = field(default_factory=list)      # what its pictures show of a reference solution

    def figures(self) -> tuple[dict, ...]:
        """The measurements as plain data (they cross from the judge's process to nbgrader's as JSON)."""
        return tuple(asdict(m) for m in self.measurements)

    def summary(self) -> list[str]:
        """The feedback's lines for a cell: each figure that passed (a failing one's message says it all), every
        comparison, a failed one first, or (a check of shapes alone) the shapes."""
        lines = [m.summary() for m in self.measurements if m.passed]
        listed = sorted(self.comparisons, key=lambda c: c.passed) or ([] if lines else self.shapes)
        lines += [c.summary() for c in listed[:MAX_COMPARISON_LINES]]
        rest = listed[MAX_COMPARISON_LINES:]
        if rest:
            kind = "outputs" if listed is self.shapes else "comparisons"
            failed = sum(not c.passed for c in rest)
            lines.append(f"{len(rest)} more {kind}" + (f", {failed} of them not as required." if failed else
                                                       " as required."))
        if self.beside:
            lines.append(BESIDE_CAPTION.format(what="; ".join(dict.fromkeys(self.beside))))
        return lines


_CURRENT: list[Results] = []


@contextlib.contextmanager
def judging(cell: tuple[str, str] | None = None) -> Iterator[Results]:
    """Gather what the judge run inside measures and shows for `cell` (notebook, grade id)."""
    results = Results(cell=cell)
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


def judged_cell() -> tuple[str, str] | None:
    """The (notebook, grade id) of the cell being judged, None outside a declared check."""
    return _CURRENT[-1].cell if _CURRENT else None


def shown_beside(what: str) -> None:
    """Note that the pictures of the cell being judged show `what` of a reference solution."""
    for results in _CURRENT:
        results.beside.append(what)


def show(png: bytes) -> None:
    """Attach a PNG picture of the student's results to the cell being judged."""
    for results in _CURRENT:
        results.pictures.append(base64.b64encode(png).decode())


def compared(comparison):
    """Record an Agreement, Span or Shape for the cell being judged (one line per key: the comparisons merged)."""
    for results in _CURRENT:
        listed = results.shapes if isinstance(comparison, Shape) else results.comparisons
        for index, earlier in enumerate(listed):
            if earlier.key == comparison.key:
                listed[index] = comparison.merged(earlier)
                break
        else:
            listed.append(comparison)
    return comparison
