"""What judges measure and show: figures against thresholds, messages built in one place, pictures of results."""
from __future__ import annotations

import ast
import base64
import io
import math
from pathlib import Path

import pytest
import torch
from PIL import Image

from grader.collect.common import Inputs, split
from grader.collect.record import encode
from grader.judge import ae
from grader.judge.common import judge_collection
from grader.judge.results import judging, measure
from grader.reference import AE

JUDGES = Path(__file__).resolve().parent.parent / "grader" / "judge"
FIGURE_ATTRIBUTES = {"threshold", "reference", "passes", "higher_is_better", "margin"}
INPUTS = Inputs(2024)


def hand_formatted(source: str) -> list[str]:
    """Lines of `source` that read a figure's threshold or test it themselves instead of calling `measure`."""
    return [f"line {node.lineno}: .{node.attr}" for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Attribute) and node.attr in FIGURE_ATTRIBUTES]


def test_no_judge_tests_or_words_a_threshold_by_hand():
    assert hand_formatted('assert figure.passes(v), f"should be below {figure.threshold}"')  # the scan finds it
    offenders = {path.name: found for path in JUDGES.glob("*.py") if path.name != "results.py"
                 if (found := hand_formatted(path.read_text()))}
    assert not offenders, f"judges must test figures with grader.judge.results.measure: {offenders}"


def test_a_passing_figure_is_recorded_with_its_margin():
    with judging() as results:
        assert measure(AE["ae10_mse"], 0.0223, "Your model", "test MSE", close="train longer") == 0.0223
    (measured,) = results.measurements
    assert measured.passed and measured.figure == "AE.ae10_mse" and measured.threshold == 0.032
    assert measured.summary() == ("test MSE: 0.0223, needs below 0.032 (a reference solution: 0.0249): "
                                  "passed with 30% to spare.")


@pytest.mark.parametrize("value, advice", [(0.034, "train longer"), (0.2, "check the model"),
                                           (math.nan, "check the model")])
def test_a_failing_figure_says_how_far_it_is_and_advice_for_that_distance(value, advice):
    with judging() as results, pytest.raises(AssertionError) as failure:
        measure(AE["ae10_mse"], value, "Your model", "test MSE", close="train longer", far="check the model")
    message = str(failure.value)
    assert message.startswith(f"Your model reaches a test MSE of {value:.4f}; it should be below 0.032 (a "
                              "reference solution reaches about 0.0249).")
    assert message.endswith(advice) and not results.measurements[0].passed
    assert "failed" in results.measurements[0].summary()


def test_higher_is_better_figures_are_worded_the_other_way():
    with judging() as results:
        measure(AE["ae10_accuracy"], 0.9, "A classifier", "accuracy", digits=3, close="")
    assert results.measurements[0].summary().startswith("accuracy: 0.900, needs above 0.8")


def reconstruction_verdict(reconstructions: torch.Tensor):
    """The verdict of 1_ae's test_reconstruction for these reconstructions of the held-out images."""
    return judge_collection(ae.judge_reconstruction, encode({"reconstructions": reconstructions}), INPUTS)


def test_a_trained_model_verdict_carries_its_figure_and_a_picture():
    images = split("test")[0]
    good = reconstruction_verdict((images + 0.05 * torch.randn(images.shape)).clamp(0, 1))
    assert good.passed and "per-pixel test MSE: 0.00" in good.message and "to spare" in good.message
    assert [figure["figure"] for figure in good.figures] == ["AE.ae10_mse"]
    (picture,) = good.pictures
    assert Image.open(io.BytesIO(base64.b64decode(picture))).format == "PNG"
    blurred = reconstruction_verdict(torch.full_like(images, float(images.mean())))
    assert not blurred.passed and blurred.pictures and "far from it" in blurred.message


def test_outputs_outside_the_image_range_get_the_sigmoid_advice():
    images = split("test")[0]
    verdict = reconstruction_verdict(images * 100 - 50)
    assert not verdict.passed and "outside the images' [0, 1]: end the decoder with a sigmoid" in verdict.message


def test_nan_outputs_get_advice_on_where_nan_comes_from():
    images = split("test")[0]
    verdict = reconstruction_verdict(torch.full_like(images, float("nan")))
    assert not verdict.passed and "NaN or infinite" in verdict.message and "learning rate" in verdict.message
