"""Unit tests of 2_dae's collectors and judges, messages, thresholds and the facts its text states, beyond the variant sweep."""
from __future__ import annotations

import math
import re

import pytest
import torch
import torch.nn.functional as F

from aelib.data import downsample, variance_mnist
from grader import notebooks, pipeline
from grader.collect import dae as collect
from grader.collect.common import Inputs, split
from grader.judge import judges_of
from grader.judge import dae as judge
from grader.reference import DAE as FIGURES

SOURCE = notebooks.build_notebook(pipeline.SOURCE / "2_dae.py")
INPUTS, OTHER = Inputs(7), Inputs(8)


def reference_namespace() -> dict:
    """The reference solution's definitions (set-up and solution cells only)."""
    return notebooks.definitions(SOURCE)


# --- what collection may hold --------------------------------------------------------------------

def test_collection_imports_no_judge_and_no_figure():
    text = (pipeline.REPO / "grader" / "collect" / "dae.py").read_text()
    assert "grader.reference" not in text and "grader.judge" not in text and "FIGURES" not in text
    assert "interpolate" not in text  # the bicubic baseline belongs to the judge


@pytest.mark.parametrize("grade_id", sorted(judges_of("2_dae")))
@pytest.mark.parametrize("garbage", [{}, {"cases": "list", "denoised": "tuple", "output": "str", "parameters": 5,
                                          "module": True, "default": "Tensor", "before": 0.0, "after": 0.0}])
def test_every_judge_rejects_garbage_with_a_message(grade_id, garbage):
    with pytest.raises(AssertionError):
        judges_of("2_dae")[grade_id](garbage, INPUTS)


def test_secret_inputs_follow_the_seed_and_ignore_the_global_seed():
    makers = [collect.noise_images, lambda i: collect.denoiser_test_set(i)[1], lambda i: collect.gate_inputs(i, 1)[0],
              lambda i: collect.dae_brief_test_set(i)[1], lambda i: collect.dae_trained_test_set(i)[1],
              lambda i: collect.dae_brief_subsets(i)[0], lambda i: collect.superres_brief_subsets(i)[1]]
    for make in makers:
        torch.manual_seed(1)
        first = make(INPUTS)
        torch.manual_seed(2)
        assert torch.equal(first, make(INPUTS))
        assert not torch.equal(first, make(OTHER))


# --- add_noise -----------------------------------------------------------------------------------

def noise_out(make_noise, seed: int = 0, inputs: Inputs = INPUTS) -> dict:
    """What collect_add_noise would store for add_noise(x, std) = x + make_noise(x, std, generator)."""
    generator = torch.Generator().manual_seed(seed)
    x = collect.noise_images(inputs)
    return {"input_after": x.clone(),
            "default": x + make_noise(x, 0.2, generator), "default_again": x + make_noise(x, 0.2, generator),
            "std_0.5": x + make_noise(x, 0.5, generator), "std_0.05": x + make_noise(x, 0.05, generator)}


def gaussian(x, std, generator):
    return std * torch.randn(x.shape, generator=generator)


@pytest.mark.parametrize("seed", range(5))
def test_judge_add_noise_accepts_correct_noise_whatever_the_seed(seed):
    judge.judge_add_noise(noise_out(gaussian, seed, Inputs(seed)), Inputs(seed))


def test_collect_add_noise_on_the_reference_is_accepted():
    out = collect.collect_add_noise(INPUTS, reference_namespace()["add_noise"])
    assert set(out) == {"default", "default_again", "std_0.5", "std_0.05", "input_after"}
    judge.judge_add_noise(out, INPUTS)


def test_judge_add_noise_measures_the_noise_from_its_own_inputs():
    # Noisy images made from another seed's digits are judged against this seed's digits: rejected.
    with pytest.raises(AssertionError):
        judge.judge_add_noise(noise_out(gaussian, 0, OTHER), INPUTS)


