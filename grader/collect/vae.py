"""Collectors of notebook 3_vae (variational autoencoders): call the student's code, return plain data.

Every input below (means and log-variances, images, varianceMNIST draws, re-parameterisation noise,
held-out subsets, initial weights and batch orders) comes from the submission's secret `Inputs`; the
judges rebuild the same inputs with the helpers of this module and compute every loss and every ELBO
themselves. No collector calls the student's `sample`, `loss_kl`, `loss_loglik` or `loss_bce` outside
the cell that tests it, so a mistake in one of those costs only that cell. Nothing here computes a graded
quantity: the short training run of test_vae_learns minimises a single-sample Monte-Carlo estimate of the
negative ELBO, written inline with torch.distributions.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import nn
from torch.distributions import Normal

from aelib.data import variance_mnist
from grader.collect.common import (CollectionFailed, Inputs, as_plain, call, construct, load_submitted, prior_samples,
                                   sampled_codes, split, train_briefly)

ENCODER_FILE, DECODER_FILE, BERNOULLI_FILE = "3_vae_encoder.pth", "3_vae_decoder.pth", "3_vae_bernoulli.pth"
N_COMPONENTS = 10
IMAGE = (1, 28, 28)
SAMPLE_ROWS, SAMPLE_DIMS, SAMPLE_DRAWS = 4, 3, 20_000
KL_SHAPES = ((8, 10), (1, 4), (16, 2), (5, 7))  # the random cases, after two fixed ones
LOGLIK_BATCHES = (1, 3, 5)
BCE_CASES = ((4, False), (2, True), (1, False))  # batch, binary targets
BRIEF_TRAIN_IMAGES, BRIEF_TEST_IMAGES, BRIEF_STEPS, BRIEF_BATCH = 4000, 500, 300, 64
TRAINED_TEST_IMAGES = 2000
CLASSIFIER_TRAIN_IMAGES = 10_000
OUTPUT_BATCH = 500  # images per forward pass when a model runs over a whole set
HUGE_CODES, HUGE_CODE_SCALE = 64, 100.0  # codes far out in the tails, where a decoder without a floor shows it



# --- inputs both sides derive from the secret seed ------------------------------------------------

def encoder_images(inputs: Inputs, batch: int) -> torch.Tensor:
    """Random varianceMNIST-like images (intensity times Gaussian noise) for the shape checks."""
    generator = inputs.generator("encoder inputs")
    return torch.rand(batch, *IMAGE, generator=generator) * torch.randn(batch, *IMAGE, generator=generator)


def sample_parameters(inputs: Inputs) -> tuple[torch.Tensor, torch.Tensor]:
    """Secret means and log-variances (SAMPLE_ROWS, SAMPLE_DIMS) for sample, log-variances spread over [-3, 2.5]."""
    generator = inputs.generator("sample parameters")
    count = SAMPLE_ROWS * SAMPLE_DIMS
    spread = torch.linspace(-3.0, 2.5, count) + 0.2 * torch.rand(count, generator=generator) - 0.1
    logvar = spread[torch.randperm(count, generator=generator)].reshape(SAMPLE_ROWS, SAMPLE_DIMS)
    mean = 4 * torch.rand(SAMPLE_ROWS, SAMPLE_DIMS, generator=generator) - 2
    return mean, logvar


def kl_cases(inputs: Inputs) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(z_mean, z_logvar) pairs for loss_kl: q equal to the prior, a known value, then secret random ones."""
    generator = inputs.generator("kl cases")
    cases = [(torch.zeros(4, 5), torch.zeros(4, 5)), (torch.zeros(3, 3), torch.full((3, 3), math.log(2)))]
    for batch, dims in KL_SHAPES:
        cases.append((1.5 * torch.randn(batch, dims, generator=generator),
                      2 * torch.rand(batch, dims, generator=generator) - 1.5))
    return cases


