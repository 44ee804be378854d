"""Hidden checks for notebook 2_dae (denoising autoencoders, varianceMNIST, super-resolution).

Every check that trains or evaluates a model makes its own noise with fixed seeds and never calls
the student's `add_noise` or `train`: a mistake in one of those costs only the cell that tests it.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from aelib.data import downsample, variance_mnist
from aelib.evaluation import classifier_accuracy
from grader.checks.common import (as_plain, construct, hidden_check, load_submitted, require_tensor,
                                  single_thread, split, train_briefly)
from grader.reference import DAE as FIGURES

DENOISER_FILE, DAE_FILE, SUPERRES_FILE = "2_dae_denoiser.pth", "2_dae_variance.pth", "2_dae_superres.pth"
NOISE_STD = 0.2
N_COMPONENTS = 10
IMAGE, SMALL = (1, 28, 28), (1, 14, 14)
STANDARD_ERRORS = 6.0  # statistical checks allow this many standard errors
NOISE_IMAGES = 400
GATE_SEEDS = (0, 1, 2)
BRIEF_TEST_IMAGES = 500
TEST_NOISE_SEED, TRAIN_NOISE_SEED, VARIANCE_SEED, BATCH_SEED = 21, 22, 23, 24


def _call(function: Callable, *args, **kwargs):
    """Call a student's function, turning a stub into a failed check."""
    try:
        return function(*args, **kwargs)
    except NotImplementedError:
        raise AssertionError(f"{getattr(function, '__name__', 'This function')} is not implemented yet.") from None


def _gaussian(shape: tuple[int, ...], seed: int, std: float = NOISE_STD) -> torch.Tensor:
    """The grader's own fixed Gaussian noise."""
    return std * torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def _images(output) -> torch.Tensor:
    """The image part of a model's output: the output, or the last element of a tuple."""
    return output[-1] if isinstance(output, tuple) else output


# --- add_noise -----------------------------------------------------------------------------------

def _noise_inputs() -> torch.Tensor:
    """Clean-looking inputs in [0, 1]: real test digits, so clipping at 0 and 1 would show."""
    images, _ = split("test")
    return images[:NOISE_IMAGES].clone()


def collect_add_noise(add_noise: Callable) -> dict:
    """The student's noise for the default std and two others, two calls compared, and the input afterwards."""
    x = _noise_inputs()
    original = x.clone()
    torch.manual_seed(5)
    out = {"x": original}
    out["default"] = as_plain(_call(add_noise, x))
    out["default_again"] = as_plain(_call(add_noise, x))
    out["std_0.5"] = as_plain(_call(add_noise, x, std=0.5))
    out["std_0.05"] = as_plain(_call(add_noise, x, 0.05))
    out["input_after"] = x.clone()
    return out


def _noise_problem(noisy, x: torch.Tensor, std: float, what: str) -> None:
    """Assert that noisy - x is independent N(0, std^2) noise of x's shape, with a hint for common mistakes."""
    noisy = require_tensor(noisy, what, tuple(x.shape))
    noise = (noisy - x).double()
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
    assert abs(neighbours) < limit and abs(images) < limit, (
        f"The noise of {what} is not independent between pixels and images (correlation {neighbours:.2f} between "
        f"neighbouring pixels, {images:.2f} between images): draw one value for every element, of x's full shape.")
    assert abs(mean) <= STANDARD_ERRORS * std / math.sqrt(n), (
        f"The noise of {what} has mean {mean:.4f}; it should be 0 (noise = output - x).")
    if abs(variance - target) > STANDARD_ERRORS * target * math.sqrt(2 / (n - 1)):
        hint = f"it should be std ** 2 = {target:g}"
        if abs(variance - std ** 4) < 0.1 * std ** 4:
            hint += ": you used std ** 2 as the standard deviation; multiply standard normal noise by std"
        elif abs(variance - std) < 0.1 * std:
            hint += ": you used std as the variance; multiply standard normal noise by std itself"
        raise AssertionError(f"The noise of {what} has variance {variance:.5f}; {hint}.")


def judge_add_noise(out: dict) -> None:
    """add_noise adds fresh, independent N(0, std^2) noise of x's shape, without clipping, leaving x unchanged."""
    x = out["x"]
    assert torch.equal(out["input_after"], x), (
        "add_noise changed its input x: return a new tensor (x + noise), do not modify x in place.")
    _noise_problem(out["default"], x, NOISE_STD, "add_noise(x) (default std 0.2)")
    assert not torch.equal(out["default"], out["default_again"]), (
        "Two calls of add_noise(x) returned the same noise: draw new noise on every call (do not fix a seed inside).")
    _noise_problem(out["std_0.5"], x, 0.5, "add_noise(x, std=0.5)")
    _noise_problem(out["std_0.05"], x, 0.05, "add_noise(x, 0.05)")


