"""Judges of notebook 2_dae (denoising autoencoders, varianceMNIST, super-resolution), run in the TA's process.

Each judge rebuilds the secret inputs and the clean targets from `Inputs` with the helpers of
`grader.collect.dae`; only the student's outputs are read from what the kernel collected.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from aelib.data import downsample
from aelib.evaluation import classifier_accuracy, mse_per_pixel
from grader.collect import dae as collect
from grader.collect.common import Inputs, split
from grader.judge.common import (COMPRESSION_LAYERS, COMPRESSION_PARAMETERS, agrees, describe, in_range,
                                 require_tensor, show_and_measure, within)
from grader.judge.pictures import code_panel, image_rows, maps, reference_panels, reference_row
from grader.checks import check
from grader.judge.results import measure, number
from grader.reference import DAE as FIGURES

IMAGE = (1, 28, 28)
STANDARD_ERRORS = 6.0  # statistical checks allow this many standard errors


# --- add_noise -----------------------------------------------------------------------------------

def noise_problem(noisy: object, x: torch.Tensor, std: float, what: str) -> None:
    """Assert that noisy - x is independent N(0, std^2) noise of x's shape, with a hint for common mistakes."""
    noisy = require_tensor(noisy, what, tuple(x.shape))
    noise = (noisy.double() - x.double())
    n = noise.numel()
    mean, variance = float(noise.mean()), float(noise.var())
    target = std ** 2
    if float(noisy.min()) >= 0 and float(noisy.max()) <= 1:
        raise AssertionError(f"{what} stays within [0, 1]: do not clip the noisy images, values below 0 and "
                             "above 1 are expected.")
    flat = noise.reshape(len(x), -1)
    limit = STANDARD_ERRORS / math.sqrt(flat.numel())
    neighbours = float(torch.corrcoef(torch.stack([flat[:, :-1].reshape(-1), flat[:, 1:].reshape(-1)]))[0, 1])
    images = float(torch.corrcoef(torch.stack([flat[:-1].reshape(-1), flat[1:].reshape(-1)]))[0, 1])
    assert within(torch.tensor([neighbours, images]).abs(), limit, f"The correlations of the noise of {what} between "
                  "neighbouring pixels and between images", target="0"), (
        f"The noise of {what} is not independent between pixels and images (correlation {neighbours:.2f} between "
        f"neighbouring pixels, {images:.2f} between images): draw one value for every element, of x's full shape.")
    assert within(abs(mean), STANDARD_ERRORS * std / math.sqrt(n), f"The mean of the noise of {what}", target="0"), (
        f"The noise of {what} has mean {mean:.4f}; it should be 0 (noise = output - x).")
    if not within(abs(variance - target), STANDARD_ERRORS * target * math.sqrt(2 / (n - 1)),
                  f"The variance of the noise of {what}", target=f"std ** 2 = {target:g}"):
        hint = f"it should be std ** 2 = {target:g}"
        if abs(variance - std ** 4) < 0.1 * std ** 4:
            hint += ": you used std ** 2 as the standard deviation; multiply standard normal noise by std"
        elif abs(variance - std) < 0.1 * std:
            hint += ": you used std as the variance; multiply standard normal noise by std itself"
        raise AssertionError(f"The noise of {what} has variance {variance:.5f}; {hint}.")


@check("test_add_noise", collect.collect_add_noise)
def judge_add_noise(out: dict, inputs: Inputs) -> None:
    """add_noise adds fresh, independent N(0, std^2) noise of x's shape, without clipping, leaving x unchanged."""
    x = collect.noise_images(inputs)
    after = out.get("input_after")
    assert isinstance(after, torch.Tensor) and tuple(after.shape) == tuple(x.shape) and agrees(
        after, x, "x after add_noise(x)", target="x before it"), (
        "add_noise changed its input x: return a new tensor (x + noise), do not modify x in place.")
    noise_problem(out.get("default"), x, collect.NOISE_STD, "add_noise(x) (default std 0.2)")
    again = require_tensor(out.get("default_again"), "a second add_noise(x)", tuple(x.shape))
    assert not torch.equal(out["default"], again), (
        "Two calls of add_noise(x) returned the same noise: draw new noise on every call (do not fix a seed inside).")
    noise_problem(out.get("std_0.5"), x, 0.5, "add_noise(x, std=0.5)")
    noise_problem(out.get("std_0.05"), x, 0.05, "add_noise(x, 0.05)")