def test_judge_add_noise_names_the_mistake():
    with pytest.raises(AssertionError, match="std \\*\\* 2 as the standard deviation"):
        judge.judge_add_noise(noise_out(lambda x, std, g: gaussian(x, std ** 2, g)), INPUTS)
    with pytest.raises(AssertionError, match="std as the variance"):
        judge.judge_add_noise(noise_out(lambda x, std, g: gaussian(x, math.sqrt(std), g)), INPUTS)
    with pytest.raises(AssertionError, match="not independent"):
        judge.judge_add_noise(noise_out(lambda x, std, g: std * torch.randn(len(x), 1, 1, 1, generator=g)), INPUTS)
    with pytest.raises(AssertionError, match="not independent"):
        judge.judge_add_noise(noise_out(lambda x, std, g: std * torch.randn(1, *x.shape[1:], generator=g)), INPUTS)
    with pytest.raises(AssertionError, match="mean"):
        judge.judge_add_noise(noise_out(lambda x, std, g: gaussian(x, std, g) + 0.01), INPUTS)
    same = noise_out(gaussian)
    with pytest.raises(AssertionError, match="same noise"):
        judge.judge_add_noise(dict(same, default_again=same["default"]), INPUTS)
    with pytest.raises(AssertionError, match="in place"):
        judge.judge_add_noise(dict(same, input_after=same["default"]), INPUTS)
    with pytest.raises(AssertionError, match="do not clip"):
        judge.judge_add_noise(dict(same, default=same["default"].clamp(0, 1)), INPUTS)
    with pytest.raises(AssertionError, match="shape"):
        judge.judge_add_noise(dict(same, default=same["default"].flatten(1)), INPUTS)


def test_clipping_is_caught_even_with_small_noise():
    # std 0.05 keeps most pixels inside [0, 1]; clipping still shows in the range and in the statistics.
    clipped = noise_out(lambda x, std, g: (x + gaussian(x, std, g)).clamp(0, 1) - x)
    with pytest.raises(AssertionError):
        judge.judge_add_noise(clipped, INPUTS)


def test_the_noise_statistics_tolerance_comes_from_the_sample_size():
    n = collect.NOISE_IMAGES * 784
    tolerance = judge.STANDARD_ERRORS * math.sqrt(2 / (n - 1))  # relative tolerance of the variance: 2.1 %
    assert tolerance < 0.025
    with pytest.raises(AssertionError, match="variance"):
        judge.judge_add_noise(noise_out(lambda x, std, g: gaussian(x, 1.05 * std, g)), INPUTS)  # 10 % more variance
    judge.judge_add_noise(noise_out(lambda x, std, g: gaussian(x, 1.002 * std, g)), INPUTS)


# --- DAE -----------------------------------------------------------------------------------------

def gate_out(respond, inputs: Inputs = INPUTS) -> dict:
    """What collect_dae_gate would store for a model whose denoised output is respond(x)."""
    return {"cases": [{"denoised": respond(collect.gate_inputs(inputs, case)[0])} for case in range(collect.GATE_CASES)]}


def test_gate_inputs_have_zeroed_pixels_patches_and_an_all_zero_image():
    for case in range(collect.GATE_CASES):
        x, zero = collect.gate_inputs(INPUTS, case)
        assert torch.all(x[zero] == 0) and torch.all(x[~zero] != 0)
        assert zero[-1].all() and 0.3 < float(zero[:-1].float().mean()) < 0.6


def test_judge_dae_gate_accepts_gates_and_rejects_leaks():
    judge.judge_dae_gate(gate_out(lambda x: x * torch.sigmoid(torch.randn(x.shape))), INPUTS)
    judge.judge_dae_gate(gate_out(lambda x: x * 1e-2), INPUTS)
    for leak in (lambda x: x + 0.01 * torch.randn(x.shape),       # an additive skip
                 lambda x: torch.sigmoid(torch.randn(x.shape)),     # a gate on a constant
                 lambda x: torch.rand(x.shape)):                    # a plain decoder
        with pytest.raises(AssertionError, match="multiplies its input by a gate"):
            judge.judge_dae_gate(gate_out(leak), INPUTS)
    with pytest.raises(AssertionError, match="zeros everywhere"):
        judge.judge_dae_gate(gate_out(torch.zeros_like), INPUTS)
    with pytest.raises(AssertionError, match="incomplete"):
        judge.judge_dae_gate({"cases": gate_out(torch.zeros_like)["cases"][:1]}, INPUTS)