@hidden_check
def check_add_noise(add_noise: Callable) -> None:
    """Hidden check of add_noise."""
    judge_add_noise(collect_add_noise(add_noise))


# --- the trained MNIST denoiser ------------------------------------------------------------------

def collect_denoiser_trained(Denoiser: Callable) -> dict:
    """Denoised held-out images, corrupted with the grader's fixed noise, from the submitted Denoiser."""
    model = load_submitted(construct(Denoiser), DENOISER_FILE)
    clean, _ = split("test")
    noisy = clean + _gaussian(tuple(clean.shape), TEST_NOISE_SEED)
    with torch.no_grad():
        denoised = [_images(model(noisy[i:i + 500])) for i in range(0, len(noisy), 500)]
    if not all(isinstance(d, torch.Tensor) for d in denoised):
        return {"denoised": type(denoised[0]).__name__, "noisy": noisy, "clean": clean}
    return {"denoised": as_plain(torch.cat(denoised)), "noisy": noisy, "clean": clean}


def judge_denoiser_trained(out: dict) -> None:
    """The submitted Denoiser removes most of the noise from held-out images."""
    clean = out["clean"]
    denoised = require_tensor(out["denoised"], "the output of your Denoiser", tuple(clean.shape))
    value = float(((denoised.double() - clean.double()) ** 2).mean())
    noisy = float(((out["noisy"].double() - clean.double()) ** 2).mean())
    figure = FIGURES["denoiser_mse"]
    assert value < figure.threshold, (
        f"Your trained Denoiser leaves a test MSE of {value:.4f} against the clean images (the noisy inputs: "
        f"{noisy:.3f}); it should be below {figure.threshold:g} (a reference solution reaches about "
        f"{figure.reference:g}). Train it, then save and submit {DENOISER_FILE} again.")


@hidden_check
def check_denoiser_trained(Denoiser: Callable) -> None:
    """Hidden check of the submitted MNIST denoiser."""
    judge_denoiser_trained(collect_denoiser_trained(Denoiser))


# --- DAE: shapes ---------------------------------------------------------------------------------

def _variance_inputs(batch: int, seed: int) -> torch.Tensor:
    """Noisy varianceMNIST versions of a few test digits."""
    images, _ = split("test")
    generator = torch.Generator().manual_seed(seed)
    clean = variance_mnist(images[:batch], generator=generator)
    return clean + NOISE_STD * torch.randn(clean.shape, generator=generator)


def collect_dae(DAE: Callable) -> dict:
    """Outputs of DAE(), DAE(10) and DAE(3) on batches of 1 and 5 noisy varianceMNIST images."""
    out = {}
    for label, args in (("default", ()), ("10", (N_COMPONENTS,)), ("3", (3,))):
        model = construct(DAE, *args)
        out[f"module_{label}"] = isinstance(model, nn.Module)
        for batch in (1, 5):
            with torch.no_grad():
                output = _call(model, _variance_inputs(batch, seed=batch))
            out[f"kind_{label}_{batch}"] = type(output).__name__
            if isinstance(output, tuple) and len(output) == 2:
                out[f"z_{label}_{batch}"], out[f"denoised_{label}_{batch}"] = (as_plain(v) for v in output)
    return out


def judge_dae(out: dict) -> None:
    """forward(x) returns (z, denoised_x) of shapes (B, n_components) and (B, 1, 28, 28); the default is 10."""
    for label, n in (("default", N_COMPONENTS), ("10", N_COMPONENTS), ("3", 3)):
        call = "DAE()" if label == "default" else f"DAE({label})"
        assert out[f"module_{label}"], "DAE should be a subclass of nn.Module."
        for batch in (1, 5):
            assert f"z_{label}_{batch}" in out, (
                f"{call}.forward should return a tuple (z, denoised_x), got {out[f'kind_{label}_{batch}']}.")
            require_tensor(out[f"z_{label}_{batch}"], f"z of {call} for a batch of {batch}", (batch, n))
            require_tensor(out[f"denoised_{label}_{batch}"], f"denoised_x of {call} for a batch of {batch}",
                           (batch, *IMAGE))


@hidden_check
def check_dae(DAE: Callable) -> None:
    """Hidden check of the DAE's outputs and shapes."""
    judge_dae(collect_dae(DAE))


# --- DAE: the multiplicative gate ----------------------------------------------------------------

