"""Judges of notebook 3_vae (variational autoencoders), run in the TA's process on what the kernel collected.

Each judge rebuilds the secret inputs (means, log-variances, images, varianceMNIST draws) with the
helpers of `grader.collect.vae` and computes the closed-form KL, the Gaussian log-likelihood, the BCE
and every ELBO itself; only the student's outputs are read from what the kernel collected.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from aelib.evaluation import classifier_accuracy
from grader.collect import vae as collect
from grader.collect.common import Inputs, split
from grader.judge.common import (agrees, close, describe, in_range, require_reparameterised, require_scalar,
                                 require_tensor, show_and_measure, within)
from grader.judge.beside import reference_inputs
from grader.judge.pictures import (code_panel, image_rows, maps, reference_panels, reference_reconstructions,
                                   reference_row, sample_rows)
from grader.checks import check
from grader.judge.results import measure, number
from grader.reference import VAE as FIGURES

N_COMPONENTS, IMAGE = collect.N_COMPONENTS, collect.IMAGE
PIXELS = 784
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
LOWEST_LOGVAR = -10.0  # the decoder's log-variance floor may be anywhere from here up
STANDARD_ERRORS = 6.0  # statistical checks allow this many standard errors
KL_MONTE_CARLO_SAMPLES, KL_MONTE_CARLO_SHAPE = 20_000, (8, 10)
BERNOULLI_LAYERS = {
    "two heads": sorted([(128, 784), (64, 128), (10, 64), (10, 64), (64, 10), (128, 64), (784, 128)]),
    "one head": sorted([(128, 784), (64, 128), (20, 64), (64, 10), (128, 64), (784, 128)]),
}
BERNOULLI_PARAMETERS = (784 * 128 + 128 + 128 * 64 + 64 + 2 * (64 * 10 + 10)
                        + 10 * 64 + 64 + 64 * 128 + 128 + 128 * 784 + 784)


# --- the grader's own formulas -------------------------------------------------------------------

def kl_closed_form(z_mean: torch.Tensor, z_logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag exp(lv)) || N(0, I)) per image, summed over dimensions (float64, shape (B,))."""
    mu, lv = z_mean.double(), z_logvar.double()
    return (0.5 * (lv.exp() + mu ** 2 - 1 - lv)).sum(dim=1)