def test_judge_dae_gate_uses_its_own_zero_masks():
    # A perfect gate on another seed's inputs has other zeros: it leaks where this seed's inputs are 0.
    with pytest.raises(AssertionError, match="multiplies its input by a gate"):
        judge.judge_dae_gate(gate_out(lambda x: x, OTHER), INPUTS)


def test_collect_dae_gate_on_the_reference_is_accepted():
    out = collect.collect_dae_gate(INPUTS, reference_namespace()["DAE"])
    assert all(set(case) == {"denoised"} for case in out["cases"])  # the inputs are not echoed back
    judge.judge_dae_gate(out, INPUTS)


def test_judge_dae_reports_the_wrong_kind_and_shape():
    out = collect.collect_dae(INPUTS, reference_namespace()["DAE"])
    judge.judge_dae(out, INPUTS)
    broken = {k: v for k, v in out.items() if not k.startswith(("z_3_5", "denoised_3_5"))}
    broken["kind_3_5"] = "Tensor"
    with pytest.raises(AssertionError, match="should return a tuple \\(z, denoised_x\\), got 'Tensor'"):
        judge.judge_dae(broken, INPUTS)
    with pytest.raises(AssertionError, match="shape \\(5, 3\\)"):
        judge.judge_dae(dict(out, z_3_5=torch.zeros(5, 10)), INPUTS)
    with pytest.raises(AssertionError, match="nn.Module"):
        judge.judge_dae(dict(out, module_10=False), INPUTS)


def test_judge_dae_learns_measures_against_its_own_targets():
    clean, noisy = collect.dae_brief_test_set(INPUTS)
    judge.judge_dae_learns({"before": noisy, "after": clean + 0.05 * torch.randn(clean.shape)}, INPUTS)
    for lazy in (noisy, torch.zeros_like(clean)):
        with pytest.raises(AssertionError, match="reaches a test MSE of .*should be below 0.025"):
            judge.judge_dae_learns({"before": noisy, "after": lazy}, INPUTS)
    with pytest.raises(AssertionError, match="reaches a test MSE of .*should be below 0.025"):  # another seed's perfect answers
        judge.judge_dae_learns({"before": noisy, "after": collect.dae_brief_test_set(OTHER)[0]}, INPUTS)


def test_judge_dae_trained_checks_the_mse_then_the_codes():
    clean, noisy = collect.dae_trained_test_set(INPUTS)
    train_labels, test_labels = split("train")[1], split("test")[1]
    codes = {"train_codes": F.one_hot(train_labels, 10).float() + 0.1 * torch.randn(len(train_labels), 10),
             "test_codes": F.one_hot(test_labels, 10).float() + 0.1 * torch.randn(len(test_labels), 10)}
    judge.judge_dae_trained(dict(codes, denoised=clean), INPUTS)
    with pytest.raises(AssertionError, match="test MSE of 0.0[34].*should be below 0.016"):
        judge.judge_dae_trained(dict(codes, denoised=noisy), INPUTS)
    with pytest.raises(AssertionError, match="test MSE"):  # another seed's clean images
        judge.judge_dae_trained(dict(codes, denoised=collect.dae_trained_test_set(OTHER)[0]), INPUTS)
    with pytest.raises(AssertionError, match="logistic-regression classifier"):
        judge.judge_dae_trained(dict(codes, denoised=clean, test_codes=torch.randn(len(test_labels), 10)), INPUTS)
    with pytest.raises(AssertionError, match="codes z of the training images should have shape"):
        judge.judge_dae_trained(dict(codes, denoised=clean, train_codes=codes["train_codes"][:, :3]), INPUTS)


