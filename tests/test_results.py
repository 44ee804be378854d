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

from grader.collect.common import Inputs, prior_samples, split
from grader.collect.record import encode
from grader.judge import ae, beside, pictures
from grader.judge.common import agrees, in_range, judge_collection, require_tensor, within
from grader.judge.results import MAX_COMPARISON_LINES, judging, measure
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


RECORDING = {"agrees", "within", "in_range", "measure", "show_and_measure"}
UNRECORDED = {"allclose", "close", "equal", "isclose"}


def unrecorded_comparisons(source: str) -> list[str]:
    """Assertions in `source` that compare values with allclose, close or equal without recording the comparison."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Assert) and not (isinstance(node.test, ast.UnaryOp) and isinstance(node.test.op, ast.Not)):
            called = {ast.unparse(call.func).split(".")[-1] for call in ast.walk(node.test) if isinstance(call, ast.Call)}
            if called & UNRECORDED and not called & RECORDING:
                found.append(f"line {node.lineno}: {ast.unparse(node.test)[:80]}")
    return found


def test_every_judge_records_the_comparisons_it_asserts():
    # the feedback of a passed cell says how close each comparison came; an unrecorded one would say nothing
    assert unrecorded_comparisons("assert torch.allclose(got, expected, atol=1e-5), 'wrong'")  # the scan finds it
    assert not unrecorded_comparisons("assert not torch.equal(first, second), 'the same twice'")
    offenders = {path.name: found for path in JUDGES.glob("*.py") if (found := unrecorded_comparisons(path.read_text()))}
    assert not offenders, f"judges must assert comparisons with agrees, within or in_range: {offenders}"


@pytest.mark.parametrize("seed", range(20))
def test_agrees_decides_as_allclose_does_and_reports_the_closest_call(seed):
    generator = torch.Generator().manual_seed(seed)
    expected = torch.randn(50, generator=generator, dtype=torch.float64) * 10
    value = expected + torch.randn(50, generator=generator, dtype=torch.float64) * 10 ** -(seed % 7)
    if seed % 5 == 0:
        value[3] = math.nan
    elif seed % 5 == 1:
        value[3] = expected[3] = math.inf
    with judging() as results:
        agreement = agrees(value, expected, "f(x)", rtol=1e-4, atol=1e-5)
    assert bool(agreement) == torch.allclose(value, expected, rtol=1e-4, atol=1e-5)
    (recorded,) = results.comparisons
    assert recorded == agreement
    finite = torch.isfinite(value) & torch.isfinite(expected)
    ratios = ((value - expected).abs() / (1e-5 + 1e-4 * expected.abs()))[finite]
    if seed % 5 != 0:
        assert math.isclose(agreement.difference / agreement.allowed, float(ratios.max()), rel_tol=1e-9)


def test_comparisons_are_merged_into_one_line_each_and_a_failure_stays():
    with judging() as results:
        assert agrees(torch.zeros(3), torch.full((3,), 1e-7), "encode(x)", atol=1e-5)
        assert agrees(torch.zeros(3), torch.full((3,), 4e-6), "encode(x)", atol=1e-5)
        assert not agrees(torch.zeros(3), torch.ones(3), "encode(x)", atol=1e-5)
        assert agrees(torch.zeros(3), torch.full((3,), 2e-6), "encode(x)", atol=1e-5)
        assert within(torch.tensor([0.01, 0.03]), 0.05, "The mean of the noise", target="0")
        assert in_range(torch.tensor([0.2, 0.5]), "Decoder outputs", 0, 1)
        assert in_range(torch.tensor([0.1, 0.7]), "Decoder outputs", 0, 1)
        assert not in_range(torch.tensor([0.0, 0.7]), "The codes", 0, 1, strict=True)
    encode, noise, outputs, codes = results.comparisons
    assert not encode.passed and encode.difference == 1.0
    assert noise.summary() == "The mean of the noise: matches 0 (largest difference 0.03, 0.05 allowed)."
    assert outputs.summary() == "Decoder outputs: from 0.1 to 0.7, inside [0, 1]."
    assert codes.summary() == "The codes: from 0 to 0.7, not inside (0, 1)."
    assert results.summary() == [encode.summary(), codes.summary(), noise.summary(), outputs.summary()]


def test_a_check_of_shapes_alone_lists_the_shapes_it_checked():
    with judging() as results:
        for batch in range(1, 7):
            require_tensor(torch.zeros(batch, 2), f"Encoder(2) output for a batch of {batch}", (batch, 2))
        require_tensor(torch.zeros(3), "an output whose shape is not checked")
    lines = results.summary()
    assert lines[0] == "Encoder(2) output for a batch of 1: shape (1, 2), as required."
    assert len(lines) == MAX_COMPARISON_LINES + 1 and lines[-1] == "2 more outputs as required."
    with judging() as results:
        require_tensor(torch.zeros(1, 2), "Encoder(2) output", (1, 2))
        in_range(torch.zeros(1, 2), "Encoder(2) output", -1, 1)
    assert results.summary() == ["Encoder(2) output: from 0 to 0, inside [-1, 1]."]  # shapes only when nothing else


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


def picture_rows(verdict) -> int:
    """How many rows of digits the verdict's one picture has (grader.judge.pictures.image_rows' layout)."""
    (picture,) = verdict.pictures
    height = Image.open(io.BytesIO(base64.b64decode(picture))).height
    side, gap = 28 * pictures.SCALE, 4
    return (height - gap) // (side + gap)


def keep(folder: Path, reconstructions: torch.Tensor, digest: str) -> None:
    """A kept reference collection of 1_ae's test_reconstruction in `folder`, made under `digest`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "test_reconstruction.safetensors").write_bytes(encode({"reconstructions": reconstructions}))
    (folder / beside.DIGEST_FILE).write_text(digest)


