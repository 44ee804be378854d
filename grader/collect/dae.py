"""Collectors of notebook 2_dae (denoising autoencoders, varianceMNIST, super-resolution): plain data only.

Every input below (images, varianceMNIST draws, Gaussian noise, held-out subsets, initial weights and
batch orders) comes from the submission's secret `Inputs`; the judges rebuild the same inputs and
targets with the helpers of this module. No collector calls the student's `add_noise` or `train`, so
a mistake in one of those costs only the cell that tests it.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from aelib.data import downsample, variance_mnist
from grader.collect.common import (CollectionFailed, Inputs, as_plain, call, construct, load_submitted, split,
                                   train_briefly)

DENOISER_FILE, DAE_FILE, SUPERRES_FILE = "2_dae_denoiser.pth", "2_dae_variance.pth", "2_dae_superres.pth"
MLP_FILE = "2_dae_mlp.pth"
NOISE_STD = 0.2                 # the corruption every denoising input gets
N_COMPONENTS = 10
NOISE_IMAGES = 400              # real test digits handed to add_noise
GATE_CASES, GATE_IMAGES = 3, 6  # randomly initialised DAEs, and the images each sees
BRIEF_TRAIN_IMAGES, BRIEF_TEST_IMAGES = 4000, 500
DAE_STEPS, DAE_BATCH = 300, 64
SUPERRES_STEPS, SUPERRES_BATCH = 200, 32
OUTPUT_BATCH = 500              # images per forward pass when a model runs over a whole set



def output_images(output: Any) -> Any:
    """The image part of a model's output: the output itself, or the last element of a tuple."""
    return output[-1] if isinstance(output, tuple) else output


# --- inputs both sides derive from the secret seed ------------------------------------------------

def noise_images(inputs: Inputs) -> torch.Tensor:
    """Real test digits in [0, 1] for add_noise, so clipping at 0 and 1 would show."""
    images = split("test")[0]
    return images[inputs.subset(len(images), NOISE_IMAGES, "noise subset")].clone()


def denoiser_test_set(inputs: Inputs) -> tuple[torch.Tensor, torch.Tensor]:
    """The held-out digits and their copies corrupted with secret Gaussian noise (std 0.2)."""
    clean = split("test")[0]
    return clean, clean + NOISE_STD * torch.randn(clean.shape, generator=inputs.generator("denoiser noise"))