def loglik_cases(inputs: Inputs) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Secret (y_mean, y_logvar, x) triples of images for loss_loglik."""
    generator = inputs.generator("loglik cases")
    cases = []
    for batch in LOGLIK_BATCHES:
        y_mean = 0.5 * torch.randn(batch, *IMAGE, generator=generator)
        y_logvar = 6 * torch.rand(batch, *IMAGE, generator=generator) - 4
        x = torch.rand(batch, *IMAGE, generator=generator) * torch.randn(batch, *IMAGE, generator=generator)
        cases.append((y_mean, y_logvar, x))
    return cases


def bce_cases(inputs: Inputs) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Secret (x_rec, x) pairs for loss_bce: probabilities, and grey or black-and-white targets."""
    generator = inputs.generator("bce inputs")
    cases = []
    for batch, binary in BCE_CASES:
        x_rec = torch.sigmoid(2 * torch.randn(batch, *IMAGE, generator=generator))
        x = torch.rand(batch, *IMAGE, generator=generator)
        cases.append((x_rec, (x > 0.7).float() if binary else x))
    return cases


def brief_subsets(inputs: Inputs) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the training images and of the held-out images of the short training run."""
    train, test = len(split("train")[0]), len(split("test")[0])
    return (inputs.subset(train, min(BRIEF_TRAIN_IMAGES, train), "brief train subset"),
            inputs.subset(test, min(BRIEF_TEST_IMAGES, test), "brief test subset"))


def brief_test_images(inputs: Inputs) -> torch.Tensor:
    """A secret varianceMNIST draw of the held-out images of the short training run."""
    images = split("test")[0][brief_subsets(inputs)[1]]
    return variance_mnist(images, generator=inputs.generator("brief test draws"))


def trained_test_set(inputs: Inputs) -> tuple[torch.Tensor, torch.Tensor]:
    """Secret held-out clean digits for the trained Gaussian VAE, and a secret varianceMNIST draw of them."""
    images = split("test")[0]
    clean = images[inputs.subset(len(images), min(TRAINED_TEST_IMAGES, len(images)), "trained subset")]
    return clean, variance_mnist(clean, generator=inputs.generator("trained draws"))


def classifier_subset(inputs: Inputs) -> torch.Tensor:
    """Indices of the training images whose code means train the judge's classifier."""
    total = len(split("train")[0])
    return inputs.subset(total, min(CLASSIFIER_TRAIN_IMAGES, total), "classifier subset")


def classifier_images(inputs: Inputs) -> tuple[torch.Tensor, torch.Tensor]:
    """Secret varianceMNIST draws of the classifier's training images and of every held-out image."""
    train = split("train")[0][classifier_subset(inputs)]
    return (variance_mnist(train, generator=inputs.generator("classifier train draws")),
            variance_mnist(split("test")[0], generator=inputs.generator("classifier test draws")))


# --- running the student's models ------------------------------------------------------------------

