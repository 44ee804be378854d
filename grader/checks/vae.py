"""Hidden checks for notebook 3_vae (variational autoencoders).

Every check that trains or evaluates a model uses the grader's own losses and its own
re-parameterisation (`reparameterise`), never the student's `sample`, `loss_kl` or `loss_loglik`:
a mistake in one of those functions then costs only the cell that tests it.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from aelib.data import variance_mnist
from aelib.evaluation import classifier_accuracy
from grader.checks.common import (as_plain, construct, hidden_check, load_submitted, require_tensor,
                                  single_thread, split, train_briefly)
from grader.reference import VAE as FIGURES

ENCODER_FILE, DECODER_FILE, BERNOULLI_FILE = "3_vae_encoder.pth", "3_vae_decoder.pth", "3_vae_bernoulli.pth"
N_COMPONENTS = 10
PIXELS = 784
IMAGE = (1, 28, 28)
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
LOWEST_LOGVAR = -10.0  # the decoder's log-variance floor may be anywhere from here up
STANDARD_ERRORS = 6.0  # statistical checks allow this many standard errors
CLASSIFIER_TRAIN_IMAGES = 10_000
TEST_NOISE_SEED, TRAIN_NOISE_SEED, SAMPLE_SEED = 11, 12, 13
BERNOULLI_LAYERS = {
    "two heads": sorted([(128, 784), (64, 128), (10, 64), (10, 64), (64, 10), (128, 64), (784, 128)]),
    "one head": sorted([(128, 784), (64, 128), (20, 64), (64, 10), (128, 64), (784, 128)]),
}
BERNOULLI_PARAMETERS = (784 * 128 + 128 + 128 * 64 + 64 + 2 * (64 * 10 + 10)
                        + 10 * 64 + 64 + 64 * 128 + 128 + 128 * 784 + 784)


# --- the grader's own formulas -------------------------------------------------------------------

def kl_closed_form(z_mean: torch.Tensor, z_logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag exp(lv)) || N(0, I)) summed over dimensions, averaged over the batch (float64)."""
    mu, lv = z_mean.double(), z_logvar.double()
    return (0.5 * (lv.exp() + mu ** 2 - 1 - lv)).sum(dim=1).mean()


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