def noisy_variance(images: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One varianceMNIST draw of `images` and its copy corrupted with Gaussian noise, both from `generator`."""
    clean = variance_mnist(images, generator=generator)
    return clean, clean + NOISE_STD * torch.randn(clean.shape, generator=generator)


def shape_inputs(inputs: Inputs, batch: int) -> torch.Tensor:
    """A few noisy varianceMNIST images for the shape checks (the judge never needs them back)."""
    images = split("test")[0]
    generator = inputs.generator("shape inputs")
    chosen = torch.randint(len(images), (batch,), generator=generator)
    return noisy_variance(images[chosen], generator)[1]


def gate_inputs(inputs: Inputs, case: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy varianceMNIST images with zeroed random pixels, a zeroed patch and one all-zero image; the zero mask."""
    images = split("test")[0]
    generator = inputs.generator(f"gate draws {case}")
    x = noisy_variance(images[inputs.subset(len(images), GATE_IMAGES, f"gate subset {case}")], generator)[1]
    zero = torch.rand(x.shape, generator=generator) < 0.3
    row, col = (int(v) for v in torch.randint(0, 20, (2,), generator=generator))
    zero[:, :, row:row + 8, col:col + 8] = True
    zero[-1] = True
    return x.masked_fill(zero, 0.0), zero


def dae_brief_subsets(inputs: Inputs) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the training and held-out images of the DAE's short training run."""
    train, test = len(split("train")[0]), len(split("test")[0])
    return (inputs.subset(train, min(BRIEF_TRAIN_IMAGES, train), "dae train subset"),
            inputs.subset(test, min(BRIEF_TEST_IMAGES, test), "dae test subset"))


def dae_brief_test_set(inputs: Inputs) -> tuple[torch.Tensor, torch.Tensor]:
    """Clean varianceMNIST held-out images of the short run and their noisy versions."""
    images = split("test")[0][dae_brief_subsets(inputs)[1]]
    return noisy_variance(images, inputs.generator("dae test draws"))


def dae_trained_test_set(inputs: Inputs) -> tuple[torch.Tensor, torch.Tensor]:
    """Clean varianceMNIST versions of every held-out image and their noisy versions."""
    return noisy_variance(split("test")[0], inputs.generator("trained test draws"))


def dae_trained_train_inputs(inputs: Inputs) -> torch.Tensor:
    """Noisy varianceMNIST versions of every training image, whose codes train the judge's classifier."""
    return noisy_variance(split("train")[0], inputs.generator("trained train draws"))[1]


def superres_brief_subsets(inputs: Inputs) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the training and held-out images of SuperResolution's short training run."""
    train, test = len(split("train")[0]), len(split("test")[0])
    return (inputs.subset(train, min(BRIEF_TRAIN_IMAGES, train), "superres train subset"),
            inputs.subset(test, min(BRIEF_TEST_IMAGES, test), "superres test subset"))


# --- running the student's models ------------------------------------------------------------------

def dae_outputs(model: nn.Module, images: torch.Tensor,
                keep_images: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Codes and denoised images (None unless `keep_images`) of a DAE for `images`, in batches without gradients."""
    codes, denoised = [], []
    with torch.no_grad():
        for i in range(0, len(images), OUTPUT_BATCH):
            output = call(model, images[i:i + OUTPUT_BATCH])
            if not (isinstance(output, tuple) and len(output) == 2):
                raise CollectionFailed(f"DAE.forward should return a tuple (z, denoised_x), got "
                                       f"{type(output).__name__}.")
            codes.append(output[0])
            if keep_images:
                denoised.append(output[1])
    return torch.cat(codes), torch.cat(denoised) if keep_images else None


def image_outputs(model: nn.Module, images: torch.Tensor) -> Any:
    """The output images of `model` for `images`, in batches without gradients (the type name if not tensors)."""
    with torch.no_grad():
        outputs = [output_images(call(model, images[i:i + OUTPUT_BATCH])) for i in range(0, len(images), OUTPUT_BATCH)]
    if not all(isinstance(output, torch.Tensor) for output in outputs):
        return next(type(o).__name__ for o in outputs if not isinstance(o, torch.Tensor))
    return as_plain(torch.cat(outputs))


# --- collectors, one per graded cell ---------------------------------------------------------------

def collect_add_noise(inputs: Inputs, add_noise: Callable) -> dict:
    """The student's noise for the default std and two others, two calls compared, and the input afterwards."""
    x = noise_images(inputs)
    torch.manual_seed(inputs.torch_seed("noise seed"))
    out = {"default": as_plain(call(add_noise, x)), "default_again": as_plain(call(add_noise, x))}
    out["std_0.5"] = as_plain(call(add_noise, x, std=0.5))
    out["std_0.05"] = as_plain(call(add_noise, x, 0.05))
    out["input_after"] = as_plain(x)
    return out


def collect_denoiser_trained(inputs: Inputs, Denoiser: Callable) -> dict:
    """The submitted Denoiser's outputs for the held-out digits corrupted with secret noise."""
    model = load_submitted(construct(Denoiser), DENOISER_FILE)
    return {"denoised": image_outputs(model, denoiser_test_set(inputs)[1])}


def collect_mlp_denoiser(inputs: Inputs, MLPDenoiser: Callable) -> dict:
    """Layers and outputs of a fresh MLPDenoiser, and the submitted one's outputs for the secret noisy digits."""
    model = construct(MLPDenoiser)
    with torch.no_grad():
        output = call(model, shape_inputs(inputs, 4))
    out = {"layers": sorted(tuple(m.weight.shape) for m in model.modules() if isinstance(m, nn.Linear)),
           "parameters": sum(p.numel() for p in model.parameters()), "kind": type(output).__name__,
           "length": len(output) if isinstance(output, tuple) else -1}
    if out["length"] != 2:
        return out
    out.update(codes=as_plain(output[0]), images=as_plain(output[1]))
    trained = load_submitted(construct(MLPDenoiser), MLP_FILE)
    out["denoised"] = image_outputs(trained, denoiser_test_set(inputs)[1])
    return out


def collect_dae(inputs: Inputs, DAE: Callable) -> dict:
    """Outputs of DAE(), DAE(10) and DAE(3) on batches of 1 and 5 noisy varianceMNIST images."""
    out = {}
    for label, args in (("default", ()), ("10", (N_COMPONENTS,)), ("3", (3,))):
        model = construct(DAE, *args, seed=inputs.torch_seed("shape init"))
        out[f"module_{label}"] = isinstance(model, nn.Module)
        for batch in (1, 5):
            with torch.no_grad():
                output = call(model, shape_inputs(inputs, batch))
            out[f"kind_{label}_{batch}"] = type(output).__name__
            if isinstance(output, tuple) and len(output) == 2:
                out[f"z_{label}_{batch}"], out[f"denoised_{label}_{batch}"] = (as_plain(v) for v in output)
    return out


def collect_dae_gate(inputs: Inputs, DAE: Callable) -> dict:
    """Denoised outputs of randomly initialised, then perturbed, DAE(10)s on inputs with zeroed pixels."""
    out = {"cases": []}
    for case in range(GATE_CASES):
        model = construct(DAE, N_COMPONENTS, seed=inputs.torch_seed(f"gate init {case}"))
        if case:  # move every weight away from its initial value, so no special initialisation hides a leak
            generator = inputs.generator(f"gate shift {case}")
            with torch.no_grad():
                for parameter in model.parameters():
                    scale = parameter.std() if parameter.numel() > 1 else 1.0
                    parameter.add_(0.3 * torch.randn(parameter.shape, generator=generator) * scale)
        with torch.no_grad():
            output = call(model, gate_inputs(inputs, case)[0])
        denoised = output[1] if isinstance(output, tuple) and len(output) == 2 else output
        out["cases"].append({"denoised": as_plain(denoised)})
    return out


def collect_dae_learns(inputs: Inputs, DAE: Callable) -> dict:
    """Denoised held-out images of a fresh DAE(10) before and after a short run on corrupted varianceMNIST."""
    train_index, _ = dae_brief_subsets(inputs)
    _, noisy = dae_brief_test_set(inputs)
    model = construct(DAE, N_COMPONENTS, seed=inputs.torch_seed("dae init"))
    before = dae_outputs(model, noisy)[1]
    draws = inputs.generator("dae train draws")

    def denoising_loss(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        target = variance_mnist(batch.cpu(), generator=draws)
        corrupted = target + NOISE_STD * torch.randn(target.shape, generator=draws)
        output = model(corrupted.to(batch.device))
        if not (isinstance(output, tuple) and len(output) == 2):
            raise CollectionFailed("DAE.forward should return a tuple (z, denoised_x).")
        return nn.functional.mse_loss(output[1], target.to(batch.device))

    train_briefly(model, split("train")[0][train_index], steps=DAE_STEPS, loss_of=denoising_loss,
                  batch_size=DAE_BATCH, seed=inputs.torch_seed("dae order"))
    return {"before": as_plain(before), "after": as_plain(dae_outputs(model, noisy)[1])}


def collect_dae_trained(inputs: Inputs, DAE: Callable) -> dict:
    """Codes of noisy varianceMNIST training and held-out images, and denoised held-out images, of the submitted DAE."""
    model = load_submitted(construct(DAE, N_COMPONENTS), DAE_FILE)
    test_codes, denoised = dae_outputs(model, dae_trained_test_set(inputs)[1])
    train_codes, _ = dae_outputs(model, dae_trained_train_inputs(inputs), keep_images=False)
    return {"train_codes": as_plain(train_codes), "test_codes": as_plain(test_codes), "denoised": as_plain(denoised)}


def collect_super_resolution(inputs: Inputs, SuperResolution: Callable) -> dict:
    """Outputs of a fresh SuperResolution() on batches of 1 and 5 low-resolution images."""
    model = construct(SuperResolution, seed=inputs.torch_seed("superres shape init"))
    images = split("test")[0]
    chosen = images[inputs.subset(len(images), 5, "superres shape subset")]
    out = {"module": isinstance(model, nn.Module)}
    for batch in (1, 5):
        with torch.no_grad():
            out[f"output_{batch}"] = as_plain(call(model, downsample(chosen[:batch])))
    return out


def collect_super_resolution_learns(inputs: Inputs, SuperResolution: Callable) -> dict:
    """Held-out outputs of a fresh SuperResolution() after a short run from scratch, and its parameter count."""
    train_index, test_index = superres_brief_subsets(inputs)
    model = construct(SuperResolution, seed=inputs.torch_seed("superres init"))
    out = {"parameters": sum(p.numel() for p in model.parameters() if p.requires_grad)}
    if not out["parameters"]:
        return out

    def superres_loss(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        output = model(downsample(batch))
        if not (isinstance(output, torch.Tensor) and output.shape == batch.shape):
            got = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
            raise CollectionFailed(f"SuperResolution() should map (B, 1, 14, 14) to (B, 1, 28, 28), got {got}.")
        return nn.functional.mse_loss(output, batch)

    train_briefly(model, split("train")[0][train_index], steps=SUPERRES_STEPS, loss_of=superres_loss,
                  batch_size=SUPERRES_BATCH, seed=inputs.torch_seed("superres order"))
    out["output"] = image_outputs(model, downsample(split("test")[0][test_index]))
    return out


def collect_super_resolution_trained(inputs: Inputs, SuperResolution: Callable) -> dict:
    """The submitted SuperResolution's outputs for every held-out image shrunk to 14x14."""
    model = load_submitted(construct(SuperResolution), SUPERRES_FILE)
    return {"output": image_outputs(model, downsample(split("test")[0]))}