# --- the trained MNIST denoiser ------------------------------------------------------------------

@check("test_denoiser_trained", collect.collect_denoiser_trained, figures=("denoiser_mse",), pictured=True)
def judge_denoiser_trained(out: dict, inputs: Inputs) -> None:
    """The submitted Denoiser removes most of the noise from held-out images."""
    clean, noisy = collect.denoiser_test_set(inputs)
    denoised = require_tensor(out.get("denoised"), "the output of your Denoiser", tuple(clean.shape))
    judge_denoised(denoised, clean, noisy, "denoiser_mse", "Denoiser", collect.DENOISER_FILE)


def judge_denoised(denoised: torch.Tensor, clean: torch.Tensor, noisy: torch.Tensor, figure: str, model: str,
                   file: str) -> None:
    """Denoised held-out MNIST images reach the test MSE threshold of `figure` against the clean images."""
    rows = [("noisy inputs", noisy), (f"your {model}", denoised),
            *reference_row("denoised", denoised, "its output for the same digits under other noise",
                           label="reference, other noise"), ("clean images", clean)]
    show_and_measure(image_rows(rows),
                     FIGURES[figure], mse_per_pixel(denoised, clean), f"Your trained {model}",
                     "test MSE against the clean images",
                     context=f" (the noisy inputs: {mse_per_pixel(noisy, clean):.3f})",
                     range_check=(denoised, "denoised images", "end the network with a sigmoid"),
                     close=f"Train it as described, then save and submit {file} again.",
                     far=f"That is hardly better than the noisy inputs: check that it is trained on noisy inputs "
                         f"against clean targets, then save and submit {file} again.")


@check("test_mlp_denoiser", collect.collect_mlp_denoiser, figures=("mlp_denoiser_mse",), pictured=True)
def judge_mlp_denoiser(out: dict, inputs: Inputs) -> None:
    """MLPDenoiser is 784-128-32-128-784 with sigmoids and returns (codes, denoised); the trained one denoises."""
    assert out.get("layers") == COMPRESSION_LAYERS and out.get("parameters") == COMPRESSION_PARAMETERS, (
        "MLPDenoiser should have four nn.Linear layers 784-128-32-128-784 and "
        f"{COMPRESSION_PARAMETERS} parameters, got weight shapes {describe(out.get('layers'))} and "
        f"{describe(out.get('parameters'))} parameters.")
    assert out.get("length") == 2, f"MLPDenoiser.forward should return a tuple (codes, denoised), got {out.get('kind')}."
    codes = require_tensor(out.get("codes"), "codes of MLPDenoiser", (4, 32))
    images = require_tensor(out.get("images"), "denoised images of MLPDenoiser", (4, *IMAGE))
    assert in_range(codes, "The 32 code units", 0, 1, strict=True), (
        "The 32 code units should use a sigmoid (values in (0, 1)).")
    assert in_range(images, "The denoised images", 0, 1), "The output layer should use a sigmoid (values in (0, 1))."
    clean, noisy = collect.denoiser_test_set(inputs)
    denoised = require_tensor(out.get("denoised"), "the output of your trained MLPDenoiser", tuple(clean.shape))
    judge_denoised(denoised, clean, noisy, "mlp_denoiser_mse", "MLPDenoiser", collect.MLP_FILE)


# --- DAE -----------------------------------------------------------------------------------------

@check("test_dae", collect.collect_dae)
def judge_dae(out: dict, inputs: Inputs) -> None:
    """forward(x) returns (z, denoised_x) of shapes (B, n_components) and (B, 1, 28, 28); the default is 10."""
    for label, n in (("default", collect.N_COMPONENTS), ("10", collect.N_COMPONENTS), ("3", 3)):
        name = "DAE()" if label == "default" else f"DAE({label})"
        assert out.get(f"module_{label}") is True, "DAE should be a subclass of nn.Module."
        for batch in (1, 5):
            assert f"z_{label}_{batch}" in out, (
                f"{name}.forward should return a tuple (z, denoised_x), "
                f"got {describe(out.get(f'kind_{label}_{batch}'))}.")
            require_tensor(out[f"z_{label}_{batch}"], f"z of {name} for a batch of {batch}", (batch, n))
            require_tensor(out.get(f"denoised_{label}_{batch}"), f"denoised_x of {name} for a batch of {batch}",
                           (batch, *IMAGE))