def test_the_optimal_gate_of_the_notebook_text():
    # E[x | x~] = x~ s_x^2 / (s_x^2 + s_n^2) = x~ sigmoid(log s_x^2 - log s_n^2), with MSE s_x^2 s_n^2 / (s_x^2 + s_n^2).
    generator = torch.Generator().manual_seed(0)
    p = torch.rand(200_000, generator=generator, dtype=torch.float64)
    x = p * torch.randn(p.shape, generator=generator, dtype=torch.float64)
    noisy = x + 0.2 * torch.randn(p.shape, generator=generator, dtype=torch.float64)
    gate = torch.sigmoid(torch.log(p ** 2) - math.log(0.2 ** 2))
    assert torch.allclose(gate, p ** 2 / (p ** 2 + 0.04))
    mse = float(((noisy * gate - x) ** 2).mean())
    theory = float((p ** 2 * 0.04 / (p ** 2 + 0.04)).mean())
    assert abs(mse - theory) < 0.02 * theory
    for worse in (1.0, 0.8 * gate, torch.clamp(1.2 * gate, max=1)):  # no gate, or a wrong one
        assert float(((noisy * worse - x) ** 2).mean()) > mse


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_dae_figures_quoted_in_the_notebook(seed):
    # All zeros (what a plain autoencoder learns) and the noisy inputs, on the judge's held-out images.
    clean, noisy = collect.dae_trained_test_set(Inputs(seed))
    assert abs(float((clean ** 2).mean()) - 0.123) < 0.005
    assert abs(float(((noisy - clean) ** 2).mean()) - 0.040) < 0.001
    assert FIGURES["brief_dae_mse"].threshold < 0.040 and FIGURES["dae_mse"].threshold < 0.040


def test_variance_inputs_carry_the_digit_only_in_their_variance():
    images, _ = split("test")
    draws = torch.stack([variance_mnist(images[:50], generator=torch.Generator().manual_seed(s)) for s in range(200)])
    assert float(draws.mean(0).abs().max()) < 0.3  # the mean is 0 everywhere
    assert torch.allclose(draws.std(0), images[:50], atol=0.2)  # the standard deviation is the digit


# --- Denoiser and SuperResolution ----------------------------------------------------------------

def test_judge_denoiser_trained_rejects_doing_nothing():
    clean, noisy = collect.denoiser_test_set(INPUTS)
    assert abs(float(((noisy - clean) ** 2).mean()) - 0.040) < 0.001
    judge.judge_denoiser_trained({"denoised": clean + 0.05 * torch.randn(clean.shape)}, INPUTS)
    for lazy in (noisy, noisy.clamp(0, 1), torch.full_like(clean, float(clean.mean()))):
        with pytest.raises(AssertionError, match="should be below"):
            judge.judge_denoiser_trained({"denoised": lazy}, INPUTS)
    with pytest.raises(AssertionError, match="should have shape"):
        judge.judge_denoiser_trained({"denoised": clean[:, :, :27]}, INPUTS)
    with pytest.raises(AssertionError, match="should be a torch.Tensor, got 'tuple'"):
        judge.judge_denoiser_trained({"denoised": "tuple"}, INPUTS)


def test_interpolation_baselines_and_thresholds():
    images, _ = split("test")
    nearest, bilinear, bicubic = (judge.interpolation_mse(images, mode) for mode in ("nearest", "bilinear", "bicubic"))
    assert bicubic < bilinear < nearest
    assert abs(bicubic - 0.0092) < 0.001 and abs(bilinear - 0.0148) < 0.001 and abs(nearest - 0.0162) < 0.001
    assert FIGURES["superres_mse"].threshold < bicubic and FIGURES["brief_superres_mse"].threshold < bicubic