def test_a_kept_reference_result_is_pictured_beside_the_students_only_when_current_and_sound(tmp_path, monkeypatch):
    monkeypatch.setattr(beside, "FOLDER", tmp_path)
    images = split("test")[0]
    student = (images + 0.05 * torch.randn(images.shape)).clamp(0, 1)
    alone = reconstruction_verdict(student)
    assert picture_rows(alone) == 2 and "beside a reference solution's" not in alone.message  # nothing kept
    keep(tmp_path / "1_ae", images.clone(), beside.collections_digest("1_ae"))
    shown = reconstruction_verdict(student)
    assert picture_rows(shown) == 3 and shown.passed
    assert "beside a reference solution's (its reconstructions of the same test images)" in shown.message
    assert shown.figures == alone.figures  # a picture, never a grade
    for digest, value in (("stale", images.clone()),  # made by other collectors or another source
                          (beside.collections_digest("1_ae"), images[:5].clone()),  # not the student's shape
                          (beside.collections_digest("1_ae"), images.clone().fill_(float("nan")))):
        keep(tmp_path / "1_ae", value, digest)
        verdict = reconstruction_verdict(student)
        assert picture_rows(verdict) == 2 and "beside" not in verdict.message, digest
    keep(tmp_path / "elsewhere", images.clone(), beside.collections_digest("1_ae"))
    kept = tmp_path / "1_ae" / "test_reconstruction.safetensors"
    kept.unlink()
    kept.symlink_to(tmp_path / "elsewhere" / kept.name)
    assert picture_rows(reconstruction_verdict(student)) == 2  # a link is not followed


def test_maps_are_drawn_side_by_side():
    points, labels = torch.randn(50, 2), torch.randint(0, 10, (50,))
    one = Image.open(io.BytesIO(pictures.maps([(points, labels, "one")])))
    two = Image.open(io.BytesIO(pictures.maps([(points, labels, "one"), (points * 2, labels, "two")])))
    assert two.width == 2 * one.width and two.height == one.height


def test_vae_samples_are_pictured_when_the_decoder_makes_images_and_cost_nothing_when_not():
    decoder = torch.nn.Sequential(torch.nn.Linear(10, 784), torch.nn.Sigmoid(), torch.nn.Unflatten(1, (1, 28, 28)))
    samples = prior_samples(decoder, 10)["samples"]
    assert tuple(samples.shape) == (10, 1, 28, 28) and torch.equal(samples, prior_samples(decoder, 10)["samples"])
    assert prior_samples(lambda codes: 1 / 0, 10) == {} and prior_samples(None, 10) == {}  # no samples, no failure
    assert [label for label, _ in pictures.sample_rows(samples)] == ["your samples"]  # no reference kept here
    assert pictures.sample_rows(torch.rand(3, 784)) == [] and pictures.sample_rows("images") == []