@check("test_dae_gate", collect.collect_dae_gate)
def judge_dae_gate(out: dict, inputs: Inputs) -> None:
    """The output is exactly zero wherever the input is zero, and not zero everywhere."""
    cases = out.get("cases")
    assert isinstance(cases, list) and len(cases) == collect.GATE_CASES and all(isinstance(c, dict) for c in cases), (
        "The outputs collected for the gate test are incomplete.")
    for case, collected in enumerate(cases):
        x, zero = collect.gate_inputs(inputs, case)
        denoised = require_tensor(collected.get("denoised"), "denoised_x of DAE(10)", tuple(x.shape))
        leak = float(denoised[zero].abs().max())
        assert within(denoised[zero].abs(), 1e-6, "DAE(10)'s output where its input is 0", target="0"), (
            f"Where a pixel of the input is 0, your DAE's output is not 0 (up to {leak:.3g}), for randomly "
            "initialised weights. The optimal denoiser multiplies its input by a gate: denoised_x = x * "
            "torch.sigmoid(f), with x the input itself (not a constant, and not added to f).")
        assert float(denoised[~zero].abs().max()) > 1e-4, (
            "Your DAE outputs zeros everywhere: the gate sigmoid(f) should let part of the input through.")


@check("test_dae_learns", collect.collect_dae_learns, figures=("brief_dae_mse",), trains=True)
def judge_dae_learns(out: dict, inputs: Inputs) -> None:
    """A short training run from scratch denoises varianceMNIST far better than doing nothing."""
    clean, noisy = collect.dae_brief_test_set(inputs)
    before = mse_per_pixel(require_tensor(out.get("before"), "denoised_x of a fresh DAE(10)", tuple(clean.shape)),
                           clean)
    after = mse_per_pixel(require_tensor(out.get("after"), "denoised_x of DAE(10) after a short training run",
                                         tuple(clean.shape)), clean)
    measure(FIGURES["brief_dae_mse"], after, f"Your DAE(10), trained from scratch for {collect.DAE_STEPS} Adam "
            f"steps (lr 1e-3, batches of {collect.DAE_BATCH}) to denoise varianceMNIST,", "test MSE",
            context=f" (before training {number(before)}, the noisy inputs {number(mse_per_pixel(noisy, clean))})",
            close="Check that the encoder sees x.abs(), that the output is x * sigmoid(decoder(z)), and that "
                  "gradients reach every layer.")


@check("test_dae_trained", collect.collect_dae_trained, figures=("dae_accuracy", "dae_mse"), pictured=True)
def judge_dae_trained(out: dict, inputs: Inputs) -> None:
    """The trained DAE denoises held-out varianceMNIST well and its codes classify the digits."""
    clean, noisy = collect.dae_trained_test_set(inputs)
    denoised = require_tensor(out.get("denoised"), "denoised_x of your trained DAE", tuple(clean.shape))
    # varianceMNIST pixels are signed: their magnitudes are what a student recognises as digits
    show_and_measure(image_rows([("|noisy inputs|", noisy.abs()), ("|your DAE's|", denoised.abs()),
                                 *reference_row("denoised", denoised, "its output for the same digits under other "
                                                "noise", label="|reference|, other noise", transform=torch.abs),
                                 ("|clean images|", clean.abs())]),
                     FIGURES["dae_mse"], mse_per_pixel(denoised, clean),
                     "Your trained DAE, on held-out varianceMNIST images (noise std 0.2),", "test MSE",
                     context=f" (the noisy inputs: {mse_per_pixel(noisy, clean):.3f})",
                     close=f"Train longer, then save and submit {collect.DAE_FILE} again.",
                     far="That is hardly better than the noisy inputs: check that the output is "
                         "x * sigmoid(decoder(z)) and that the model is trained on noisy inputs against clean "
                         f"targets, then submit {collect.DAE_FILE} again.")
    train_labels, test_labels = split("train")[1], split("test")[1]
    train_codes = require_tensor(out.get("train_codes"), "codes z of the training images",
                                 (len(train_labels), collect.N_COMPONENTS))
    test_codes = require_tensor(out.get("test_codes"), "codes z of the test images",
                                (len(test_labels), collect.N_COMPONENTS))
    panels = [code_panel(test_codes, test_labels, "your DAE's test codes z (first two principal components)"),
              *reference_panels("test_codes", test_codes, test_labels, "a reference solution's codes z",
                                "its codes of the same digits under other noise")]
    show_and_measure(maps(panels),
                     FIGURES["dae_accuracy"], classifier_accuracy(train_codes, train_labels, test_codes, test_labels),
                     "A logistic-regression classifier on the codes of your DAE, on held-out varianceMNIST images,",
                     "accuracy", digits=3,
                     close=f"Train longer (does the encoder see x.abs()?) and submit {collect.DAE_FILE} again.")


