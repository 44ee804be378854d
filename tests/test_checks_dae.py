"""Unit tests of 2_dae's judges, messages, thresholds and the facts its text states, beyond the variant sweep."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from aelib.data import downsample, variance_mnist
from grader import notebooks, pipeline
from grader.checks import dae as checks
from grader.reference import DAE as FIGURES

SOURCE = notebooks.build_notebook(pipeline.SOURCE / "2_dae.py")


def reference_namespace() -> dict:
    return notebooks.definitions(SOURCE)


# --- add_noise -----------------------------------------------------------------------------------

def noise_out(make_noise, seed: int = 0) -> dict:
    """What collect_add_noise would return for add_noise(x, std) = x + make_noise(x, std, generator)."""
    generator = torch.Generator().manual_seed(seed)
    x = checks._noise_inputs()
    return {"x": x, "input_after": x.clone(),
            "default": x + make_noise(x, 0.2, generator), "default_again": x + make_noise(x, 0.2, generator),
            "std_0.5": x + make_noise(x, 0.5, generator), "std_0.05": x + make_noise(x, 0.05, generator)}


def gaussian(x, std, generator):
    return std * torch.randn(x.shape, generator=generator)


@pytest.mark.parametrize("seed", range(5))
def test_judge_add_noise_accepts_correct_noise_whatever_the_seed(seed):
    checks.judge_add_noise(noise_out(gaussian, seed))


def test_judge_add_noise_names_the_mistake():
    with pytest.raises(AssertionError, match="std \\*\\* 2 as the standard deviation"):
        checks.judge_add_noise(noise_out(lambda x, std, g: gaussian(x, std ** 2, g)))
    with pytest.raises(AssertionError, match="std as the variance"):
        checks.judge_add_noise(noise_out(lambda x, std, g: gaussian(x, math.sqrt(std), g)))
    with pytest.raises(AssertionError, match="not independent"):
        checks.judge_add_noise(noise_out(lambda x, std, g: std * torch.randn(len(x), 1, 1, 1, generator=g)))
    with pytest.raises(AssertionError, match="not independent"):
        checks.judge_add_noise(noise_out(lambda x, std, g: std * torch.randn(1, *x.shape[1:], generator=g)))
    with pytest.raises(AssertionError, match="mean"):
        checks.judge_add_noise(noise_out(lambda x, std, g: gaussian(x, std, g) + 0.01))
    same = noise_out(gaussian)
    with pytest.raises(AssertionError, match="same noise"):
        checks.judge_add_noise(dict(same, default_again=same["default"]))
    with pytest.raises(AssertionError, match="in place"):
        checks.judge_add_noise(dict(same, input_after=same["default"]))
    with pytest.raises(AssertionError, match="do not clip"):
        checks.judge_add_noise(dict(same, default=same["default"].clamp(0, 1)))
    with pytest.raises(AssertionError, match="shape"):
        checks.judge_add_noise(dict(same, default=same["default"].flatten(1)))


def test_clipping_is_caught_even_with_small_noise():
    # std 0.05 keeps most pixels inside [0, 1]; clipping still shows in the range and in the statistics.
    clipped = noise_out(lambda x, std, g: (x + gaussian(x, std, g)).clamp(0, 1) - x)
    with pytest.raises(AssertionError):
        checks.judge_add_noise(clipped)


def test_the_noise_statistics_tolerance_comes_from_the_sample_size():
    n = checks.NOISE_IMAGES * 784
    tolerance = checks.STANDARD_ERRORS * math.sqrt(2 / (n - 1))  # relative tolerance of the variance: 2.1 %
    assert tolerance < 0.025
    with pytest.raises(AssertionError, match="variance"):
        checks.judge_add_noise(noise_out(lambda x, std, g: gaussian(x, 1.05 * std, g)))  # 10 % too much variance
    checks.judge_add_noise(noise_out(lambda x, std, g: gaussian(x, 1.002 * std, g)))


# --- DAE -----------------------------------------------------------------------------------------

def gate_out(respond) -> dict:
    """What collect_dae_gate would return for a model whose denoised output is respond(x)."""
    cases = []
    for seed in checks.GATE_SEEDS:
        x, zero = checks._gate_inputs(seed)
        cases.append({"x": x, "zero": zero, "denoised": respond(x)})
    return {"cases": cases}


def test_gate_inputs_have_zeroed_pixels_patches_and_an_all_zero_image():
    for seed in checks.GATE_SEEDS:
        x, zero = checks._gate_inputs(seed)
        assert torch.all(x[zero] == 0) and torch.all(x[~zero] != 0)
        assert zero[-1].all() and 0.3 < float(zero[:-1].float().mean()) < 0.6


def test_judge_dae_gate_accepts_gates_and_rejects_leaks():
    checks.judge_dae_gate(gate_out(lambda x: x * torch.sigmoid(torch.randn(x.shape))))
    checks.judge_dae_gate(gate_out(lambda x: x * 1e-2))
    for leak in (lambda x: x + 0.01 * torch.randn(x.shape),       # an additive skip
                 lambda x: torch.sigmoid(torch.randn(x.shape)),     # a gate on a constant
                 lambda x: torch.rand(x.shape)):                    # a plain decoder
        with pytest.raises(AssertionError, match="multiplies its input by a gate"):
            checks.judge_dae_gate(gate_out(leak))
    with pytest.raises(AssertionError, match="zeros everywhere"):
        checks.judge_dae_gate(gate_out(torch.zeros_like))


def test_judge_dae_reports_the_wrong_kind_and_shape():
    out = checks.collect_dae(reference_namespace()["DAE"])
    checks.judge_dae(out)
    broken = {k: v for k, v in out.items() if not k.startswith(("z_3_5", "denoised_3_5"))}
    broken["kind_3_5"] = "Tensor"
    with pytest.raises(AssertionError, match="should return a tuple \\(z, denoised_x\\), got Tensor"):
        checks.judge_dae(broken)
    with pytest.raises(AssertionError, match="shape \\(5, 3\\)"):
        checks.judge_dae(dict(out, z_3_5=torch.zeros(5, 10)))


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


def test_dae_figures_quoted_in_the_notebook():
    # All zeros (what a plain autoencoder learns) and the noisy inputs, on the grader's held-out images.
    clean, noisy, _ = checks._variance_test()
    assert abs(float((clean ** 2).mean()) - 0.123) < 0.005
    assert abs(float(((noisy - clean) ** 2).mean()) - 0.040) < 0.001
    assert FIGURES["brief_dae_mse"].threshold < 0.040 and FIGURES["dae_mse"].threshold < 0.040


# --- Denoiser and SuperResolution ----------------------------------------------------------------

def test_judge_denoiser_trained_rejects_doing_nothing():
    images, _ = checks.split("test")
    noisy = images + checks._gaussian(tuple(images.shape), checks.TEST_NOISE_SEED)
    checks.judge_denoiser_trained({"denoised": images + 0.05 * torch.randn(images.shape), "noisy": noisy,
                                   "clean": images})
    for lazy in (noisy, noisy.clamp(0, 1), torch.full_like(images, float(images.mean()))):
        with pytest.raises(AssertionError, match="should be below"):
            checks.judge_denoiser_trained({"denoised": lazy, "noisy": noisy, "clean": images})
    with pytest.raises(AssertionError, match="should have shape"):
        checks.judge_denoiser_trained({"denoised": images[:, :, :27], "noisy": noisy, "clean": images})


def test_interpolation_baselines_and_thresholds():
    images, _ = checks.split("test")
    small = downsample(images)
    nearest, bilinear, bicubic = (checks.interpolation_mse(small, images, mode) for mode in ("nearest", "bilinear", "bicubic"))
    assert bicubic < bilinear < nearest
    assert abs(bicubic - 0.0092) < 0.001 and abs(bilinear - 0.0148) < 0.001 and abs(nearest - 0.0162) < 0.001
    assert FIGURES["superres_mse"].threshold < bicubic and FIGURES["brief_superres_mse"].threshold < bicubic


def test_judge_super_resolution_rejects_interpolation():
    images, _ = checks.split("test")
    small = downsample(images)
    bicubic = F.interpolate(small, scale_factor=2, mode="bicubic", align_corners=False)
    with pytest.raises(AssertionError, match="should be below"):
        checks.judge_super_resolution_trained({"output": bicubic, "clean": images, "bicubic": 0.0092})
    with pytest.raises(AssertionError, match="no trainable parameters"):
        checks.judge_super_resolution_learns({"parameters": 0, "clean": images[:500], "bicubic": 0.0091})
    with pytest.raises(AssertionError, match="should be a torch.Tensor"):
        checks.judge_super_resolution_trained({"output": "tuple", "clean": images, "bicubic": 0.0092})


# --- thresholds and grader noise -----------------------------------------------------------------

@pytest.mark.parametrize("key", sorted(FIGURES))
def test_thresholds_sit_on_the_safe_side_of_the_reference(key):
    figure = FIGURES[key]
    if figure.higher_is_better:
        assert figure.threshold < figure.reference
    else:
        assert figure.threshold > figure.reference
    assert figure.margin >= 0.08


def test_the_grader_noise_is_fixed_and_independent_of_the_global_seed():
    torch.manual_seed(1)
    first = checks._variance_test(10)
    torch.manual_seed(2)
    second = checks._variance_test(10)
    for a, b in zip(first, second):
        assert torch.equal(a, b)
    assert torch.equal(checks._gaussian((3, 4), 7), checks._gaussian((3, 4), 7))


def test_variance_inputs_carry_the_digit_only_in_their_variance():
    images, _ = checks.split("test")
    draws = torch.stack([variance_mnist(images[:50], generator=torch.Generator().manual_seed(s)) for s in range(200)])
    assert float(draws.mean(0).abs().max()) < 0.3  # the mean is 0 everywhere
    assert torch.allclose(draws.std(0), images[:50], atol=0.2)  # the standard deviation is the digit


# --- what the executed reference notebook prints -------------------------------------------------

def printed_text() -> str:
    """Everything the reference notebook printed while training (executed once, then cached)."""
    executed = notebooks.read(pipeline.train_reference("2_dae") / "2_dae.ipynb")
    return "\n".join(output.get("text", "") for cell in executed.cells if cell.cell_type == "code"
                     for output in cell.get("outputs", []) if output.get("output_type") == "stream")


def printed_number(text: str, pattern: str) -> float:
    import re

    match = re.search(pattern, text)
    assert match, f"the reference notebook did not print {pattern!r}"
    return float(match.group(1))


def test_the_reference_notebook_reaches_what_its_text_promises():
    text = printed_text()
    assert printed_number(text, r"noisy inputs ([\d.]+), denoised") == pytest.approx(0.040, abs=0.001)
    assert printed_number(text, r"denoised ([\d.]+)\n") < FIGURES["denoiser_mse"].threshold
    assert printed_number(text, r"DAE ([\d.]+), all zeros") < FIGURES["dae_mse"].threshold
    assert printed_number(text, r"test accuracy ([\d.]+)") > FIGURES["dae_accuracy"].threshold
    bicubic = printed_number(text, r"bicubic: test MSE ([\d.]+)")
    assert printed_number(text, r"SuperResolution: test MSE ([\d.]+)") < FIGURES["superres_mse"].threshold < bicubic