def _gate_inputs(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy varianceMNIST images with zeroed random pixels, a zeroed patch and one all-zero image; the zero mask."""
    generator = torch.Generator().manual_seed(100 + seed)
    x = _variance_inputs(6, seed=200 + seed)
    zero = torch.rand(x.shape, generator=generator) < 0.3
    row, col = (int(v) for v in torch.randint(0, 20, (2,), generator=generator))
    zero[:, :, row:row + 8, col:col + 8] = True
    zero[-1] = True
    return x.masked_fill(zero, 0.0), zero


def collect_dae_gate(DAE: Callable) -> dict:
    """Denoised outputs of several randomly initialised and perturbed DAEs on inputs with zeroed pixels."""
    out = {"cases": []}
    for seed in GATE_SEEDS:
        model = construct(DAE, N_COMPONENTS, seed=seed)
        if seed:  # move every weight away from its initial value, so no special initialisation hides a leak
            generator = torch.Generator().manual_seed(300 + seed)
            with torch.no_grad():
                for parameter in model.parameters():
                    parameter.add_(0.3 * torch.randn(parameter.shape, generator=generator) * (parameter.std() if parameter.numel() > 1 else 1.0))
        x, zero = _gate_inputs(seed)
        with torch.no_grad():
            output = _call(model, x)
        denoised = output[1] if isinstance(output, tuple) and len(output) == 2 else output
        out["cases"].append({"x": x, "zero": zero, "denoised": as_plain(denoised)})
    return out


def judge_dae_gate(out: dict) -> None:
    """The output is exactly zero wherever the input is zero, and not zero everywhere."""
    for case in out["cases"]:
        x, zero = case["x"], case["zero"]
        denoised = require_tensor(case["denoised"], "denoised_x of DAE(10)", tuple(x.shape))
        leak = float(denoised[zero].abs().max())
        assert leak <= 1e-6, (
            f"Where a pixel of the input is 0, your DAE's output is not 0 (up to {leak:.3g}), for randomly "
            "initialised weights. The optimal denoiser multiplies its input by a gate: denoised_x = x * "
            "torch.sigmoid(f), with x the input itself (not a constant, and not added to f).")
        kept = denoised[~zero]
        assert float(kept.abs().max()) > 1e-4, (
            "Your DAE outputs zeros everywhere: the gate sigmoid(f) should let part of the input through.")


@hidden_check
def check_dae_gate(DAE: Callable) -> None:
    """Hidden check of the DAE's multiplicative gate."""
    judge_dae_gate(collect_dae_gate(DAE))


# --- DAE: a short training run from scratch -------------------------------------------------------

def _variance_test(count: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Clean varianceMNIST test images, their noisy versions (the grader's fixed noise) and labels."""
    images, labels = split("test")
    if count is not None:
        images, labels = images[:count], labels[:count]
    clean = variance_mnist(images, generator=torch.Generator().manual_seed(VARIANCE_SEED))
    return clean, clean + _gaussian(tuple(clean.shape), TEST_NOISE_SEED), labels


def _dae_mse(model: nn.Module, noisy: torch.Tensor, clean: torch.Tensor) -> float:
    """Per-pixel MSE of the DAE's denoised images against the clean targets."""
    with torch.no_grad():
        outputs = [model(noisy[i:i + 500]) for i in range(0, len(noisy), 500)]
    assert all(isinstance(o, tuple) and len(o) == 2 for o in outputs), "DAE.forward should return (z, denoised_x)."
    denoised = torch.cat([o[1] for o in outputs])
    assert denoised.shape == clean.shape, (
        f"denoised_x should have the shape of the input {tuple(clean.shape)}, got {tuple(denoised.shape)}.")
    return float(((denoised.double() - clean.double()) ** 2).mean())


def collect_dae_learns(DAE: Callable) -> dict:
    """Test denoising MSE of a fresh DAE(10) before and after 300 Adam steps on corrupted varianceMNIST (one thread)."""
    with single_thread():
        train_images, _ = split("train")
        clean, noisy, _ = _variance_test(BRIEF_TEST_IMAGES)
        model = construct(DAE, N_COMPONENTS)
        before = _dae_mse(model, noisy, clean)
        generator = torch.Generator().manual_seed(TRAIN_NOISE_SEED)

        def denoising_loss(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
            target = variance_mnist(batch.cpu(), generator=generator)
            corrupted = target + NOISE_STD * torch.randn(target.shape, generator=generator)
            output = model(corrupted.to(batch.device))
            assert isinstance(output, tuple) and len(output) == 2, "DAE.forward should return (z, denoised_x)."
            return F.mse_loss(output[1], target.to(batch.device))

        train_briefly(model, train_images[:4000], steps=300, loss_of=denoising_loss)
        after = _dae_mse(model, noisy, clean)
    noisy_mse = float(((noisy.double() - clean.double()) ** 2).mean())
    return {"before": before, "after": after, "noisy": noisy_mse}


def judge_dae_learns(out: dict) -> None:
    """A short training run from scratch denoises varianceMNIST far better than doing nothing."""
    figure = FIGURES["brief_dae_mse"]
    after = out["after"]
    assert math.isfinite(after) and after < figure.threshold, (
        f"Your DAE(10), trained from scratch for 300 Adam steps (lr 1e-3, batches of 64) to denoise varianceMNIST, "
        f"reached a test MSE of {after:.4f} (before training {out['before']:.4f}, the noisy inputs "
        f"{out['noisy']:.4f}); a working gated DAE gets below {figure.threshold:g}. Check that the encoder sees "
        "x.abs(), that the output is x * sigmoid(decoder(z)), and that gradients reach every layer.")


@hidden_check
def check_dae_learns(DAE: Callable) -> None:
    """Hidden check that the student's DAE learns in a short run with the grader's loss and noise."""
    judge_dae_learns(collect_dae_learns(DAE))


# --- DAE: the trained model ----------------------------------------------------------------------

def collect_dae_trained(DAE: Callable) -> dict:
    """Codes of noisy varianceMNIST training and test images and the test denoising MSE of the submitted DAE."""
    model = load_submitted(construct(DAE, N_COMPONENTS), DAE_FILE)
    train_images, train_labels = split("train")
    train_clean = variance_mnist(train_images, generator=torch.Generator().manual_seed(VARIANCE_SEED + 1))
    train_noisy = train_clean + _gaussian(tuple(train_clean.shape), TRAIN_NOISE_SEED)
    clean, noisy, test_labels = _variance_test()

    def codes(images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([model(images[i:i + 1000])[0] for i in range(0, len(images), 1000)])

    return {"train_codes": as_plain(codes(train_noisy)), "train_labels": train_labels,
            "test_codes": as_plain(codes(noisy)), "test_labels": test_labels,
            "mse": _dae_mse(model, noisy, clean)}


def judge_dae_trained(out: dict) -> None:
    """The trained DAE denoises held-out varianceMNIST well and its codes classify the digits."""
    figure = FIGURES["dae_mse"]
    assert math.isfinite(out["mse"]) and out["mse"] < figure.threshold, (
        f"Your trained DAE denoises held-out varianceMNIST images (noise std 0.2) to a test MSE of {out['mse']:.4f}; "
        f"it should be below {figure.threshold:g} (a reference solution reaches about {figure.reference:g}, the "
        f"noisy inputs 0.040). Train longer, then save and submit {DAE_FILE} again.")
    train_codes = require_tensor(out["train_codes"], "codes z of the training images",
                                 (len(out["train_labels"]), N_COMPONENTS))
    test_codes = require_tensor(out["test_codes"], "codes z of the test images", (len(out["test_labels"]), N_COMPONENTS))
    accuracy = classifier_accuracy(train_codes, out["train_labels"], test_codes, out["test_labels"])
    figure = FIGURES["dae_accuracy"]
    assert accuracy > figure.threshold, (
        f"A logistic-regression classifier on the codes of your DAE reaches {accuracy:.3f} accuracy on held-out "
        f"varianceMNIST images; it should be above {figure.threshold:g} (a reference solution reaches about "
        f"{figure.reference:g}). Train longer (does the encoder see x.abs()?) and submit {DAE_FILE} again.")


@hidden_check
def check_dae_trained(DAE: Callable) -> None:
    """Hidden check of the submitted DAE."""
    judge_dae_trained(collect_dae_trained(DAE))


# --- SuperResolution -----------------------------------------------------------------------------

def interpolation_mse(small: torch.Tensor, clean: torch.Tensor, mode: str) -> float:
    """Per-pixel MSE of F.interpolate upsampling (x2) of the small images against the originals."""
    return float(((F.interpolate(small, scale_factor=2, mode=mode).double() - clean.double()) ** 2).mean())


def collect_super_resolution(SuperResolution: Callable) -> dict:
    """Outputs of a fresh SuperResolution() on batches of 1 and 5 low-resolution images."""
    model = construct(SuperResolution)
    images, _ = split("test")
    out = {"module": isinstance(model, nn.Module)}
    for batch in (1, 5):
        with torch.no_grad():
            out[f"output_{batch}"] = as_plain(_call(model, downsample(images[:batch])))
    return out


def judge_super_resolution(out: dict) -> None:
    """forward maps (B, 1, 14, 14) to (B, 1, 28, 28)."""
    assert out["module"], "SuperResolution should be a subclass of nn.Module."
    for batch in (1, 5):
        require_tensor(out[f"output_{batch}"], f"SuperResolution() on a batch of {batch} images (B, 1, 14, 14)",
                       (batch, *IMAGE))


@hidden_check
def check_super_resolution(SuperResolution: Callable) -> None:
    """Hidden check of SuperResolution's output shapes."""
    judge_super_resolution(collect_super_resolution(SuperResolution))


def _superres_mse(model: nn.Module, small: torch.Tensor, clean: torch.Tensor) -> torch.Tensor | str:
    """Per-image output of the model for small images (a tensor), or the type name of what it returned."""
    with torch.no_grad():
        outputs = [model(small[i:i + 500]) for i in range(0, len(small), 500)]
    if not all(isinstance(o, torch.Tensor) for o in outputs):
        return type(outputs[0]).__name__
    return as_plain(torch.cat(outputs))


def collect_super_resolution_learns(SuperResolution: Callable) -> dict:
    """Test outputs of a fresh SuperResolution() after 200 Adam steps from scratch (one thread)."""
    images, _ = split("test")
    clean = images[:BRIEF_TEST_IMAGES]
    model = construct(SuperResolution)
    out = {"clean": clean, "bicubic": interpolation_mse(downsample(clean), clean, "bicubic"),
           "parameters": sum(p.numel() for p in model.parameters() if p.requires_grad)}
    if not out["parameters"]:
        return out
    with single_thread():
        train_images, _ = split("train")

        def superres_loss(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
            output = model(downsample(batch))
            assert isinstance(output, torch.Tensor) and output.shape == batch.shape, (
                f"SuperResolution() should map (B, 1, 14, 14) to (B, 1, 28, 28), got "
                f"{tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__}.")
            return F.mse_loss(output, batch)

        train_briefly(model, train_images[:4000], steps=200, loss_of=superres_loss, batch_size=32)
        out["output"] = _superres_mse(model, downsample(clean), clean)
    return out


def judge_super_resolution_learns(out: dict) -> None:
    """A short training run from scratch beats bicubic interpolation."""
    assert out["parameters"] > 0, (
        "SuperResolution() has no trainable parameters: it cannot learn anything. Add layers (for example a "
        "convolutional correction added to the bicubic upsampling).")
    clean = out["clean"]
    output = require_tensor(out["output"], "SuperResolution() after a short training run", tuple(clean.shape))
    value = float(((output.double() - clean.double()) ** 2).mean())
    figure = FIGURES["brief_superres_mse"]
    assert value < figure.threshold, (
        f"Your SuperResolution(), trained from scratch for 200 Adam steps (lr 1e-3, batches of 32), reached a test "
        f"MSE of {value:.4f}; bicubic interpolation gets {out['bicubic']:.4f} and a working model below "
        f"{figure.threshold:g}. Check that the output depends on learned layers and that gradients reach them.")


@hidden_check
def check_super_resolution_learns(SuperResolution: Callable) -> None:
    """Hidden check that SuperResolution learns in a short run."""
    judge_super_resolution_learns(collect_super_resolution_learns(SuperResolution))


def collect_super_resolution_trained(SuperResolution: Callable) -> dict:
    """Upscaled held-out images from the submitted SuperResolution."""
    model = load_submitted(construct(SuperResolution), SUPERRES_FILE)
    clean, _ = split("test")
    small = downsample(clean)
    return {"output": _superres_mse(model, small, clean), "clean": clean,
            "bicubic": interpolation_mse(small, clean, "bicubic")}


def judge_super_resolution_trained(out: dict) -> None:
    """The trained SuperResolution beats bicubic interpolation on held-out images by a clear margin."""
    clean = out["clean"]
    output = require_tensor(out["output"], "the output of your SuperResolution", tuple(clean.shape))
    value = float(((output.double() - clean.double()) ** 2).mean())
    figure = FIGURES["superres_mse"]
    assert value < figure.threshold, (
        f"Your trained SuperResolution reaches a test MSE of {value:.4f} (bicubic interpolation: "
        f"{out['bicubic']:.4f}); it should be below {figure.threshold:g} (a reference solution reaches about "
        f"{figure.reference:g}). Train it, then save and submit {SUPERRES_FILE} again.")


@hidden_check
def check_super_resolution_trained(SuperResolution: Callable) -> None:
    """Hidden check of the submitted SuperResolution."""
    judge_super_resolution_trained(collect_super_resolution_trained(SuperResolution))