# --- SuperResolution -----------------------------------------------------------------------------

def interpolation_mse(clean: torch.Tensor, mode: str) -> float:
    """Per-pixel MSE of F.interpolate upsampling (x2) of the shrunk images against the originals."""
    return mse_per_pixel(F.interpolate(downsample(clean), scale_factor=2, mode=mode), clean)


@check("test_super_resolution", collect.collect_super_resolution)
def judge_super_resolution(out: dict, inputs: Inputs) -> None:
    """forward maps (B, 1, 14, 14) to (B, 1, 28, 28)."""
    assert out.get("module") is True, "SuperResolution should be a subclass of nn.Module."
    for batch in (1, 5):
        require_tensor(out.get(f"output_{batch}"),
                       f"SuperResolution() on a batch of {batch} images (B, 1, 14, 14)", (batch, *IMAGE))


@check("test_super_resolution_learns", collect.collect_super_resolution_learns,
       figures=("brief_superres_mse",), trains=True)
def judge_super_resolution_learns(out: dict, inputs: Inputs) -> None:
    """A short training run from scratch beats bicubic interpolation."""
    parameters = out.get("parameters")
    assert isinstance(parameters, int) and parameters > 0, (
        "SuperResolution() has no trainable parameters: it cannot learn anything. Add layers (for example a "
        "convolutional correction added to the bicubic upsampling).")
    clean = split("test")[0][collect.superres_brief_subsets(inputs)[1]]
    output = require_tensor(out.get("output"), "SuperResolution() after a short training run", tuple(clean.shape))
    measure(FIGURES["brief_superres_mse"], mse_per_pixel(output, clean), f"Your SuperResolution(), trained from "
            f"scratch for {collect.SUPERRES_STEPS} Adam steps (lr 1e-3, batches of {collect.SUPERRES_BATCH}),",
            "test MSE", context=f" (bicubic interpolation: {interpolation_mse(clean, 'bicubic'):.4f})",
            close="Check that the output depends on learned layers and that gradients reach them.")


@check("test_super_resolution_trained", collect.collect_super_resolution_trained, figures=("superres_mse",),
       pictured=True)
def judge_super_resolution_trained(out: dict, inputs: Inputs) -> None:
    """The trained SuperResolution beats bicubic interpolation on held-out images by a clear margin."""
    clean = split("test")[0]
    output = require_tensor(out.get("output"), "the output of your SuperResolution", tuple(clean.shape))
    bicubic = F.interpolate(downsample(clean), scale_factor=2, mode="bicubic")
    show_and_measure(image_rows([("14x14 inputs", F.interpolate(downsample(clean), scale_factor=2, mode="nearest")),
                                 ("bicubic", bicubic), ("your SuperResolution", output),
                                 *reference_row("output", output, "its output for the same images"),
                                 ("originals", clean)]),
                     FIGURES["superres_mse"], mse_per_pixel(output, clean), "Your trained SuperResolution", "test MSE",
                     context=f" (bicubic interpolation: {mse_per_pixel(bicubic, clean):.4f})",
                     close=f"Train it, then save and submit {collect.SUPERRES_FILE} again.",
                     far="That is no better than plain interpolation: check that the learned layers correct the "
                         f"upsampled image and that the model was trained, then save and submit "
                         f"{collect.SUPERRES_FILE} again.")