def kl_monte_carlo(z_mean: torch.Tensor, z_logvar: torch.Tensor, n_samples: int,
                   seed: int = 0) -> tuple[float, float]:
    """A Monte-Carlo estimate of the batch-averaged KL and its standard error.

    With z = mu + sigma * eps, log q(z) - log p(z) = sum_j (-lv_j / 2 - eps_j^2 / 2 + z_j^2 / 2).
    """
    mu, lv = z_mean.double(), z_logvar.double()
    eps = torch.randn((n_samples, *mu.shape), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    z = mu + (0.5 * lv).exp() * eps
    log_ratio = (-0.5 * lv - 0.5 * eps ** 2 + 0.5 * z ** 2).sum(dim=2)  # (n_samples, B)
    estimate = log_ratio.mean(dim=0)  # per image
    standard_error = log_ratio.std(dim=0) / math.sqrt(n_samples)
    batch = mu.shape[0]
    return float(estimate.mean()), float(standard_error.pow(2).sum().sqrt() / batch)


def gaussian_nll(y_mean: torch.Tensor, y_logvar: torch.Tensor, x: torch.Tensor,
                 constant: bool = False) -> torch.Tensor:
    """Gaussian negative log-likelihood per image, summed over pixels (float64, shape (B,))."""
    m, lv, x = y_mean.double(), y_logvar.double(), x.double()
    per_pixel = 0.5 * (lv + (x - m) ** 2 / lv.exp()) + (HALF_LOG_2PI if constant else 0.0)
    return per_pixel.flatten(start_dim=1).sum(dim=1)


def bce(x_rec: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Mean pixel-wise binary cross-entropy of probabilities x_rec for targets x (float64)."""
    p, x = x_rec.double(), x.double()
    return -(x * p.log() + (1 - x) * (1 - p).log()).mean()


def negative_elbo(outputs: Any, images: torch.Tensor, what: str) -> torch.Tensor:
    """Per-image negative ELBO (closed-form KL plus Gaussian NLL, no 2 pi constant) of collected model outputs.

    `outputs` holds the z_mean, z_logvar of `images` and the y_mean, y_logvar decoded from one sample of
    each q(z | x); non-finite outputs give non-finite values, which never pass a threshold.
    """
    assert isinstance(outputs, dict), f"The outputs collected for {what} are missing."
    count = len(images)
    z_mean, z_logvar = (model_output(outputs.get(key), f"{key} of {what}", (count, N_COMPONENTS))
                        for key in ("z_mean", "z_logvar"))
    y_mean, y_logvar = (model_output(outputs.get(key), f"{key} of {what}", tuple(images.shape))
                        for key in ("y_mean", "y_logvar"))
    return kl_closed_form(z_mean, z_logvar) + gaussian_nll(y_mean, y_logvar, images)


def model_output(value: Any, what: str, shape: tuple[int, ...]) -> torch.Tensor:
    """A float tensor of `shape` (possibly not finite: a diverged model is judged by its values)."""
    assert isinstance(value, torch.Tensor), f"{what} should be a torch.Tensor, got {describe(value)}."
    assert tuple(value.shape) == tuple(shape), f"{what} should have shape {tuple(shape)}, got {tuple(value.shape)}."
    assert value.is_floating_point(), f"{what} should be a float tensor, got {value.dtype}."
    return value


def collected_cases(out: dict, count: int, what: str) -> list[dict]:
    """The per-case dicts a collector stored, checked to be complete."""
    cases = out.get("cases")
    assert isinstance(cases, list) and len(cases) == count and all(isinstance(c, dict) for c in cases), (
        f"The results collected for {what} are incomplete.")
    return cases


def gradients(value: Any, count: int) -> list[Any] | None:
    """The list of `count` collected gradients, or None when the loss was not differentiable."""
    if not (isinstance(value, list) and len(value) == count):
        return None
    return value if all(isinstance(g, torch.Tensor) for g in value) else None


# --- Encoder -------------------------------------------------------------------------------------

@check("test_encoder", collect.collect_encoder)
def judge_encoder(out: dict, inputs: Inputs) -> None:
    """forward(x) returns (z_mean, z_logvar), each (B, n_components)."""
    for n in (2, N_COMPONENTS):
        assert out.get(f"module{n}") is True, "Encoder should be a subclass of nn.Module."
        for batch in (1, 7):
            assert f"mean{n}_{batch}" in out, (
                f"Encoder({n}).forward should return a tuple (z_mean, z_logvar), "
                f"got {describe(out.get(f'kind{n}_{batch}'))}.")
            require_tensor(out[f"mean{n}_{batch}"], f"z_mean of Encoder({n}) for a batch of {batch}", (batch, n))
            require_tensor(out.get(f"logvar{n}_{batch}"), f"z_logvar of Encoder({n}) for a batch of {batch}",
                           (batch, n))


# --- sample --------------------------------------------------------------------------------------

@check("test_sample", collect.collect_sample)
def judge_sample(out: dict, inputs: Inputs) -> None:
    """Samples have mean z_mean and variance exp(z_logvar), differ between calls, and pass gradients."""
    mean, logvar = collect.sample_parameters(inputs)
    rows, dims = mean.shape
    n = collect.SAMPLE_DRAWS
    draws = require_tensor(out.get("draws"), f"sample on a batch of {rows * n} rows",
                           (rows * n, dims)).double().reshape(n, rows, dims)
    first = require_tensor(out.get("first"), "sample(z_mean, z_logvar)", (rows, dims))
    second = require_tensor(out.get("second"), "a second sample(z_mean, z_logvar)", (rows, dims))
    assert not torch.equal(first, second), (
        "Two calls of sample with the same arguments returned the same values: draw new noise eps on every call.")
    variance = logvar.double().exp()
    empirical = draws.var(dim=0)
    variance_tolerance = STANDARD_ERRORS * variance * math.sqrt(2 / (n - 1))
    if not within((empirical - variance).abs(), variance_tolerance, f"The variance of {n} samples of each code",
                  target="exp(z_logvar)"):
        hint = "the standard deviation is exp(z_logvar / 2), so the variance is exp(z_logvar)"
        if float(empirical.max()) < 1e-12:
            hint = "your samples do not vary at all: add exp(z_logvar / 2) * eps with eps ~ N(0, I)"
        elif torch.allclose(empirical, variance ** 2, rtol=0.1):
            hint = "you used exp(z_logvar) as the standard deviation; it is exp(z_logvar / 2)"
        elif torch.allclose(empirical, logvar.double() ** 2, rtol=0.1, atol=0.05):
            hint = "you used z_logvar itself as the standard deviation; it is a log-variance: use exp(z_logvar / 2)"
        worst = int(((empirical - variance).abs() / variance).argmax())
        row, dim = divmod(worst, dims)
        raise AssertionError(
            f"Over {n} draws with z_logvar = {float(logvar[row, dim]):.3g}, the samples have variance "
            f"{float(empirical[row, dim]):.3f} instead of exp(z_logvar) = {float(variance[row, dim]):.3f}: {hint}.")
    mean_error = (draws.mean(dim=0) - mean.double()).abs()
    mean_tolerance = STANDARD_ERRORS * variance.sqrt() / math.sqrt(n)
    assert within(mean_error, mean_tolerance, f"The mean of {n} samples of each code", target="z_mean"), (
        f"Over {n} draws, the samples do not average to z_mean (largest error {float(mean_error.max()):.3f}): "
        "sample should return z_mean plus zero-mean noise.")
    grad_mean, grad_logvar = out.get("grad_mean"), out.get("grad_logvar")
    assert isinstance(grad_mean, torch.Tensor) and isinstance(grad_logvar, torch.Tensor), (
        "Gradients do not flow from the samples back to both z_mean and z_logvar: compute z with torch "
        "operations from z_mean and z_logvar (the re-parameterisation trick), without detach or .data.")
    z = require_tensor(out.get("z"), "sample(z_mean, z_logvar)", (rows, dims)).double()
    grad_mean = require_tensor(grad_mean, "the gradient of the samples with respect to z_mean", (rows, dims))
    grad_logvar = require_tensor(grad_logvar, "the gradient of the samples with respect to z_logvar", (rows, dims))
    assert agrees(grad_mean, torch.ones_like(z), "The gradient of the samples with respect to z_mean", atol=1e-5,
                  target="1"), (
        "The gradient of the samples with respect to z_mean should be 1: z = z_mean + noise.")
    assert agrees(grad_logvar, 0.5 * (z - mean.double()), "The gradient of the samples with respect to z_logvar",
                  atol=1e-4, target="(z - z_mean) / 2"), (
        "The gradient of the samples with respect to z_logvar is not that of z_mean + exp(z_logvar / 2) * eps.")


# --- loss_kl -------------------------------------------------------------------------------------

def kl_hint(value: float, z_mean: torch.Tensor, z_logvar: torch.Tensor) -> str:
    """A likely reason why a KL value differs from the closed form."""
    batch, dims = z_mean.shape
    expected = float(kl_closed_form(z_mean, z_logvar).mean())
    per_dim_and_image = 0.5 * (z_logvar.double().exp() + z_mean.double() ** 2 - 1 - z_logvar.double())
    guesses = [
        (-expected, "the sign is flipped: KL(q || p) is never negative"),
        (2 * expected, "the factor 1/2 is missing"),
        (expected / dims, "you averaged over the code dimensions: sum over them, then average over the batch"),
        (expected * batch, "you summed over the batch: average over the images"),
        (float(per_dim_and_image.mean()), "you averaged over everything: sum over the code dimensions"),
    ]
    for guess, hint in guesses:
        if close(value, guess, rtol=1e-3) and not close(value, expected, rtol=1e-3):
            return hint
    return "check the formula 0.5 * sum_j (exp(lv_j) + mu_j^2 - 1 - lv_j), averaged over the batch"


@check("test_loss_kl", collect.collect_loss_kl)
def judge_loss_kl(out: dict, inputs: Inputs) -> None:
    """loss_kl matches the closed form (and a Monte-Carlo estimate) and is differentiable."""
    cases = collect.kl_cases(inputs)
    collected = collected_cases(out, len(cases), "loss_kl")
    for (z_mean, z_logvar), case in zip(cases, collected):
        shape = tuple(z_mean.shape)
        value = require_scalar(case.get("value"), f"loss_kl on inputs of shape {shape}")
        expected = float(kl_closed_form(z_mean, z_logvar).mean())
        if expected == 0.0:
            assert abs(value) < 1e-6, f"loss_kl should be exactly 0 when z_mean = 0 and z_logvar = 0, got {value:.6g}."
        assert agrees(value, expected, "loss_kl on the hidden inputs", rtol=1e-4, atol=1e-5,
                      target="the closed form"), (
            f"loss_kl on inputs of shape {shape} returned {value:.5f}, expected {expected:.5f}: "
            f"{kl_hint(value, z_mean, z_logvar)}.")
        if shape == KL_MONTE_CARLO_SHAPE:
            estimate, standard_error = kl_monte_carlo(z_mean, z_logvar, n_samples=KL_MONTE_CARLO_SAMPLES, seed=7)
            assert within(abs(value - estimate), STANDARD_ERRORS * standard_error + 1e-6, "loss_kl on the hidden "
                          "inputs", target=f"a Monte-Carlo estimate ({KL_MONTE_CARLO_SAMPLES} samples)"), (
                f"loss_kl returned {value:.4f}, but sampling z ~ q and averaging log q(z) - log p(z) gives "
                f"{estimate:.4f} +- {standard_error:.4f}.")
    for (z_mean, z_logvar), case in zip(cases, collected):
        shape = tuple(z_mean.shape)
        grads = gradients(case.get("grads"), 2)
        assert grads is not None, (
            "loss_kl should be differentiable with respect to z_mean and z_logvar: use torch operations only.")
        grad_mean, grad_logvar = (require_tensor(g, f"the gradient of loss_kl with respect to {what}", shape)
                                  for g, what in zip(grads, ("z_mean", "z_logvar")))
        batch = shape[0]
        assert agrees(grad_mean, z_mean.double() / batch, "The gradients of loss_kl", rtol=1e-3, atol=1e-5,
                      target="the closed form") and agrees(grad_logvar, 0.5 * (z_logvar.double().exp() - 1) / batch,
                                                           "The gradients of loss_kl", rtol=1e-3, atol=1e-5,
                                                           target="the closed form"), (
            "The gradients of loss_kl do not match the closed form: is part of it detached?")


# --- Decoder -------------------------------------------------------------------------------------

@check("test_decoder", collect.collect_decoder)
def judge_decoder(out: dict, inputs: Inputs) -> None:
    """forward(z) returns (y_mean, y_logvar), each (B, 1, 28, 28), with y_logvar above a floor."""
    for n in (2, N_COMPONENTS):
        assert out.get(f"module{n}") is True, "Decoder should be a subclass of nn.Module."
        for batch in (1, 7, collect.HUGE_CODES):
            key = f"{n}_{batch}"
            assert f"mean{key}" in out, (
                f"Decoder({n}).forward should return a tuple (y_mean, y_logvar), "
                f"got {describe(out.get(f'kind{key}'))}.")
            require_tensor(out[f"mean{key}"], f"y_mean of Decoder({n}) for a batch of {batch}", (batch, *IMAGE))
            logvar = require_tensor(out.get(f"logvar{key}"), f"y_logvar of Decoder({n}) for a batch of {batch}",
                                    (batch, *IMAGE))
            assert in_range(logvar, f"y_logvar of Decoder({n})", low=LOWEST_LOGVAR), (
                f"Decoder({n}) returned y_logvar = {float(logvar.min()):.1f} for some codes; keep it above a floor "
                f"(at least {LOWEST_LOGVAR:g}), e.g. y_logvar = -6 + softplus(h + 6), or training on pixels that "
                "are always 0 drives it to -inf.")


# --- loss_loglik ---------------------------------------------------------------------------------

def loglik_hint(value: float, y_mean: torch.Tensor, y_logvar: torch.Tensor, x: torch.Tensor) -> str:
    """A likely reason why a negative log-likelihood differs from the formula."""
    batch = len(x)
    guesses = []
    for constant in (False, True):
        expected = float(gaussian_nll(y_mean, y_logvar, x, constant).mean())
        squares = float((0.5 * (x.double() - y_mean.double()) ** 2 / y_logvar.double().exp()).flatten(1).sum(1).mean())
        guesses += [
            (expected / PIXELS, "you averaged over the pixels: sum over them, then average over the images"),
            (expected * batch, "you summed over the batch: average over the images"),
            (2 * expected, "the factor 1/2 is missing"),
            (-expected, "the sign is flipped: return the negative log-likelihood"),
            (squares + (PIXELS * HALF_LOG_2PI if constant else 0.0),
             "the log-variance term 0.5 * y_logvar is missing; without it the loss rewards infinite variances"),
        ]
    for guess, hint in guesses:
        if close(value, guess, rtol=1e-3):
            return hint
    return "check the formula 0.5 * sum_d (y_logvar_d + (x_d - y_mean_d)^2 / exp(y_logvar_d)), averaged over the batch"


@check("test_loss_loglik", collect.collect_loss_loglik)
def judge_loss_loglik(out: dict, inputs: Inputs) -> None:
    """loss_loglik matches the Gaussian NLL with or without the constant, and is differentiable."""
    cases = collect.loglik_cases(inputs)
    for (y_mean, y_logvar, x), case in zip(cases, collected_cases(out, len(cases), "loss_loglik")):
        value = require_scalar(case.get("value"), f"loss_loglik on a batch of {len(x)}")
        without = float(gaussian_nll(y_mean, y_logvar, x).mean())
        with_constant = float(gaussian_nll(y_mean, y_logvar, x, constant=True).mean())
        nearest = min((without, with_constant), key=lambda form: abs(value - form))  # either form is right
        assert agrees(value, nearest, "loss_loglik on the hidden inputs", rtol=1e-4, atol=1e-5,
                      target="the Gaussian NLL" + (" with its constant" if nearest == with_constant else "")), (
            f"loss_loglik on a batch of {len(x)} returned {value:.3f}, expected {without:.3f} (or {with_constant:.3f} "
            f"with the constant 0.5 * log(2 pi) per pixel): {loglik_hint(value, y_mean, y_logvar, x)}.")
        grads = gradients(case.get("grads"), 2)
        assert grads is not None and all(tuple(g.shape) == tuple(x.shape) and g.is_floating_point()
                                         and bool(torch.isfinite(g).all()) and float(g.abs().sum()) > 0
                                         for g in grads), (
            "loss_loglik should be differentiable with respect to y_mean and y_logvar: use torch operations only.")


# --- a short training run of the Gaussian VAE ----------------------------------------------------

@check("test_vae_learns", collect.collect_vae_learns, figures=("brief_training_elbo",), trains=True)
def judge_vae_learns(out: dict, inputs: Inputs) -> None:
    """After a short run from scratch the decoder keeps its floor and the test ELBO, computed here, improves."""
    images = collect.brief_test_images(inputs)
    logvar = out.get("after_huge_logvar")
    assert isinstance(logvar, torch.Tensor) and logvar.is_floating_point() and logvar.numel() > 0, (
        f"The y_logvar of Decoder(10) after the short training run should be a float tensor, got {describe(logvar)}.")
    lowest = float(logvar.double().min())
    assert lowest >= LOWEST_LOGVAR, (
        f"After the short training run, your Decoder(10) returned y_logvar = {lowest:.1f} for some codes: without a "
        f"floor (at least {LOWEST_LOGVAR:g}, e.g. y_logvar = -6 + softplus(h + 6)) training drives the variances of "
        "always-black pixels to 0 and the ELBO of new images collapses.")
    before = float(negative_elbo(out.get("before"), images, "a fresh Encoder(10) and Decoder(10)").mean())
    after = float(negative_elbo(out.get("after"), images, "Encoder(10) and Decoder(10) after training").mean())
    advice = ("Check that the decoder uses its codes, that gradients reach every layer, and that y_logvar can go "
              "down to the floor -6.")
    measure(FIGURES["brief_training_elbo"], after, f"Your Encoder(10) and Decoder(10), trained from scratch for "
            f"{collect.BRIEF_STEPS} Adam steps (lr 1e-3, batches of {collect.BRIEF_BATCH}) with a correct loss (a "
            "one-sample estimate of the negative ELBO),", "test negative ELBO",
            context=f" per image (from {number(before)} before training)", close=advice)
    assert after < before - 200, (
        f"Your Encoder(10) and Decoder(10) barely learn: {collect.BRIEF_STEPS} Adam steps took the test negative ELBO "
        f"per image from {number(before)} to {number(after)} (a working pair gains more than 200). {advice}")


# --- the trained Gaussian VAE --------------------------------------------------------------------

def reference_rows(clean: torch.Tensor, logvar: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """A reference solution's exp(y_logvar / 2) for its own draw of digits, followed by them when they differ."""
    reference_clean = collect.trained_test_set(reference_inputs())[0]
    same = torch.equal(reference_clean, clean)
    rows = reference_row("y_logvar_of_means", logvar, "its exp(y_logvar / 2) for the same digits under other noise"
                         if same else "its exp(y_logvar / 2) for other digits, shown above them",
                         transform=lambda value: torch.exp(0.5 * value.double()))
    return rows + [("its clean digits", reference_clean)] if rows and not same else rows


@check("test_vae_trained", collect.collect_vae_trained, figures=("gaussian_std_mse", "gaussian_test_elbo"),
       pictured=True)
def judge_vae_trained(out: dict, inputs: Inputs) -> None:
    """The trained Gaussian VAE has a good test ELBO and its standard deviations reproduce the digits."""
    clean, noisy = collect.trained_test_set(inputs)
    value = float(negative_elbo(out, noisy, "your trained VAE").mean())
    logvar = require_tensor(out.get("y_logvar_of_means"), "y_logvar decoded from the code means", tuple(clean.shape))
    deviations = torch.exp(0.5 * logvar.double())
    files = f"{collect.ENCODER_FILE} and {collect.DECODER_FILE}"
    show_and_measure(image_rows([("|noisy inputs|", noisy.abs()), ("your exp(y_logvar/2)", deviations),
                                 ("clean digits", clean), *reference_rows(clean, logvar)]),
                     FIGURES["gaussian_test_elbo"], value, "Your trained VAE, on held-out varianceMNIST images,",
                     "negative ELBO per image", context=" (with the log-variance floor -6)",
                     close=f"Train longer, then save and submit {files} again.",
                     far=f"Check the loss (the negative ELBO: Gaussian log-likelihood plus KL) and the log-variance "
                         f"floor, train, then save and submit {files} again.")
    measure(FIGURES["gaussian_std_mse"], float(((deviations - clean.double()) ** 2).mean()),
            "The standard deviations exp(y_logvar / 2) your trained VAE predicts from the code means",
            "per-pixel squared error against the clean digits",
            close="Train longer and submit the checkpoints again.")


@check("test_vae_classifier", collect.collect_vae_codes, figures=("gaussian_accuracy",), pictured=True)
def judge_vae_classifier(out: dict, inputs: Inputs) -> None:
    """A logistic-regression classifier on the code means classifies held-out digits accurately."""
    train_labels = split("train")[1][collect.classifier_subset(inputs)]
    test_labels = split("test")[1]
    train_codes = require_tensor(out.get("train_codes"), "code means of the training images",
                                 (len(train_labels), N_COMPONENTS))
    test_codes = require_tensor(out.get("test_codes"), "code means of the test images",
                                (len(test_labels), N_COMPONENTS))
    accuracy = classifier_accuracy(train_codes, train_labels, test_codes, test_labels)
    panels = [code_panel(test_codes, test_labels, "your VAE's test code means (first two principal components)"),
              *reference_panels("test_codes", test_codes, test_labels, "a reference solution's code means",
                                "its code means of the same digits under other noise")]
    show_and_measure(maps(panels),
                     FIGURES["gaussian_accuracy"], accuracy, "A logistic-regression classifier on the code means of "
                     "your encoder, on held-out varianceMNIST images,", "accuracy", digits=3,
                     close="Train longer (did you feed x.abs() to the encoder?) and submit "
                           f"{collect.ENCODER_FILE} again.")


# --- loss_bce ------------------------------------------------------------------------------------

@check("test_loss_bce", collect.collect_loss_bce)
def judge_loss_bce(out: dict, inputs: Inputs) -> None:
    """loss_bce is the mean binary cross-entropy of probabilities, and is differentiable."""
    cases = collect.bce_cases(inputs)
    for (x_rec, x), case in zip(cases, collected_cases(out, len(cases), "loss_bce")):
        value = require_scalar(case.get("value"), f"loss_bce on a batch of {len(x)}")
        expected = float(bce(x_rec, x))
        if not agrees(value, expected, "loss_bce on the hidden inputs", rtol=1e-4, atol=1e-5,
                      target="the mean binary cross-entropy"):
            hint = "check the formula -(x log x_rec + (1 - x) log(1 - x_rec)), averaged over pixels and images"
            as_logits = float(torch.nn.functional.binary_cross_entropy_with_logits(x_rec.double(), x.double()))
            if close(value, as_logits, rtol=1e-3):
                hint = ("you treated x_rec as logits (binary_cross_entropy_with_logits applies a sigmoid), but x_rec "
                        "are probabilities already: the decoder ends with a sigmoid. Use F.binary_cross_entropy")
            elif close(value, expected * PIXELS, rtol=1e-3) or close(value, expected * PIXELS * len(x), rtol=1e-3):
                hint = "you summed over pixels: take the mean over all pixels and images"
            raise AssertionError(
                f"loss_bce on a batch of {len(x)} returned {value:.5f}, expected {expected:.5f}: {hint}.")
        grad = case.get("grad")
        assert isinstance(grad, torch.Tensor) and tuple(grad.shape) == tuple(x.shape) and grad.is_floating_point() \
            and bool(torch.isfinite(grad).all()) and float(grad.abs().sum()) > 0, (
            "loss_bce should be differentiable with respect to x_rec: use torch operations.")


# --- BernoulliVAE --------------------------------------------------------------------------------

@check("test_bernoulli_vae", collect.collect_bernoulli_vae)
def judge_bernoulli_vae(out: dict, inputs: Inputs) -> None:
    """BernoulliVAE has the 784-128-64-(10, 10) / 10-64-128-784 layers and the specified methods."""
    layers, parameters = out.get("layers"), out.get("parameters")
    assert layers in BERNOULLI_LAYERS.values() and parameters == BERNOULLI_PARAMETERS, (
        f"BernoulliVAE() should have the linear layers 784-128-64, two heads 64-10 (or one head 64-20) and "
        f"10-64-128-784, {BERNOULLI_PARAMETERS} parameters in all; got weight shapes {describe(layers)} and "
        f"{describe(parameters)} parameters.")
    for n in (N_COMPONENTS, 2):
        encoded, forward = out.get(f"encoded{n}"), out.get(f"forward{n}")
        assert isinstance(encoded, list) and len(encoded) == 2, (
            f"BernoulliVAE({n}).encode should return a tuple (z_mean, z_logvar), got {describe(encoded)}.")
        z_mean, z_logvar = (require_tensor(value, f"{what} from BernoulliVAE({n}).encode", (5, n))
                            for value, what in zip(encoded, ("z_mean", "z_logvar")))
        decoded = require_tensor(out.get(f"decoded{n}"), f"BernoulliVAE({n}).decode output", (5, *IMAGE))
        assert in_range(decoded, f"BernoulliVAE({n}).decode outputs", 0, 1, strict=True), (
            f"BernoulliVAE({n}).decode should return probabilities in (0, 1): end the decoder with a sigmoid.")
        assert isinstance(forward, list) and len(forward) == 3, (
            f"BernoulliVAE({n}).forward should return a tuple (x_rec, z_mean, z_logvar), got {describe(forward)}.")
        x_rec = require_tensor(forward[0], f"x_rec from BernoulliVAE({n}).forward", (5, *IMAGE))
        assert in_range(x_rec, f"x_rec of BernoulliVAE({n}).forward", 0, 1, strict=True), (
            "x_rec should hold probabilities in (0, 1).")
        forward_mean = require_tensor(forward[1], f"z_mean from BernoulliVAE({n}).forward", (5, n))
        forward_logvar = require_tensor(forward[2], f"z_logvar from BernoulliVAE({n}).forward", (5, n))
        assert agrees(torch.stack([forward_mean, forward_logvar]), torch.stack([z_mean, z_logvar]),
                      f"z_mean and z_logvar of BernoulliVAE({n}).forward", atol=1e-5, target="those of encode"), (
            "forward should return the z_mean and z_logvar that encode gives for the same images.")
    require_reparameterised(out.get("sampled"), "BernoulliVAE()", "self.decode")


@check("test_bernoulli_trained", collect.collect_bernoulli_trained, figures=("bernoulli_test_bce",), pictured=True)
def judge_bernoulli_trained(out: dict, inputs: Inputs) -> None:
    """The trained Bernoulli VAE reconstructs held-out images with a low binary cross-entropy."""
    images = split("test")[0]
    reconstructions = require_tensor(out.get("reconstructions"), "reconstructions of the test images",
                                     tuple(images.shape))
    show_and_measure(image_rows([("test images", images), ("your BernoulliVAE", reconstructions),
                                 *reference_reconstructions(reconstructions),
                                 *sample_rows(out.get("samples"))]),
                     FIGURES["bernoulli_test_bce"], float(bce(reconstructions.clamp(1e-7, 1 - 1e-7), images)),
                     "Your trained BernoulliVAE, decoding held-out images from their code means,", "BCE per pixel",
                     context=" (the average image: 0.274)",
                     close=f"Train it for the 50 epochs, then save and submit {collect.BERNOULLI_FILE} again.")