def reparameterise(z_mean: torch.Tensor, z_logvar: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One sample of N(z_mean, diag exp(z_logvar)) per row, drawn with the grader's generator."""
    eps = torch.randn(z_mean.shape, generator=generator, dtype=z_mean.dtype)
    return z_mean + torch.exp(0.5 * z_logvar) * eps


def _close(value: float, expected: float, rtol: float = 1e-4, atol: float = 1e-5) -> bool:
    return abs(value - expected) <= atol + rtol * abs(expected)


def _scalar(value, what: str) -> float:
    """The float of a scalar tensor, or a failed check saying what the function returned."""
    assert isinstance(value, torch.Tensor), f"{what} should return a torch scalar tensor, got {value}."
    assert value.numel() == 1 and value.dim() == 0, (
        f"{what} should return a scalar (shape ()), got shape {tuple(value.shape)}: reduce over the batch too.")
    assert torch.isfinite(value), f"{what} returned {float(value)}."
    return float(value.detach())


def _call(function: Callable, *args):
    """Call a student's function, turning a stub into a failed check."""
    try:
        return function(*args)
    except NotImplementedError:
        raise AssertionError(f"{getattr(function, '__name__', 'This function')} is not implemented yet.") from None


# --- Encoder -------------------------------------------------------------------------------------

def collect_encoder(Encoder: Callable) -> dict:
    """Outputs of fresh encoders for two code sizes and two batch sizes, on varianceMNIST-like images."""
    generator = torch.Generator().manual_seed(2)
    out = {}
    for n in (2, N_COMPONENTS):
        encoder = construct(Encoder, n)
        out[f"module{n}"] = isinstance(encoder, nn.Module)
        for batch in (1, 7):
            images = torch.rand(batch, *IMAGE, generator=generator) * torch.randn(batch, *IMAGE, generator=generator)
            output = _call(encoder, images)
            out[f"kind{n}_{batch}"] = type(output).__name__
            if isinstance(output, tuple) and len(output) == 2:
                out[f"mean{n}_{batch}"], out[f"logvar{n}_{batch}"] = as_plain(output[0]), as_plain(output[1])
    return out


def judge_encoder(out: dict) -> None:
    """forward(x) returns (z_mean, z_logvar), each (B, n_components)."""
    for n in (2, N_COMPONENTS):
        assert out[f"module{n}"], "Encoder should be a subclass of nn.Module."
        for batch in (1, 7):
            assert f"mean{n}_{batch}" in out, (
                f"Encoder({n}).forward should return a tuple (z_mean, z_logvar), got {out[f'kind{n}_{batch}']}.")
            require_tensor(out[f"mean{n}_{batch}"], f"z_mean of Encoder({n}) for a batch of {batch}", (batch, n))
            require_tensor(out[f"logvar{n}_{batch}"], f"z_logvar of Encoder({n}) for a batch of {batch}", (batch, n))


@hidden_check
def check_encoder(Encoder: Callable) -> None:
    """Hidden check of the Encoder's outputs."""
    judge_encoder(collect_encoder(Encoder))


# --- sample --------------------------------------------------------------------------------------

SAMPLE_MEAN = torch.tensor([[0.0, 0.0, 0.0], [1.5, -2.0, 0.5], [-1.0, 3.0, -0.3], [0.2, -0.7, 2.5]])
SAMPLE_LOGVAR = torch.tensor([[0.0, -2.0, 1.5], [2.0, 0.5, -1.0], [-3.0, 1.0, 0.2], [-0.5, 2.5, -1.5]])
SAMPLE_DRAWS = 20_000


def collect_sample(Encoder: Callable) -> dict:
    """Many draws of the student's sample for fixed parameters, two small draws, and its gradients."""
    encoder = construct(Encoder, 3)
    rows = len(SAMPLE_MEAN)
    torch.manual_seed(SAMPLE_SEED)
    big = _call(encoder.sample, SAMPLE_MEAN.repeat(SAMPLE_DRAWS, 1), SAMPLE_LOGVAR.repeat(SAMPLE_DRAWS, 1))
    out = {"draws": as_plain(big), "first": as_plain(_call(encoder.sample, SAMPLE_MEAN, SAMPLE_LOGVAR)),
           "second": as_plain(_call(encoder.sample, SAMPLE_MEAN, SAMPLE_LOGVAR)), "rows": rows}
    z_mean, z_logvar = SAMPLE_MEAN.clone().requires_grad_(), SAMPLE_LOGVAR.clone().requires_grad_()
    z = _call(encoder.sample, z_mean, z_logvar)
    out["z"] = as_plain(z)
    if isinstance(z, torch.Tensor) and z.requires_grad:
        grads = torch.autograd.grad(z.sum(), [z_mean, z_logvar], allow_unused=True)
        out["grad_mean"], out["grad_logvar"] = (None if g is None else as_plain(g) for g in grads)
    return out


def judge_sample(out: dict) -> None:
    """Samples have mean z_mean and variance exp(z_logvar), differ between calls, and pass gradients."""
    rows, dims = SAMPLE_MEAN.shape
    draws = require_tensor(out["draws"], f"sample on a batch of {rows * SAMPLE_DRAWS} rows",
                           (rows * SAMPLE_DRAWS, dims)).double().reshape(SAMPLE_DRAWS, rows, dims)
    first = require_tensor(out["first"], "sample(z_mean, z_logvar)", (rows, dims))
    assert not torch.equal(first, out["second"]), (
        "Two calls of sample with the same arguments returned the same values: draw new noise eps on every call.")
    variance = SAMPLE_LOGVAR.double().exp()
    n = SAMPLE_DRAWS
    empirical = draws.var(dim=0)
    variance_tolerance = STANDARD_ERRORS * variance * math.sqrt(2 / (n - 1))
    if not ((empirical - variance).abs() <= variance_tolerance).all():
        hint = "the standard deviation is exp(z_logvar / 2), so the variance is exp(z_logvar)"
        if float(empirical.max()) < 1e-12:
            hint = "your samples do not vary at all: add exp(z_logvar / 2) * eps with eps ~ N(0, I)"
        elif torch.allclose(empirical, variance ** 2, rtol=0.1):
            hint = "you used exp(z_logvar) as the standard deviation; it is exp(z_logvar / 2)"
        elif torch.allclose(empirical, SAMPLE_LOGVAR.double() ** 2, rtol=0.1, atol=0.05):
            hint = "you used z_logvar itself as the standard deviation; it is a log-variance: use exp(z_logvar / 2)"
        worst = int(((empirical - variance).abs() / variance).argmax())
        row, dim = divmod(worst, dims)
        raise AssertionError(
            f"Over {n} draws with z_logvar = {float(SAMPLE_LOGVAR[row, dim]):g}, the samples have variance "
            f"{float(empirical[row, dim]):.3f} instead of exp(z_logvar) = {float(variance[row, dim]):.3f}: {hint}.")
    mean_error = (draws.mean(dim=0) - SAMPLE_MEAN.double()).abs()
    mean_tolerance = STANDARD_ERRORS * variance.sqrt() / math.sqrt(n)
    assert (mean_error <= mean_tolerance).all(), (
        f"Over {n} draws, the samples do not average to z_mean (largest error {float(mean_error.max()):.3f}): "
        "sample should return z_mean plus zero-mean noise.")
    assert out.get("grad_mean") is not None and out.get("grad_logvar") is not None, (
        "Gradients do not flow from the samples back to both z_mean and z_logvar: compute z with torch "
        "operations from z_mean and z_logvar (the re-parameterisation trick), without detach or .data.")
    z = out["z"].double()
    assert torch.allclose(out["grad_mean"].double(), torch.ones_like(z), atol=1e-5), (
        "The gradient of the samples with respect to z_mean should be 1: z = z_mean + noise.")
    assert torch.allclose(out["grad_logvar"].double(), 0.5 * (z - SAMPLE_MEAN.double()), atol=1e-4), (
        "The gradient of the samples with respect to z_logvar is not that of z_mean + exp(z_logvar / 2) * eps.")


@hidden_check
def check_sample(Encoder: Callable) -> None:
    """Hidden statistical check of Encoder.sample."""
    judge_sample(collect_sample(Encoder))


# --- loss_kl -------------------------------------------------------------------------------------

def _kl_cases() -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(5)
    cases = [(torch.zeros(4, 5), torch.zeros(4, 5)), (torch.zeros(3, 3), torch.full((3, 3), math.log(2)))]
    for batch, dims in ((8, 10), (1, 4), (16, 2), (5, 7)):
        cases.append((1.5 * torch.randn(batch, dims, generator=generator),
                      2 * torch.rand(batch, dims, generator=generator) - 1.5))
    return cases


def collect_loss_kl(loss_kl: Callable) -> dict:
    """Values and gradients of the student's loss_kl on fixed inputs."""
    out = {"cases": []}
    for z_mean, z_logvar in _kl_cases():
        mu, lv = z_mean.clone().requires_grad_(), z_logvar.clone().requires_grad_()
        value = _call(loss_kl, mu, lv)
        case = {"z_mean": z_mean, "z_logvar": z_logvar, "value": as_plain(value), "grads": None}
        if isinstance(value, torch.Tensor) and value.requires_grad and value.numel() == 1:
            grads = torch.autograd.grad(value.sum(), [mu, lv], allow_unused=True)
            case["grads"] = [None if g is None else as_plain(g) for g in grads]
        out["cases"].append(case)
    return out


def _kl_hint(value: float, z_mean: torch.Tensor, z_logvar: torch.Tensor) -> str:
    """A likely reason why a KL value differs from the closed form."""
    batch, dims = z_mean.shape
    expected = float(kl_closed_form(z_mean, z_logvar))
    per_dim_and_image = 0.5 * (z_logvar.double().exp() + z_mean.double() ** 2 - 1 - z_logvar.double())
    guesses = [
        (-expected, "the sign is flipped: KL(q || p) is never negative"),
        (2 * expected, "the factor 1/2 is missing"),
        (expected / dims, "you averaged over the code dimensions: sum over them, then average over the batch"),
        (expected * batch, "you summed over the batch: average over the images"),
        (float(per_dim_and_image.mean()), "you averaged over everything: sum over the code dimensions"),
    ]
    for guess, hint in guesses:
        if _close(value, guess, rtol=1e-3) and not _close(value, expected, rtol=1e-3):
            return hint
    return "check the formula 0.5 * sum_j (exp(lv_j) + mu_j^2 - 1 - lv_j), averaged over the batch"


def judge_loss_kl(out: dict) -> None:
    """loss_kl matches the closed form (and a Monte-Carlo estimate) and is differentiable."""
    for case in out["cases"]:
        z_mean, z_logvar = case["z_mean"], case["z_logvar"]
        shape = tuple(z_mean.shape)
        value = _scalar(case["value"], f"loss_kl on inputs of shape {shape}")
        expected = float(kl_closed_form(z_mean, z_logvar))
        if expected == 0.0:
            assert abs(value) < 1e-6, f"loss_kl should be exactly 0 when z_mean = 0 and z_logvar = 0, got {value:.6g}."
        assert _close(value, expected), (
            f"loss_kl on inputs of shape {shape} returned {value:.5f}, expected {expected:.5f}: "
            f"{_kl_hint(value, z_mean, z_logvar)}.")
        if shape == (8, 10):
            estimate, standard_error = kl_monte_carlo(z_mean, z_logvar, n_samples=20_000, seed=7)
            assert abs(value - estimate) <= STANDARD_ERRORS * standard_error + 1e-6, (
                f"loss_kl returned {value:.4f}, but sampling z ~ q and averaging log q(z) - log p(z) gives "
                f"{estimate:.4f} +- {standard_error:.4f}.")
    for case in out["cases"]:
        z_mean, z_logvar = case["z_mean"], case["z_logvar"]
        shape = tuple(z_mean.shape)
        grads = case["grads"]
        assert grads is not None and all(g is not None for g in grads), (
            "loss_kl should be differentiable with respect to z_mean and z_logvar: use torch operations only.")
        batch = shape[0]
        assert torch.allclose(grads[0].double(), z_mean.double() / batch, rtol=1e-3, atol=1e-5) and torch.allclose(
            grads[1].double(), 0.5 * (z_logvar.double().exp() - 1) / batch, rtol=1e-3, atol=1e-5), (
            "The gradients of loss_kl do not match the closed form: is part of it detached?")


@hidden_check
def check_loss_kl(loss_kl: Callable) -> None:
    """Hidden check of loss_kl against the closed form."""
    judge_loss_kl(collect_loss_kl(loss_kl))


# --- Decoder -------------------------------------------------------------------------------------

def collect_decoder(Decoder: Callable) -> dict:
    """Outputs of fresh decoders for ordinary and for huge codes."""
    generator = torch.Generator().manual_seed(3)
    out = {}
    for n in (2, N_COMPONENTS):
        decoder = construct(Decoder, n)
        out[f"module{n}"] = isinstance(decoder, nn.Module)
        for batch, scale in ((1, 1.0), (7, 1.0), (64, 100.0)):
            with torch.no_grad():
                output = _call(decoder, scale * torch.randn(batch, n, generator=generator))
            key = f"{n}_{batch}"
            out[f"kind{key}"] = type(output).__name__
            if isinstance(output, tuple) and len(output) == 2:
                out[f"mean{key}"], out[f"logvar{key}"] = as_plain(output[0]), as_plain(output[1])
    return out


def judge_decoder(out: dict) -> None:
    """forward(z) returns (y_mean, y_logvar), each (B, 1, 28, 28), with y_logvar above a floor."""
    for n in (2, N_COMPONENTS):
        assert out[f"module{n}"], "Decoder should be a subclass of nn.Module."
        for batch in (1, 7, 64):
            key = f"{n}_{batch}"
            assert f"mean{key}" in out, (
                f"Decoder({n}).forward should return a tuple (y_mean, y_logvar), got {out[f'kind{key}']}.")
            require_tensor(out[f"mean{key}"], f"y_mean of Decoder({n}) for a batch of {batch}", (batch, *IMAGE))
            logvar = require_tensor(out[f"logvar{key}"], f"y_logvar of Decoder({n}) for a batch of {batch}",
                                    (batch, *IMAGE))
            assert float(logvar.min()) >= LOWEST_LOGVAR, (
                f"Decoder({n}) returned y_logvar = {float(logvar.min()):.1f} for some codes; keep it above a floor "
                f"(at least {LOWEST_LOGVAR:g}), e.g. y_logvar = -6 + softplus(h + 6), or training on pixels that "
                "are always 0 drives it to -inf.")


@hidden_check
def check_decoder(Decoder: Callable) -> None:
    """Hidden check of the Decoder's outputs and its log-variance floor."""
    judge_decoder(collect_decoder(Decoder))


# --- loss_loglik ---------------------------------------------------------------------------------

def _loglik_cases() -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(6)
    cases = []
    for batch in (1, 3, 5):
        y_mean = 0.5 * torch.randn(batch, *IMAGE, generator=generator)
        y_logvar = 6 * torch.rand(batch, *IMAGE, generator=generator) - 4
        x = torch.rand(batch, *IMAGE, generator=generator) * torch.randn(batch, *IMAGE, generator=generator)
        cases.append((y_mean, y_logvar, x))
    return cases


def collect_loss_loglik(loss_loglik: Callable) -> dict:
    """Values of the student's loss_loglik on fixed inputs, and whether gradients reach its inputs."""
    out = {"cases": []}
    for y_mean, y_logvar, x in _loglik_cases():
        m, lv = y_mean.clone().requires_grad_(), y_logvar.clone().requires_grad_()
        value = _call(loss_loglik, m, lv, x)
        differentiable = False
        if isinstance(value, torch.Tensor) and value.requires_grad and value.numel() == 1:
            grads = torch.autograd.grad(value.sum(), [m, lv], allow_unused=True)
            differentiable = all(g is not None and torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)
        out["cases"].append({"y_mean": y_mean, "y_logvar": y_logvar, "x": x, "value": as_plain(value),
                             "differentiable": differentiable})
    return out


def _loglik_hint(value: float, y_mean: torch.Tensor, y_logvar: torch.Tensor, x: torch.Tensor) -> str:
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
        if _close(value, guess, rtol=1e-3):
            return hint
    return "check the formula 0.5 * sum_d (y_logvar_d + (x_d - y_mean_d)^2 / exp(y_logvar_d)), averaged over the batch"


def judge_loss_loglik(out: dict) -> None:
    """loss_loglik matches the Gaussian NLL with or without the constant, and is differentiable."""
    for case in out["cases"]:
        y_mean, y_logvar, x = case["y_mean"], case["y_logvar"], case["x"]
        value = _scalar(case["value"], f"loss_loglik on a batch of {len(x)}")
        without = float(gaussian_nll(y_mean, y_logvar, x).mean())
        with_constant = float(gaussian_nll(y_mean, y_logvar, x, constant=True).mean())
        assert _close(value, without) or _close(value, with_constant), (
            f"loss_loglik on a batch of {len(x)} returned {value:.3f}, expected {without:.3f} (or {with_constant:.3f} "
            f"with the constant 0.5 * log(2 pi) per pixel): {_loglik_hint(value, y_mean, y_logvar, x)}.")
        assert case["differentiable"], (
            "loss_loglik should be differentiable with respect to y_mean and y_logvar: use torch operations only.")


@hidden_check
def check_loss_loglik(loss_loglik: Callable) -> None:
    """Hidden check of loss_loglik against the Gaussian negative log-likelihood."""
    judge_loss_loglik(collect_loss_loglik(loss_loglik))


# --- a short training run of the Gaussian VAE ----------------------------------------------------

def negative_elbo(encoder: nn.Module, decoder: nn.Module, noisy: torch.Tensor, seed: int) -> torch.Tensor:
    """Per-image negative ELBO (grader's formulas, one grader-drawn sample of z), in batches of 500."""
    generator = torch.Generator().manual_seed(seed)
    values = []
    with torch.no_grad():
        for start in range(0, len(noisy), 500):
            batch = noisy[start:start + 500]
            z_mean, z_logvar = encoder(batch)
            y_mean, y_logvar = decoder(reparameterise(z_mean, z_logvar, generator))
            kl = (0.5 * (z_logvar.double().exp() + z_mean.double() ** 2 - 1 - z_logvar.double())).sum(dim=1)
            values.append(kl + gaussian_nll(y_mean, y_logvar, batch))
    return torch.cat(values)


def collect_vae_learns(Encoder: Callable, Decoder: Callable) -> dict:
    """Test negative ELBO of a fresh Encoder(10) and Decoder(10) before and after 300 Adam steps (one thread)."""
    with single_thread():
        return _brief_training(Encoder, Decoder)


def _brief_training(Encoder: Callable, Decoder: Callable) -> dict:
    train_images, _ = split("train")
    test_images, _ = split("test")
    noisy_test = variance_mnist(test_images[:500], generator=torch.Generator().manual_seed(TEST_NOISE_SEED))
    pair = nn.ModuleList([construct(Encoder, N_COMPONENTS), construct(Decoder, N_COMPONENTS, seed=1)])
    before = negative_elbo(pair[0], pair[1], noisy_test, SAMPLE_SEED).mean()
    noise = torch.Generator().manual_seed(TRAIN_NOISE_SEED)
    sampling = torch.Generator().manual_seed(SAMPLE_SEED)

    def elbo_loss(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        noisy = variance_mnist(batch.cpu(), generator=noise).to(batch.device)
        z_mean, z_logvar = model[0](noisy)
        eps = torch.randn(z_mean.shape, generator=sampling).to(z_mean.device)
        y_mean, y_logvar = model[1](z_mean + torch.exp(0.5 * z_logvar) * eps)
        kl = (0.5 * (z_logvar.exp() + z_mean ** 2 - 1 - z_logvar)).sum(dim=1).mean()
        nll = (0.5 * (y_logvar + (noisy - y_mean) ** 2 / y_logvar.exp())).flatten(1).sum(dim=1).mean()
        return kl + nll

    train_briefly(pair, train_images[:4000], steps=300, loss_of=elbo_loss)
    after = negative_elbo(pair[0], pair[1], noisy_test, SAMPLE_SEED).mean()
    return {"before": float(before), "after": float(after)}


def judge_vae_learns(out: dict) -> None:
    """A short training run from scratch improves the test ELBO far enough."""
    limit = FIGURES["brief_training_elbo"].threshold
    before, after = out["before"], out["after"]
    assert math.isfinite(after) and after < limit and after < before - 200, (
        f"Your Encoder(10) and Decoder(10), trained from scratch for 300 Adam steps (lr 1e-3, batches of 64) with a "
        f"correct loss, reached a test negative ELBO of {after:.1f} per image (from {before:.1f}); a working "
        f"architecture gets below {limit:g}. Check that the decoder uses its codes, that gradients reach every "
        "layer, and that y_logvar can go down to the floor -6.")


@hidden_check
def check_vae_learns(Encoder: Callable, Decoder: Callable) -> None:
    """Hidden check that the student's architecture learns in a short run with the grader's loss."""
    judge_vae_learns(collect_vae_learns(Encoder, Decoder))


# --- the trained Gaussian VAE --------------------------------------------------------------------

def _noisy_test() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Clean test images, a fixed varianceMNIST version of them, and their labels."""
    test_images, test_labels = split("test")
    noisy = variance_mnist(test_images, generator=torch.Generator().manual_seed(TEST_NOISE_SEED))
    return test_images, noisy, test_labels


def collect_vae_trained(Encoder: Callable, Decoder: Callable) -> dict:
    """Negative ELBO per test image and predicted standard deviations from the submitted checkpoints."""
    encoder = load_submitted(construct(Encoder, N_COMPONENTS), ENCODER_FILE)
    decoder = load_submitted(construct(Decoder, N_COMPONENTS), DECODER_FILE)
    clean, noisy, _ = _noisy_test()
    with torch.no_grad():
        stds = []
        for start in range(0, len(noisy), 1000):
            z_mean, _ = encoder(noisy[start:start + 1000])
            stds.append(torch.exp(0.5 * decoder(z_mean)[1]))
        elbo = negative_elbo(encoder, decoder, noisy, SAMPLE_SEED)
    return {"negative_elbo": as_plain(elbo), "stds": as_plain(torch.cat(stds)), "clean": clean}


def judge_vae_trained(out: dict) -> None:
    """The trained Gaussian VAE has a good test ELBO and its standard deviations reproduce the digits."""
    clean = out["clean"]
    elbo = require_tensor(out["negative_elbo"], "the negative ELBO of the test images", (len(clean),))
    stds = require_tensor(out["stds"], "the predicted standard deviations of the test images", tuple(clean.shape))
    value, limit = float(elbo.double().mean()), FIGURES["gaussian_test_elbo"].threshold
    assert value < limit, (
        f"Your trained VAE has a negative ELBO of {value:.1f} per held-out varianceMNIST image; it should be below "
        f"{limit:g} (a reference solution reaches about {FIGURES['gaussian_test_elbo'].reference:g}, with the "
        "log-variance floor -6). Train longer, then save and submit 3_vae_encoder.pth and 3_vae_decoder.pth again.")
    error, limit = float(((stds.double() - clean.double()) ** 2).mean()), FIGURES["gaussian_std_mse"].threshold
    assert error < limit, (
        f"The standard deviations exp(y_logvar / 2) your trained VAE predicts from the code means differ from the "
        f"clean digits by a per-pixel squared error of {error:.4f}; it should be below {limit:g} (a reference "
        f"solution reaches about {FIGURES['gaussian_std_mse'].reference:g}). Train longer and submit the checkpoints again.")


@hidden_check
def check_vae_trained(Encoder: Callable, Decoder: Callable) -> None:
    """Hidden check of the submitted Gaussian VAE."""
    judge_vae_trained(collect_vae_trained(Encoder, Decoder))


def collect_vae_codes(Encoder: Callable) -> dict:
    """Code means of varianceMNIST training and test images from the submitted encoder."""
    encoder = load_submitted(construct(Encoder, N_COMPONENTS), ENCODER_FILE)
    train_images, train_labels = split("train")
    train_images, train_labels = train_images[:CLASSIFIER_TRAIN_IMAGES], train_labels[:CLASSIFIER_TRAIN_IMAGES]
    noisy_train = variance_mnist(train_images, generator=torch.Generator().manual_seed(TRAIN_NOISE_SEED))
    _, noisy_test, test_labels = _noisy_test()

    def means(images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([encoder(images[i:i + 1000])[0] for i in range(0, len(images), 1000)])

    return {"train_codes": as_plain(means(noisy_train)), "train_labels": train_labels,
            "test_codes": as_plain(means(noisy_test)), "test_labels": test_labels}


def judge_vae_classifier(out: dict) -> None:
    """A logistic-regression classifier on the code means classifies held-out digits accurately."""
    train_codes = require_tensor(out["train_codes"], "code means of the training images",
                                 (len(out["train_labels"]), N_COMPONENTS))
    test_codes = require_tensor(out["test_codes"], "code means of the test images",
                                (len(out["test_labels"]), N_COMPONENTS))
    accuracy = classifier_accuracy(train_codes, out["train_labels"], test_codes, out["test_labels"])
    figure = FIGURES["gaussian_accuracy"]
    assert accuracy > figure.threshold, (
        f"A logistic-regression classifier on the code means of your encoder reaches {accuracy:.3f} accuracy on "
        f"held-out varianceMNIST images; it should be above {figure.threshold:g} (a reference solution reaches "
        f"about {figure.reference:g}). Train longer (did you feed x.abs() to the encoder?) and submit "
        "3_vae_encoder.pth again.")


@hidden_check
def check_vae_classifier(Encoder: Callable) -> None:
    """Hidden check of the classifier accuracy on the submitted encoder's code means."""
    judge_vae_classifier(collect_vae_codes(Encoder))


# --- loss_bce ------------------------------------------------------------------------------------

def _bce_cases() -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(8)
    cases = []
    for batch, binary in ((4, False), (2, True), (1, False)):
        x_rec = torch.sigmoid(2 * torch.randn(batch, *IMAGE, generator=generator))
        x = torch.rand(batch, *IMAGE, generator=generator)
        cases.append((x_rec, (x > 0.7).float() if binary else x))
    return cases


def collect_loss_bce(loss_bce: Callable) -> dict:
    """Values of the student's loss_bce on fixed inputs, and whether gradients reach x_rec."""
    out = {"cases": []}
    for x_rec, x in _bce_cases():
        p = x_rec.clone().requires_grad_()
        value = _call(loss_bce, p, x)
        differentiable = False
        if isinstance(value, torch.Tensor) and value.requires_grad and value.numel() == 1:
            (grad,) = torch.autograd.grad(value.sum(), [p], allow_unused=True)
            differentiable = grad is not None and bool(torch.isfinite(grad).all()) and float(grad.abs().sum()) > 0
        out["cases"].append({"x_rec": x_rec, "x": x, "value": as_plain(value), "differentiable": differentiable})
    return out


def judge_loss_bce(out: dict) -> None:
    """loss_bce is the mean binary cross-entropy of probabilities, and is differentiable."""
    for case in out["cases"]:
        x_rec, x = case["x_rec"], case["x"]
        value = _scalar(case["value"], f"loss_bce on a batch of {len(x)}")
        expected = float(bce(x_rec, x))
        if not _close(value, expected):
            hint = "check the formula -(x log x_rec + (1 - x) log(1 - x_rec)), averaged over pixels and images"
            as_logits = float(torch.nn.functional.binary_cross_entropy_with_logits(x_rec.double(), x.double()))
            if _close(value, as_logits, rtol=1e-3):
                hint = ("you treated x_rec as logits (binary_cross_entropy_with_logits applies a sigmoid), but x_rec "
                        "are probabilities already: the decoder ends with a sigmoid. Use F.binary_cross_entropy")
            elif _close(value, expected * PIXELS, rtol=1e-3) or _close(value, expected * PIXELS * len(x), rtol=1e-3):
                hint = "you summed over pixels: take the mean over all pixels and images"
            raise AssertionError(f"loss_bce on a batch of {len(x)} returned {value:.5f}, expected {expected:.5f}: {hint}.")
        assert case["differentiable"], "loss_bce should be differentiable with respect to x_rec: use torch operations."


@hidden_check
def check_loss_bce(loss_bce: Callable) -> None:
    """Hidden check of loss_bce against the binary cross-entropy."""
    judge_loss_bce(collect_loss_bce(loss_bce))


# --- BernoulliVAE --------------------------------------------------------------------------------

def collect_bernoulli_vae(BernoulliVAE: Callable) -> dict:
    """Layer shapes, parameter count and outputs of fresh BernoulliVAE(10) and BernoulliVAE(2)."""
    generator = torch.Generator().manual_seed(9)
    model = construct(BernoulliVAE)
    out = {"layers": sorted(tuple(m.weight.shape) for m in model.modules() if isinstance(m, nn.Linear)),
           "parameters": sum(p.numel() for p in model.parameters())}
    for n, instance in ((N_COMPONENTS, model), (2, construct(BernoulliVAE, 2))):
        x = torch.rand(5, *IMAGE, generator=generator)
        with torch.no_grad():
            encoded = _call(instance.encode, x)
            decoded = _call(instance.decode, 3 * torch.randn(5, n, generator=generator))
            forward = _call(instance, x)
        out[f"encoded{n}"] = [as_plain(v) for v in encoded] if isinstance(encoded, tuple) else type(encoded).__name__
        out[f"decoded{n}"] = as_plain(decoded)
        out[f"forward{n}"] = [as_plain(v) for v in forward] if isinstance(forward, tuple) else type(forward).__name__
    return out


def judge_bernoulli_vae(out: dict) -> None:
    """BernoulliVAE has the 784-128-64-(10, 10) / 10-64-128-784 layers and the specified methods."""
    assert out["layers"] in BERNOULLI_LAYERS.values() and out["parameters"] == BERNOULLI_PARAMETERS, (
        f"BernoulliVAE() should have the linear layers 784-128-64, two heads 64-10 (or one head 64-20) and "
        f"10-64-128-784, {BERNOULLI_PARAMETERS} parameters in all; got weight shapes {out['layers']} and "
        f"{out['parameters']} parameters.")
    for n in (N_COMPONENTS, 2):
        encoded, forward = out[f"encoded{n}"], out[f"forward{n}"]
        assert isinstance(encoded, list) and len(encoded) == 2, (
            f"BernoulliVAE({n}).encode should return a tuple (z_mean, z_logvar), got {encoded}.")
        for value, what in zip(encoded, ("z_mean", "z_logvar")):
            require_tensor(value, f"{what} from BernoulliVAE({n}).encode", (5, n))
        decoded = require_tensor(out[f"decoded{n}"], f"BernoulliVAE({n}).decode output", (5, *IMAGE))
        assert decoded.min() > 0 and decoded.max() < 1, (
            f"BernoulliVAE({n}).decode should return probabilities in (0, 1): end the decoder with a sigmoid.")
        assert isinstance(forward, list) and len(forward) == 3, (
            f"BernoulliVAE({n}).forward should return a tuple (x_rec, z_mean, z_logvar), got {forward}.")
        x_rec = require_tensor(forward[0], f"x_rec from BernoulliVAE({n}).forward", (5, *IMAGE))
        assert x_rec.min() > 0 and x_rec.max() < 1, "x_rec should hold probabilities in (0, 1)."
        assert torch.allclose(forward[1], encoded[0], atol=1e-5) and torch.allclose(forward[2], encoded[1], atol=1e-5), (
            f"forward should return the z_mean and z_logvar that encode gives for the same images.")


@hidden_check
def check_bernoulli_vae(BernoulliVAE: Callable) -> None:
    """Hidden check of the Bernoulli VAE's architecture and methods."""
    judge_bernoulli_vae(collect_bernoulli_vae(BernoulliVAE))


def collect_bernoulli_trained(BernoulliVAE: Callable) -> dict:
    """Test images decoded from their code means by the submitted Bernoulli VAE."""
    model = load_submitted(construct(BernoulliVAE), BERNOULLI_FILE)
    test_images, _ = split("test")
    with torch.no_grad():
        reconstructions = torch.cat([model.decode(model.encode(test_images[i:i + 1000])[0])
                                     for i in range(0, len(test_images), 1000)])
    return {"reconstructions": as_plain(reconstructions), "test_images": test_images}


def judge_bernoulli_trained(out: dict) -> None:
    """The trained Bernoulli VAE reconstructs held-out images with a low binary cross-entropy."""
    images = out["test_images"]
    reconstructions = require_tensor(out["reconstructions"], "reconstructions of the test images", tuple(images.shape))
    value = float(bce(reconstructions.clamp(1e-7, 1 - 1e-7), images))
    figure = FIGURES["bernoulli_test_bce"]
    assert value < figure.threshold, (
        f"Your trained BernoulliVAE reconstructs held-out images (decoded from their code means) with a BCE of "
        f"{value:.4f} per pixel; it should be below {figure.threshold:g} (a reference solution reaches about "
        f"{figure.reference:g}, the average image 0.274). Train it for the 50 epochs, then save and submit "
        "3_vae_bernoulli.pth again.")


@hidden_check
def check_bernoulli_trained(BernoulliVAE: Callable) -> None:
    """Hidden check of the submitted Bernoulli VAE."""
    judge_bernoulli_trained(collect_bernoulli_trained(BernoulliVAE))