def pair_of(output: Any, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The two tensors of a model's output tuple, or a CollectionFailed naming what it returned."""
    if not (isinstance(output, tuple) and len(output) == 2 and all(isinstance(v, torch.Tensor) for v in output)):
        raise CollectionFailed(f"{what} should return a tuple of two tensors, got {type(output).__name__}.")
    return output


def vae_outputs(encoder: nn.Module, decoder: nn.Module, images: torch.Tensor, eps: torch.Tensor,
                decode_means: bool = False) -> dict:
    """z_mean, z_logvar of `images` and (y_mean, y_logvar) decoded from codes shifted by the secret `eps`."""
    parts: dict[str, list] = {"z_mean": [], "z_logvar": [], "y_mean": [], "y_logvar": []}
    if decode_means:
        parts["y_logvar_of_means"] = []
    with torch.no_grad():
        for start in range(0, len(images), OUTPUT_BATCH):
            z_mean, z_logvar = pair_of(call(encoder, images[start:start + OUTPUT_BATCH]), "Encoder.forward")
            codes = z_mean + torch.exp(0.5 * z_logvar) * eps[start:start + OUTPUT_BATCH]
            y_mean, y_logvar = pair_of(call(decoder, codes), "Decoder.forward")
            for key, value in zip(parts, (z_mean, z_logvar, y_mean, y_logvar)):
                parts[key].append(value)
            if decode_means:
                parts["y_logvar_of_means"].append(pair_of(call(decoder, z_mean), "Decoder.forward")[1])
    return {key: as_plain(torch.cat(values)) for key, values in parts.items()}


def code_means(encoder: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The code means z_mean of `images`, in batches without gradients."""
    with torch.no_grad():
        return torch.cat([pair_of(call(encoder, images[i:i + OUTPUT_BATCH]), "Encoder.forward")[0]
                          for i in range(0, len(images), OUTPUT_BATCH)])


# --- collectors, one per graded cell ---------------------------------------------------------------

def collect_encoder(inputs: Inputs, Encoder: Callable) -> dict:
    """Outputs of fresh encoders for two code sizes and two batch sizes, on varianceMNIST-like images."""
    out = {}
    for n in (2, N_COMPONENTS):
        encoder = construct(Encoder, n, seed=inputs.torch_seed("encoder init"))
        out[f"module{n}"] = isinstance(encoder, nn.Module)
        for batch in (1, 7):
            with torch.no_grad():
                output = call(encoder, encoder_images(inputs, batch))
            out[f"kind{n}_{batch}"] = type(output).__name__
            if isinstance(output, tuple) and len(output) == 2:
                out[f"mean{n}_{batch}"], out[f"logvar{n}_{batch}"] = as_plain(output[0]), as_plain(output[1])
    return out


def collect_sample(inputs: Inputs, Encoder: Callable) -> dict:
    """Many draws of the student's sample for secret parameters, two small draws, and its gradients."""
    encoder = construct(Encoder, SAMPLE_DIMS, seed=inputs.torch_seed("sample init"))
    mean, logvar = sample_parameters(inputs)
    torch.manual_seed(inputs.torch_seed("sample noise"))
    with torch.no_grad():
        big = call(encoder.sample, mean.repeat(SAMPLE_DRAWS, 1), logvar.repeat(SAMPLE_DRAWS, 1))
        out = {"draws": as_plain(big), "first": as_plain(call(encoder.sample, mean, logvar)),
               "second": as_plain(call(encoder.sample, mean, logvar))}
    z_mean, z_logvar = mean.clone().requires_grad_(), logvar.clone().requires_grad_()
    z = call(encoder.sample, z_mean, z_logvar)
    out.update(z=as_plain(z), grad_mean=None, grad_logvar=None)
    if isinstance(z, torch.Tensor) and z.requires_grad:
        grads = torch.autograd.grad(z.sum(), [z_mean, z_logvar], allow_unused=True)
        out["grad_mean"], out["grad_logvar"] = (None if g is None else as_plain(g) for g in grads)
    return out


def collect_loss_kl(inputs: Inputs, loss_kl: Callable) -> dict:
    """Values and gradients of the student's loss_kl on the secret cases."""
    out = {"cases": []}
    for z_mean, z_logvar in kl_cases(inputs):
        mu, lv = z_mean.clone().requires_grad_(), z_logvar.clone().requires_grad_()
        value = call(loss_kl, mu, lv)
        case = {"value": as_plain(value), "grads": None}
        if isinstance(value, torch.Tensor) and value.requires_grad and value.numel() == 1:
            grads = torch.autograd.grad(value.sum(), [mu, lv], allow_unused=True)
            case["grads"] = [None if g is None else as_plain(g) for g in grads]
        out["cases"].append(case)
    return out


def collect_decoder(inputs: Inputs, Decoder: Callable) -> dict:
    """Outputs of fresh decoders for ordinary and for huge secret codes."""
    generator = inputs.generator("decoder codes")
    out = {}
    for n in (2, N_COMPONENTS):
        decoder = construct(Decoder, n, seed=inputs.torch_seed("decoder init"))
        out[f"module{n}"] = isinstance(decoder, nn.Module)
        for batch, scale in ((1, 1.0), (7, 1.0), (HUGE_CODES, HUGE_CODE_SCALE)):
            with torch.no_grad():
                output = call(decoder, scale * torch.randn(batch, n, generator=generator))
            key = f"{n}_{batch}"
            out[f"kind{key}"] = type(output).__name__
            if isinstance(output, tuple) and len(output) == 2:
                out[f"mean{key}"], out[f"logvar{key}"] = as_plain(output[0]), as_plain(output[1])
    return out


def collect_loss_loglik(inputs: Inputs, loss_loglik: Callable) -> dict:
    """Values of the student's loss_loglik on the secret cases, and its gradients."""
    out = {"cases": []}
    for y_mean, y_logvar, x in loglik_cases(inputs):
        m, lv = y_mean.clone().requires_grad_(), y_logvar.clone().requires_grad_()
        value = call(loss_loglik, m, lv, x.clone())
        case = {"value": as_plain(value), "grads": None}
        if isinstance(value, torch.Tensor) and value.requires_grad and value.numel() == 1:
            grads = torch.autograd.grad(value.sum(), [m, lv], allow_unused=True)
            case["grads"] = [None if g is None else as_plain(g) for g in grads]
        out["cases"].append(case)
    return out


def collect_vae_learns(inputs: Inputs, Encoder: Callable, Decoder: Callable) -> dict:
    """Outputs on secret held-out images of a fresh Encoder(10) and Decoder(10), before and after a short run.

    After the run it also keeps the decoder's y_logvar for huge secret codes, where a missing floor shows.
    """
    train_index, _ = brief_subsets(inputs)
    noisy_test = brief_test_images(inputs)
    eps = torch.randn(len(noisy_test), N_COMPONENTS, generator=inputs.generator("brief test eps"))
    pair = nn.ModuleList([construct(Encoder, N_COMPONENTS, seed=inputs.torch_seed("brief encoder init")),
                          construct(Decoder, N_COMPONENTS, seed=inputs.torch_seed("brief decoder init"))])
    before = vae_outputs(pair[0], pair[1], noisy_test, eps)
    draws = inputs.generator("brief train draws")

    def monte_carlo_objective(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        """log q(z|x) - log p(z) - log p(x|z) at one re-parameterised z, for a fresh varianceMNIST draw of `batch`."""
        noisy = variance_mnist(batch.cpu(), generator=draws).to(batch.device)
        z_mean, z_logvar = pair_of(model[0](noisy), "Encoder.forward")
        q = Normal(z_mean, torch.exp(0.5 * z_logvar), validate_args=False)
        z = z_mean + q.scale * torch.randn(z_mean.shape, generator=draws).to(batch.device)
        prior = Normal(torch.zeros_like(z), torch.ones_like(z), validate_args=False)
        y_mean, y_logvar = pair_of(model[1](z), "Decoder.forward")
        likelihood = Normal(y_mean, torch.exp(0.5 * y_logvar), validate_args=False)
        per_image = (q.log_prob(z) - prior.log_prob(z)).sum(dim=1) - likelihood.log_prob(noisy).flatten(1).sum(dim=1)
        return per_image.mean()

    train_briefly(pair, split("train")[0][train_index], steps=BRIEF_STEPS, loss_of=monte_carlo_objective,
                  batch_size=BRIEF_BATCH, seed=inputs.torch_seed("brief order"))
    huge = HUGE_CODE_SCALE * torch.randn(HUGE_CODES, N_COMPONENTS, generator=inputs.generator("brief huge codes"))
    with torch.no_grad():
        huge_logvar = pair_of(call(pair[1], huge), "Decoder.forward")[1]
    return {"before": before, "after": vae_outputs(pair[0], pair[1], noisy_test, eps),
            "after_huge_logvar": as_plain(huge_logvar)}


def collect_vae_trained(inputs: Inputs, Encoder: Callable, Decoder: Callable) -> dict:
    """Outputs of the submitted Gaussian VAE on secret varianceMNIST draws of held-out images."""
    encoder = load_submitted(construct(Encoder, N_COMPONENTS), ENCODER_FILE)
    decoder = load_submitted(construct(Decoder, N_COMPONENTS), DECODER_FILE)
    _, noisy = trained_test_set(inputs)
    eps = torch.randn(len(noisy), N_COMPONENTS, generator=inputs.generator("trained eps"))
    return vae_outputs(encoder, decoder, noisy, eps, decode_means=True)


def collect_vae_codes(inputs: Inputs, Encoder: Callable) -> dict:
    """Code means of secret varianceMNIST draws of training and held-out images from the submitted encoder."""
    encoder = load_submitted(construct(Encoder, N_COMPONENTS), ENCODER_FILE)
    train_images, test_images = classifier_images(inputs)
    return {"train_codes": as_plain(code_means(encoder, train_images)),
            "test_codes": as_plain(code_means(encoder, test_images))}


def collect_loss_bce(inputs: Inputs, loss_bce: Callable) -> dict:
    """Values of the student's loss_bce on the secret cases, and its gradients with respect to x_rec."""
    out = {"cases": []}
    for x_rec, x in bce_cases(inputs):
        p = x_rec.clone().requires_grad_()
        value = call(loss_bce, p, x.clone())
        case = {"value": as_plain(value), "grad": None}
        if isinstance(value, torch.Tensor) and value.requires_grad and value.numel() == 1:
            (grad,) = torch.autograd.grad(value.sum(), [p], allow_unused=True)
            case["grad"] = None if grad is None else as_plain(grad)
        out["cases"].append(case)
    return out


def collect_bernoulli_vae(inputs: Inputs, BernoulliVAE: Callable) -> dict:
    """Layer shapes, parameter count and outputs of fresh BernoulliVAE() and BernoulliVAE(2)."""
    generator = inputs.generator("bernoulli inputs")
    model = construct(BernoulliVAE, seed=inputs.torch_seed("bernoulli init"))
    out = {"layers": sorted(tuple(m.weight.shape) for m in model.modules() if isinstance(m, nn.Linear)),
           "parameters": sum(p.numel() for p in model.parameters())}
    for n, instance in ((N_COMPONENTS, model), (2, construct(BernoulliVAE, 2, seed=inputs.torch_seed("bernoulli init")))):
        x = torch.rand(5, *IMAGE, generator=generator)
        with torch.no_grad():
            encoded = call(instance.encode, x)
            decoded = call(instance.decode, 3 * torch.randn(5, n, generator=generator))
            forward = call(instance, x)
        out[f"encoded{n}"] = [as_plain(v) for v in encoded] if isinstance(encoded, tuple) else type(encoded).__name__
        out[f"decoded{n}"] = as_plain(decoded)
        out[f"forward{n}"] = [as_plain(v) for v in forward] if isinstance(forward, tuple) else type(forward).__name__
    # A 40 times brighter image gives log-variances of 1 to 4 in size, where a wrong scale of eps shows.
    images = torch.cat([split("test")[0][:1], 40 * split("test")[0][1:2]])
    out["sampled"] = sampled_codes(model, "decode", images, train=True)
    return out


def collect_bernoulli_trained(inputs: Inputs, BernoulliVAE: Callable) -> dict:
    """Held-out images decoded from their code means by the submitted Bernoulli VAE."""
    model = load_submitted(construct(BernoulliVAE), BERNOULLI_FILE)
    images = split("test")[0]
    with torch.no_grad():
        reconstructions = [call(model.decode, pair_of(call(model.encode, images[i:i + OUTPUT_BATCH]),
                                                      "BernoulliVAE.encode")[0])
                           for i in range(0, len(images), OUTPUT_BATCH)]
    if not all(isinstance(r, torch.Tensor) for r in reconstructions):
        return {"reconstructions": type(next(r for r in reconstructions if not isinstance(r, torch.Tensor))).__name__}
    return {"reconstructions": as_plain(torch.cat(reconstructions)), **prior_samples(model.decode, N_COMPONENTS)}