def test_judge_super_resolution_rejects_interpolation():
    images, _ = split("test")
    bicubic = F.interpolate(downsample(images), scale_factor=2, mode="bicubic", align_corners=False)
    judge.judge_super_resolution_trained({"output": images + 0.02 * torch.randn(images.shape)}, INPUTS)
    with pytest.raises(AssertionError, match="bicubic interpolation: 0.009.*should be below"):
        judge.judge_super_resolution_trained({"output": bicubic}, INPUTS)
    with pytest.raises(AssertionError, match="should be a torch.Tensor"):
        judge.judge_super_resolution_trained({"output": "tuple"}, INPUTS)
    with pytest.raises(AssertionError, match="no trainable parameters"):
        judge.judge_super_resolution_learns({"parameters": 0}, INPUTS)
    held_out = images[collect.superres_brief_subsets(INPUTS)[1]]
    judge.judge_super_resolution_learns({"parameters": 10, "output": held_out}, INPUTS)
    small_bicubic = F.interpolate(downsample(held_out), scale_factor=2, mode="bicubic", align_corners=False)
    with pytest.raises(AssertionError, match="test MSE of 0.0.*bicubic interpolation.*should be below 0.0075"):
        judge.judge_super_resolution_learns({"parameters": 10, "output": small_bicubic}, INPUTS)
    with pytest.raises(AssertionError, match="test MSE of 0.*bicubic interpolation.*should be below 0.0075"):  # another seed's held-out images
        judge.judge_super_resolution_learns(
            {"parameters": 10, "output": images[collect.superres_brief_subsets(OTHER)[1]]}, INPUTS)


def test_judge_super_resolution_checks_both_batches():
    out = collect.collect_super_resolution(INPUTS, reference_namespace()["SuperResolution"])
    judge.judge_super_resolution(out, INPUTS)
    with pytest.raises(AssertionError, match="batch of 5 images .* should have shape \\(5, 1, 28, 28\\)"):
        judge.judge_super_resolution(dict(out, output_5=torch.zeros(5, 1, 27, 27)), INPUTS)


# --- thresholds ----------------------------------------------------------------------------------

@pytest.mark.parametrize("key", sorted(FIGURES))
def test_thresholds_sit_on_the_safe_side_of_the_reference(key):
    figure = FIGURES[key]
    assert figure.passes(figure.reference) and not figure.passes(figure.threshold)
    assert figure.margin >= 0.08


# --- what the executed reference notebook prints -------------------------------------------------

def printed_text() -> str:
    """Everything the reference notebook printed while training (executed once, then cached)."""
    executed = notebooks.read(pipeline.train_reference("2_dae") / "2_dae.ipynb")
    return "\n".join(output.get("text", "") for cell in executed.cells if cell.cell_type == "code"
                     for output in cell.get("outputs", []) if output.get("output_type") == "stream")


def printed_number(text: str, pattern: str) -> float:
    """The number captured by `pattern` in the printed text."""
    match = re.search(pattern, text)
    assert match, f"the reference notebook did not print {pattern!r}"
    return float(match.group(1))


def test_the_reference_notebook_reaches_what_its_text_promises():
    text = printed_text()
    assert printed_number(text, r"noisy inputs ([\d.]+), denoised") == pytest.approx(0.040, abs=0.001)
    assert FIGURES["denoiser_mse"].passes(printed_number(text, r"denoised ([\d.]+)\n"))
    assert FIGURES["dae_mse"].passes(printed_number(text, r"DAE ([\d.]+), all zeros"))
    assert FIGURES["dae_accuracy"].passes(printed_number(text, r"test accuracy ([\d.]+)"))
    bicubic = printed_number(text, r"bicubic: test MSE ([\d.]+)")
    superres = printed_number(text, r"SuperResolution: test MSE ([\d.]+)")
    assert FIGURES["superres_mse"].passes(superres) and not FIGURES["superres_mse"].passes(bicubic)
