"""Hidden checks for notebook 5_conv_aae (convolutional autoencoder, convolutional VAE, adversarial autoencoder).

Checks that train or evaluate models use the grader's own losses (MSE, BCE, KL, GAN losses on
logits), never the student's `vae_loss`, `discriminator_loss` or `generator_loss`: a mistake in one
of those costs only the cell that tests it.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from grader.checks.common import (as_plain, construct, hidden_check, load_submitted, require_tensor,
                                  single_thread, split, train_briefly)
from grader.reference import CONV_AAE as FIGURES

AE_FILE, VAE_FILE, AAE_FILE = "5_conv_aae_ae.pth", "5_conv_aae_vae.pth", "5_conv_aae_aae.pth"
AE_COMPONENTS, VAE_COMPONENTS, AAE_COMPONENTS = 10, 10, 8
IMAGE = (1, 28, 28)
SAMPLE_SEED, PRIOR_SEED, DATA_SEED = 21, 22, 23
MMD_BANDWIDTHS = (0.5, 1.0, 2.0, 4.0)
BRIEF_STEPS, DISCRIMINATOR_STEPS = 400, 300
CLOSE_RTOL, CLOSE_ATOL = 1e-4, 1e-5


# --- the grader's own formulas -------------------------------------------------------------------

def bce_logits(logits: torch.Tensor, label: int) -> torch.Tensor:
    """Mean binary cross-entropy of logits for a constant label (float64, stable for any logit)."""
    logits = logits.double()
    return F.softplus(-logits).mean() if label == 1 else F.softplus(logits).mean()


def discriminator_loss_formula(prior: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """The course's discriminator loss: BCE(prior, 1) + BCE(codes, 0), each averaged over its batch."""
    return bce_logits(prior, 1) + bce_logits(codes, 0)


def generator_loss_formula(codes: torch.Tensor) -> torch.Tensor:
    """The non-saturating generator loss: BCE(codes, 1) averaged over the batch."""
    return bce_logits(codes, 1)


def negative_elbo(x_rec: torch.Tensor, x: torch.Tensor, z_mean: torch.Tensor, z_logvar: torch.Tensor) -> torch.Tensor:
    """Per-image BCE summed over pixels plus KL(q || N(0, I)) (float64, shape (B,))."""
    p, x = x_rec.double().clamp(1e-7, 1 - 1e-7), x.double()
    bce = -(x * p.log() + (1 - x) * (1 - p).log()).flatten(start_dim=1).sum(dim=1)
    mu, lv = z_mean.double(), z_logvar.double()
    return bce + (0.5 * (lv.exp() + mu ** 2 - 1 - lv)).sum(dim=1)


def mmd(codes: torch.Tensor, samples: torch.Tensor, bandwidths=MMD_BANDWIDTHS) -> float:
    """Unbiased squared maximum mean discrepancy with a sum of Gaussian kernels (widths scaled by sqrt(dims))."""
    a, b = codes.double(), samples.double()
    dims = a.shape[1]

    def kernel(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        squared = torch.cdist(x, y) ** 2
        return sum(torch.exp(-squared / (2 * h ** 2 * dims)) for h in bandwidths)

    def within(x: torch.Tensor) -> torch.Tensor:
        k = kernel(x, x)
        return (k.sum() - k.diagonal().sum()) / (len(x) * (len(x) - 1))

    return float(within(a) + within(b) - 2 * kernel(a, b).mean())


def prior_samples(n: int, dims: int) -> torch.Tensor:
    """The grader's fixed samples of the prior N(0, I)."""
    return torch.randn(n, dims, generator=torch.Generator().manual_seed(PRIOR_SEED))


def _close(value: float, expected: float, rtol: float = CLOSE_RTOL, atol: float = CLOSE_ATOL) -> bool:
    return abs(value - expected) <= atol + rtol * abs(expected)


def _call(function: Callable, *args):
    """Call a student's function, turning a stub into a failed check."""
    try:
        return function(*args)
    except NotImplementedError:
        raise AssertionError(f"{getattr(function, '__name__', 'This function')} is not implemented yet.") from None


def _scalar(value, what: str) -> float:
    """The float of a scalar tensor, or a failed check saying what the function returned."""
    assert isinstance(value, torch.Tensor), f"{what} should return a torch scalar tensor, got {value}."
    assert value.numel() == 1 and value.dim() == 0, (
        f"{what} should return a scalar (shape ()), got shape {tuple(value.shape)}: average over the batch.")
    return float(value.detach())


# --- which layers a model really applies ---------------------------------------------------------

def traced_call(model: nn.Module, *inputs) -> tuple[object, list[dict]]:
    """Call `model` and record, in order, every layer without sub-layers that it applies (kind, weights, input shape)."""
    calls: list[dict] = []
    handles = []
    for index, module in enumerate(model.modules()):
        if next(module.children(), None) is not None:
            continue

        def record(mod, args, index=index):
            shape = tuple(args[0].shape) if args and isinstance(args[0], torch.Tensor) else None
            calls.append({"kind": type(mod).__name__, "conv2d": isinstance(mod, nn.Conv2d),
                          "transposed": isinstance(mod, nn.ConvTranspose2d),
                          "weights": any(True for _ in mod.parameters(recurse=False)),
                          "input_shape": shape, "index": index})
        handles.append(module.register_forward_pre_hook(record))
    try:
        output = _call(model, *inputs)
    finally:
        for handle in handles:
            handle.remove()
    return output, calls


def judge_convolutional(calls: list[dict], what: str) -> None:
    """The first layer with weights applied to the images is an nn.Conv2d, and at least two Conv2d layers run."""
    weighted = [call for call in calls if call["weights"]]
    assert weighted, f"{what} applies no layer with weights (nn.Conv2d, nn.Linear, ...) to the images."
    first = weighted[0]
    assert first["conv2d"], (
        f"The first layer with weights that {what} applies to the images is a {first['kind']} "
        f"(input shape {first['input_shape']}), not an nn.Conv2d: a convolutional encoder starts with convolutions "
        "on the (B, 1, 28, 28) images, and flattens only after them.")
    assert first["input_shape"] is not None and len(first["input_shape"]) == 4, (
        f"The first nn.Conv2d of {what} receives a tensor of shape {first['input_shape']}; it should get the "
        "images as (B, 1, 28, 28).")
    convolutions = {call["index"] for call in calls if call["conv2d"]}
    assert len(convolutions) >= 2, (
        f"{what} applies {len(convolutions)} nn.Conv2d layer(s) to the images; use at least two (for example "
        "two stride-2 convolutions, 28 -> 14 -> 7).")


# --- ConvEncoder and ConvDecoder -----------------------------------------------------------------

def collect_conv_encoder_decoder(ConvEncoder: Callable, ConvDecoder: Callable) -> dict:
    """Outputs and applied layers of fresh encoders and decoders for two code sizes and two batch sizes."""
    generator = torch.Generator().manual_seed(DATA_SEED)
    out = {}
    for n in (2, AE_COMPONENTS):
        encoder, decoder = construct(ConvEncoder, n), construct(ConvDecoder, n, seed=1)
        out[f"modules{n}"] = isinstance(encoder, nn.Module) and isinstance(decoder, nn.Module)
        if not out[f"modules{n}"]:
            continue
        encoder.eval(), decoder.eval()  # batches of 1: batch normalisation must use its running statistics
        for batch in (1, 5):
            with torch.no_grad():
                codes, encoder_calls = traced_call(encoder, torch.rand(batch, *IMAGE, generator=generator))
                images, decoder_calls = traced_call(decoder, 3 * torch.randn(batch, n, generator=generator))
            out[f"codes{n}_{batch}"], out[f"images{n}_{batch}"] = as_plain(codes), as_plain(images)
            out[f"encoder_calls{n}_{batch}"], out[f"decoder_calls{n}_{batch}"] = encoder_calls, decoder_calls
    return out


def judge_conv_encoder_decoder(out: dict) -> None:
    """Shapes, the output range, and convolutions really applied in the encoder and the decoder."""
    for n in (2, AE_COMPONENTS):
        assert out[f"modules{n}"], "ConvEncoder and ConvDecoder should be subclasses of nn.Module."
        for batch in (1, 5):
            require_tensor(out[f"codes{n}_{batch}"], f"ConvEncoder({n}) output for a batch of {batch}", (batch, n))
            images = require_tensor(out[f"images{n}_{batch}"], f"ConvDecoder({n}) output for a batch of {batch}",
                                    (batch, *IMAGE))
            assert images.min() >= 0 and images.max() <= 1, (
                f"ConvDecoder({n}) should return pixel values in [0, 1]: end it with a sigmoid.")
            judge_convolutional(out[f"encoder_calls{n}_{batch}"], f"ConvEncoder({n})")
            decoder_calls = out[f"decoder_calls{n}_{batch}"]
            assert any(call["conv2d"] or call["transposed"] for call in decoder_calls), (
                f"ConvDecoder({n}) applies no convolution: after the linear layer, use nn.ConvTranspose2d layers "
                "(or nn.Upsample followed by nn.Conv2d) to grow the feature maps to 28 x 28.")


@hidden_check
def check_conv_encoder_decoder(ConvEncoder: Callable, ConvDecoder: Callable) -> None:
    """Hidden check of the convolutional encoder and decoder."""
    judge_conv_encoder_decoder(collect_conv_encoder_decoder(ConvEncoder, ConvDecoder))


def _test_mse(model: nn.Module, images: torch.Tensor) -> float:
    with torch.no_grad():
        reconstructions = torch.cat([model(images[i:i + 1000]) for i in range(0, len(images), 1000)])
    return float(((reconstructions.double() - images.double()) ** 2).mean())


def collect_conv_ae_learns(ConvEncoder: Callable, ConvDecoder: Callable) -> dict:
    """Test MSE of a fresh ConvEncoder(10) + ConvDecoder(10) before and after 200 Adam steps (one thread)."""
    with single_thread():
        train_images, _ = split("train")
        test_images, _ = split("test")
        test_images = test_images[:500]
        model = nn.Sequential(construct(ConvEncoder, AE_COMPONENTS), construct(ConvDecoder, AE_COMPONENTS, seed=1))
        before = _test_mse(model.eval(), test_images)
        train_briefly(model, train_images[:4000], steps=BRIEF_STEPS, loss_of=lambda m, batch: F.mse_loss(m(batch), batch))
        return {"before": before, "after": _test_mse(model, test_images)}


def judge_conv_ae_learns(out: dict) -> None:
    """A short training run from scratch brings the test MSE well below the mean image's."""
    figure = FIGURES["brief_training_mse"]
    after = out["after"]
    assert math.isfinite(after) and after < figure.threshold, (
        f"A fresh ConvEncoder(10) and ConvDecoder(10), trained for {BRIEF_STEPS} Adam steps (lr 1e-3, batches of 64, "
        f"MSE loss), reach a test MSE of {after:.4f} (from {out['before']:.4f}); a working architecture gets below "
        f"{figure.threshold:g} (a reference solution: about {figure.reference:g}, the mean image 0.067). Check that "
        "the decoder uses its codes, that every layer gets gradients and that nothing squashes the codes.")


@hidden_check
def check_conv_ae_learns(ConvEncoder: Callable, ConvDecoder: Callable) -> None:
    """Hidden check that the student's convolutional autoencoder learns in a short run."""
    judge_conv_ae_learns(collect_conv_ae_learns(ConvEncoder, ConvDecoder))


def collect_conv_ae_trained(ConvEncoder: Callable, ConvDecoder: Callable) -> dict:
    """Reconstructions of the test images by the submitted 10-D convolutional autoencoder."""
    model = nn.Sequential(construct(ConvEncoder, AE_COMPONENTS), construct(ConvDecoder, AE_COMPONENTS))
    load_submitted(model, AE_FILE)
    test_images, _ = split("test")
    with torch.no_grad():
        reconstructions = torch.cat([model(test_images[i:i + 1000]) for i in range(0, len(test_images), 1000)])
    return {"reconstructions": as_plain(reconstructions), "images": test_images}


def judge_conv_ae_trained(out: dict) -> None:
    """The trained convolutional autoencoder beats the fully connected one of notebook 1 on held-out images."""
    images = out["images"]
    reconstructions = require_tensor(out["reconstructions"], "reconstructions of the test images", tuple(images.shape))
    value = float(((reconstructions.double() - images.double()) ** 2).mean())
    figure = FIGURES["ae10_mse"]
    assert value < figure.threshold, (
        f"Your convolutional autoencoder reconstructs held-out images with a per-pixel MSE of {value:.4f}; it should "
        f"be below {figure.threshold:g}, what the fully connected 10-D autoencoder of notebook 1 reaches (a reference "
        f"solution: about {figure.reference:g}). Train it for the 15 epochs, then save and submit {AE_FILE} again.")


@hidden_check
def check_conv_ae_trained(ConvEncoder: Callable, ConvDecoder: Callable) -> None:
    """Hidden check of the submitted convolutional autoencoder."""
    judge_conv_ae_trained(collect_conv_ae_trained(ConvEncoder, ConvDecoder))


# --- ConvVAE -------------------------------------------------------------------------------------

def collect_conv_vae(ConvVAE: Callable) -> dict:
    """Outputs of fresh ConvVAE(2) and ConvVAE(10): two calls on the same images, applied layers, the decoder."""
    generator = torch.Generator().manual_seed(DATA_SEED)
    out = {}
    for n in (2, VAE_COMPONENTS):
        model = construct(ConvVAE, n)
        out[f"module{n}"] = isinstance(model, nn.Module)
        if not out[f"module{n}"]:
            continue
        x = torch.rand(6, *IMAGE, generator=generator)
        for mode in ("train", "eval"):
            model.train(mode == "train")
            with torch.no_grad():
                first, calls = traced_call(model, x)
                second = _call(model, x)
            out[f"calls{n}"] = calls
            for name, value in (("first", first), ("second", second)):
                key = f"{name}{n}_{mode}"
                out[key] = [as_plain(v) for v in value] if isinstance(value, tuple) else type(value).__name__
        decoder = getattr(model, "decoder", None)
        out[f"decoded{n}"] = "missing"
        if isinstance(decoder, nn.Module):
            with torch.no_grad():
                out[f"decoded{n}"] = as_plain(_call(decoder, torch.randn(3, n, generator=generator)))
    return out


def judge_conv_vae(out: dict) -> None:
    """forward returns (x_rec, z_mean, z_logvar) with a fresh sample per call; convolutions; self.decoder decodes."""
    for n in (2, VAE_COMPONENTS):
        assert out[f"module{n}"], "ConvVAE should be a subclass of nn.Module."
        for mode in ("train", "eval"):
            first, second = out[f"first{n}_{mode}"], out[f"second{n}_{mode}"]
            assert isinstance(first, list) and len(first) == 3, (
                f"ConvVAE({n}).forward should return a tuple (x_rec, z_mean, z_logvar), got {first}.")
            x_rec = require_tensor(first[0], f"x_rec of ConvVAE({n})", (6, *IMAGE))
            assert x_rec.min() >= 0 and x_rec.max() <= 1, (
                f"x_rec of ConvVAE({n}) should hold pixel probabilities in [0, 1]: end the decoder with a sigmoid.")
            require_tensor(first[1], f"z_mean of ConvVAE({n})", (6, n))
            require_tensor(first[2], f"z_logvar of ConvVAE({n})", (6, n))
            assert torch.allclose(first[1], second[1], atol=1e-6) and torch.allclose(first[2], second[2], atol=1e-6), (
                f"ConvVAE({n}) returned different z_mean or z_logvar for the same images: the encoder's outputs "
                "should not be random (only z, drawn from them, is).")
            assert not torch.equal(first[0], second[0]), (
                f"ConvVAE({n}) in {mode} mode returned the same x_rec twice for the same images: forward should "
                "decode a code sampled as z_mean + exp(z_logvar / 2) * eps with a new eps ~ N(0, I) on every call.")
        judge_convolutional(out[f"calls{n}"], f"ConvVAE({n})")
        decoded = out[f"decoded{n}"]
        assert not isinstance(decoded, str) or decoded != "missing", (
            f"ConvVAE({n}) should keep its decoder (a ConvDecoder({n})) as the attribute self.decoder.")
        require_tensor(decoded, f"ConvVAE({n}).decoder applied to codes of shape (3, {n})", (3, *IMAGE))


@hidden_check
def check_conv_vae(ConvVAE: Callable) -> None:
    """Hidden check of the convolutional VAE's interface."""
    judge_conv_vae(collect_conv_vae(ConvVAE))


def collect_conv_vae_trained(ConvVAE: Callable) -> dict:
    """Negative ELBO per test image of the submitted ConvVAE(10), one seeded sample per image."""
    model = load_submitted(construct(ConvVAE, VAE_COMPONENTS), VAE_FILE)
    test_images, _ = split("test")
    torch.manual_seed(SAMPLE_SEED)
    values = []
    with torch.no_grad():
        for start in range(0, len(test_images), 1000):
            batch = test_images[start:start + 1000]
            output = _call(model, batch)
            assert isinstance(output, tuple) and len(output) == 3, "ConvVAE.forward should return (x_rec, z_mean, z_logvar)."
            x_rec = require_tensor(output[0], "x_rec of the test images", tuple(batch.shape))
            z_mean = require_tensor(output[1], "z_mean of the test images", (len(batch), VAE_COMPONENTS))
            z_logvar = require_tensor(output[2], "z_logvar of the test images", (len(batch), VAE_COMPONENTS))
            values.append(negative_elbo(x_rec, batch, z_mean, z_logvar))
    return {"negative_elbo": as_plain(torch.cat(values)), "count": len(test_images)}


def judge_conv_vae_trained(out: dict) -> None:
    """The trained convolutional VAE has a low negative ELBO on held-out images."""
    values = require_tensor(out["negative_elbo"], "the negative ELBO of the test images", (out["count"],))
    value, figure = float(values.mean()), FIGURES["vae_test_elbo"]
    assert value < figure.threshold, (
        f"Your trained ConvVAE has a negative ELBO (BCE summed over pixels plus KL) of {value:.1f} nats per held-out "
        f"image; it should be below {figure.threshold:g} (a reference solution: about {figure.reference:g}). Check "
        f"vae_loss, train for the 15 epochs, then save and submit {VAE_FILE} again.")


@hidden_check
def check_conv_vae_trained(ConvVAE: Callable) -> None:
    """Hidden check of the submitted convolutional VAE."""
    judge_conv_vae_trained(collect_conv_vae_trained(ConvVAE))


# --- Discriminator -------------------------------------------------------------------------------

def _two_gaussians(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Prior samples N(0, I) and 'codes' from N(1, 0.5^2 I) in AAE_COMPONENTS dimensions."""
    prior = torch.randn(n, AAE_COMPONENTS, generator=generator)
    codes = 1.0 + 0.5 * torch.randn(n, AAE_COMPONENTS, generator=generator)
    return prior, codes


def collect_discriminator(Discriminator: Callable) -> dict:
    """Output shapes of fresh discriminators, and the logits of one trained for 300 steps with the grader's loss."""
    generator = torch.Generator().manual_seed(DATA_SEED)
    out = {}
    for n in (2, AAE_COMPONENTS):
        model = construct(Discriminator, n)
        out[f"module{n}"] = isinstance(model, nn.Module)
        if out[f"module{n}"]:
            model.eval()  # batches of 1: batch normalisation must use its running statistics
            for batch in (1, 6):
                with torch.no_grad():
                    out[f"logits{n}_{batch}"] = as_plain(_call(model, torch.randn(batch, n, generator=generator)))
    if not out[f"module{AAE_COMPONENTS}"]:
        return out
    with single_thread():
        model = construct(Discriminator, AAE_COMPONENTS)
        prior, codes = _two_gaussians(4000, generator)
        points = torch.cat([prior, codes])
        labels = torch.cat([torch.ones(len(prior), 1), torch.zeros(len(codes), 1)])
        data = torch.cat([points, labels], dim=1)

        def loss_of(m: nn.Module, batch: torch.Tensor) -> torch.Tensor:
            return F.binary_cross_entropy_with_logits(m(batch[:, :-1]), batch[:, -1:])

        train_briefly(model, data, steps=DISCRIMINATOR_STEPS, loss_of=loss_of, batch_size=128)
        test_prior, test_codes = _two_gaussians(2000, generator)
        with torch.no_grad():
            out["prior_logits"], out["code_logits"] = as_plain(model(test_prior)), as_plain(model(test_codes))
    return out


def judge_discriminator(out: dict) -> None:
    """Logits of shape (B, 1), not squashed into probabilities, that separate the prior from shifted codes."""
    for n in (2, AAE_COMPONENTS):
        assert out[f"module{n}"], "Discriminator should be a subclass of nn.Module."
        for batch in (1, 6):
            require_tensor(out[f"logits{n}_{batch}"], f"Discriminator({n}) output for a batch of {batch}", (batch, 1))
    prior = require_tensor(out["prior_logits"], "logits of prior samples", (2000, 1))
    codes = require_tensor(out["code_logits"], "logits of codes", (2000, 1))
    both = torch.cat([prior, codes])
    assert not (both.min() >= 0 and both.max() <= 1), (
        "After training, all your discriminator's outputs lie in [0, 1]: return logits (real numbers), with no "
        "sigmoid at the end; the losses apply the sigmoid themselves.")
    accuracy = 0.5 * (float((prior > 0).double().mean()) + float((codes < 0).double().mean()))
    figure = FIGURES["discriminator_accuracy"]
    assert accuracy > figure.threshold, (
        f"Trained for {DISCRIMINATOR_STEPS} Adam steps to tell N(0, I) from N(1, 0.25 I) in {AAE_COMPONENTS} "
        f"dimensions, your Discriminator({AAE_COMPONENTS}) classifies {accuracy:.3f} of new points correctly by the "
        f"sign of its logits; it should be above {figure.threshold:g} (a reference solution: about {figure.reference:g}). "
        "Use a few hidden layers with nonlinearities and end with a linear layer with one output.")


@hidden_check
def check_discriminator(Discriminator: Callable) -> None:
    """Hidden check of the discriminator."""
    judge_discriminator(collect_discriminator(Discriminator))


# --- the GAN losses ------------------------------------------------------------------------------

def _loss_cases() -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(name, prior logits, code logits): ordinary, equal-size, and very large logits."""
    generator = torch.Generator().manual_seed(DATA_SEED)
    return [
        ("random", 3 * torch.randn(6, 1, generator=generator), 3 * torch.randn(4, 1, generator=generator)),
        ("equal sizes", 2 * torch.randn(5, 1, generator=generator), 2 * torch.randn(5, 1, generator=generator) + 1),
        ("logits of +-100", torch.tensor([[100.0], [-100.0], [30.0]]), torch.tensor([[100.0], [-100.0]])),
        ("logits of +-1000", torch.tensor([[1000.0], [-1000.0]]), torch.tensor([[-1000.0], [1000.0], [0.5]])),
    ]


ORDERING = {"separates": (3.0, -3.0), "unsure": (0.0, 0.0), "fooled": (-3.0, 3.0)}


def _evaluate(function: Callable, *logits: torch.Tensor) -> dict:
    """The value of a student's loss on `logits` and its gradients with respect to them."""
    inputs = [x.clone().requires_grad_() for x in logits]
    value = _call(function, *inputs)
    grads = None
    if isinstance(value, torch.Tensor) and value.requires_grad and value.numel() == 1:
        grads = [None if g is None else as_plain(g)
                 for g in torch.autograd.grad(value.sum(), inputs, allow_unused=True)]
    return {"value": as_plain(value), "grads": grads}


def collect_discriminator_loss(discriminator_loss: Callable) -> dict:
    """Values and gradients of the student's discriminator_loss on fixed logits, and on an ordered series."""
    out = {"cases": [], "ordering": {}}
    for name, prior, codes in _loss_cases():
        out["cases"].append({"name": name, "prior": prior, "codes": codes, **_evaluate(discriminator_loss, prior, codes)})
    for name, (p, c) in ORDERING.items():
        out["ordering"][name] = as_plain(_call(discriminator_loss, torch.full((4, 1), p), torch.full((4, 1), c)))
    return out


def _discriminator_hint(value: float, prior: torch.Tensor, codes: torch.Tensor) -> str:
    """Name the likely mistake behind a wrong discriminator_loss value."""
    p, c = prior.double(), codes.double()
    sp = F.softplus
    candidates = {
        "the labels are swapped: prior samples are real (label 1), codes are fake (label 0)":
            sp(p).mean() + sp(-c).mean(),
        "you averaged the two terms (or one mean over all logits together); the notebook asks for their sum":
            [0.5 * (sp(-p).mean() + sp(c).mean()), (sp(-p).sum() + sp(c).sum()) / (len(p) + len(c))],
        "you summed over the batch: average each term over its batch":
            sp(-p).sum() + sp(c).sum(),
        "you applied a sigmoid before a loss that expects logits: BCE-with-logits applies the sigmoid itself":
            sp(-torch.sigmoid(p)).mean() + sp(torch.sigmoid(c)).mean(),
    }
    for hint, options in candidates.items():
        for option in options if isinstance(options, list) else [options]:
            if _close(value, float(option), rtol=1e-3):
                return hint
    return "check the formula softplus(-prior logits).mean() + softplus(code logits).mean()"


def _judge_gradients(case: dict, expected: list[torch.Tensor], what: str) -> None:
    grads = case["grads"]
    assert grads is not None and all(g is not None for g in grads), (
        f"{what} should be differentiable with respect to the logits: use torch operations, without detach or .item().")
    for grad, target in zip(grads, expected):
        assert torch.isfinite(grad).all() and torch.allclose(grad.double(), target, rtol=1e-3, atol=1e-6), (
            f"The gradient of {what} with respect to the logits is wrong or not finite for {case['name']}: compute "
            "it from the logits with a stable function (F.binary_cross_entropy_with_logits, F.softplus, F.logsigmoid).")


def judge_discriminator_loss(out: dict) -> None:
    """discriminator_loss = BCE(prior, 1) + BCE(codes, 0) on logits, stable, lower when D separates the two."""
    order = {name: _scalar(value, "discriminator_loss") for name, value in out["ordering"].items()}
    assert order["separates"] < order["unsure"] < order["fooled"], (
        "A discriminator that gives prior samples large logits and codes small ones should have a lower "
        f"discriminator_loss than an unsure one, and a fooled one a higher loss; got {order['separates']:.3f}, "
        f"{order['unsure']:.3f} and {order['fooled']:.3f}: are the labels swapped? Prior samples are real (label 1), "
        "codes fake (label 0).")
    for case in out["cases"]:
        prior, codes = case["prior"], case["codes"]
        value = _scalar(case["value"], "discriminator_loss")
        expected = float(discriminator_loss_formula(prior, codes))
        assert math.isfinite(value), (
            f"discriminator_loss returned {value} for {case['name']}: with large logits the sigmoid rounds to 0 or 1 "
            "and its logarithm is infinite. Work with the logits (F.binary_cross_entropy_with_logits or F.softplus).")
        if not _close(value, expected):
            hint = _discriminator_hint(value, prior, codes)
            if case["name"].startswith("logits of"):
                hint = ("correct for ordinary logits but not for very large ones: computing with probabilities "
                        "(sigmoid, then a log or F.binary_cross_entropy, which clips log 0 to -100) loses them. "
                        "Work with the logits (F.binary_cross_entropy_with_logits or F.softplus)")
            raise AssertionError(
                f"discriminator_loss for {case['name']} (prior logits {prior.flatten().tolist()}, code logits "
                f"{[round(v, 3) for v in codes.flatten().tolist()]}) returned {value:.5f}, expected {expected:.5f}: {hint}.")
        p, c = prior.double(), codes.double()
        _judge_gradients(case, [-torch.sigmoid(-p) / len(p), torch.sigmoid(c) / len(c)], "discriminator_loss")


@hidden_check
def check_discriminator_loss(discriminator_loss: Callable) -> None:
    """Hidden check of discriminator_loss against its formula."""
    judge_discriminator_loss(collect_discriminator_loss(discriminator_loss))


def collect_generator_loss(generator_loss: Callable) -> dict:
    """Values and gradients of the student's generator_loss on fixed code logits, and on an ordered series."""
    out = {"cases": [], "ordering": {}}
    for name, _, codes in _loss_cases():
        out["cases"].append({"name": name, "codes": codes, **_evaluate(generator_loss, codes)})
    for name, (_, c) in ORDERING.items():
        out["ordering"][name] = as_plain(_call(generator_loss, torch.full((4, 1), c)))
    return out


def _generator_hint(value: float, codes: torch.Tensor) -> str:
    """Name the likely mistake behind a wrong generator_loss value."""
    c = codes.double()
    candidates = {
        "this is the saturating minimax loss, minus the discriminator's loss on the codes; use the non-saturating "
        "loss BCE(codes, label 1)": -F.softplus(c).mean(),
        "you labelled the codes 0; the generator wants them taken for prior samples, label 1": F.softplus(c).mean(),
        "you summed over the batch: average over it": F.softplus(-c).sum(),
        "you applied a sigmoid before a loss that expects logits": F.softplus(-torch.sigmoid(c)).mean(),
    }
    for hint, option in candidates.items():
        if _close(value, float(option), rtol=1e-3):
            return hint
    return "check the formula softplus(-code logits).mean()"


def judge_generator_loss(out: dict) -> None:
    """generator_loss = BCE(codes, 1) on logits, stable, falling as the discriminator is fooled."""
    order = {name: _scalar(value, "generator_loss") for name, value in out["ordering"].items()}
    assert order["fooled"] < order["unsure"] < order["separates"], (
        "generator_loss should fall as the discriminator takes the codes for prior samples (larger code logits); "
        f"for code logits -3, 0 and 3 it returned {order['separates']:.3f}, {order['unsure']:.3f} and "
        f"{order['fooled']:.3f}.")
    for case in out["cases"]:
        codes = case["codes"]
        value = _scalar(case["value"], "generator_loss")
        expected = float(generator_loss_formula(codes))
        assert math.isfinite(value), (
            f"generator_loss returned {value} for {case['name']}: with large logits the sigmoid rounds to 0 or 1 and "
            "its logarithm is infinite. Work with the logits (F.binary_cross_entropy_with_logits or F.softplus).")
        if not _close(value, expected):
            hint = _generator_hint(value, codes)
            if case["name"].startswith("logits of") and hint.startswith("check"):
                hint = ("correct for ordinary logits but not for very large ones: computing with probabilities loses "
                        "them. Work with the logits (F.binary_cross_entropy_with_logits or F.softplus)")
            raise AssertionError(
                f"generator_loss for {case['name']} (code logits {[round(v, 3) for v in codes.flatten().tolist()]}) "
                f"returned {value:.5f}, expected {expected:.5f}: {hint}.")
        c = codes.double()
        _judge_gradients(case, [-torch.sigmoid(-c) / len(c)], "generator_loss")


@hidden_check
def check_generator_loss(generator_loss: Callable) -> None:
    """Hidden check of generator_loss against its formula."""
    judge_generator_loss(collect_generator_loss(generator_loss))


# --- the trained adversarial autoencoder ---------------------------------------------------------

def code_statistics(codes: torch.Tensor) -> dict:
    """Per-dimension means and variances of codes, and their MMD against the grader's prior samples."""
    codes = codes.double()
    return {"means": codes.mean(dim=0), "variances": codes.var(dim=0),
            "mmd": mmd(codes, prior_samples(len(codes), codes.shape[1]))}


def collect_aae_trained(ConvEncoder: Callable, ConvDecoder: Callable) -> dict:
    """Codes and reconstructions of the test images by the submitted adversarial autoencoder."""
    model = nn.Sequential(construct(ConvEncoder, AAE_COMPONENTS), construct(ConvDecoder, AAE_COMPONENTS))
    load_submitted(model, AAE_FILE)
    test_images, _ = split("test")
    with torch.no_grad():
        codes = torch.cat([model[0](test_images[i:i + 1000]) for i in range(0, len(test_images), 1000)])
        reconstructions = torch.cat([model[1](codes[i:i + 1000]) for i in range(0, len(codes), 1000)])
    return {"codes": as_plain(codes), "reconstructions": as_plain(reconstructions), "images": test_images}


def judge_aae_codes(codes: torch.Tensor) -> None:
    """The codes match the prior N(0, I): per-dimension means and variances, and a kernel two-sample statistic."""
    stats = code_statistics(codes)
    mean_figure, low, high = FIGURES["aae_abs_mean"], FIGURES["aae_min_variance"], FIGURES["aae_max_variance"]
    worst_mean = float(stats["means"].abs().max())
    assert worst_mean < mean_figure.threshold, (
        f"The codes of held-out images have a mean of {float(stats['means'][stats['means'].abs().argmax()]):.2f} in one "
        f"dimension; the prior has mean 0 and every dimension should be within {mean_figure.threshold:g} of it. "
        "Check the generator phase (it updates the encoder to fool the discriminator) and train longer.")
    variances = stats["variances"]
    assert float(variances.min()) > low.threshold and float(variances.max()) < high.threshold, (
        f"The codes of held-out images have variances from {float(variances.min()):.2f} to {float(variances.max()):.2f}; "
        f"the prior has variance 1 and every dimension should be between {low.threshold:g} and {high.threshold:g}. "
        "Check the discriminator and generator phases and train longer.")
    figure = FIGURES["aae_mmd"]
    assert stats["mmd"] < figure.threshold, (
        f"The codes of held-out images differ from samples of N(0, I) by an MMD of {stats['mmd']:.3f}; it should be "
        f"below {figure.threshold:g} (a reference solution: about {figure.reference:g}; a plain autoencoder's codes: "
        "above 2). Check the adversarial phases and train longer.")


def judge_aae_trained(out: dict) -> None:
    """The adversarial autoencoder's codes follow the prior and it still reconstructs held-out images."""
    images = out["images"]
    codes = require_tensor(out["codes"], "codes of the test images", (len(images), AAE_COMPONENTS))
    reconstructions = require_tensor(out["reconstructions"], "reconstructions of the test images", tuple(images.shape))
    judge_aae_codes(codes)
    value, figure = float(((reconstructions.double() - images.double()) ** 2).mean()), FIGURES["aae_mse"]
    assert value < figure.threshold, (
        f"Your adversarial autoencoder reconstructs held-out images with a per-pixel MSE of {value:.4f}; it should be "
        f"below {figure.threshold:g} (a reference solution: about {figure.reference:g}). Keep the reconstruction phase "
        f"in every step and train for the 15 epochs, then save and submit {AAE_FILE} again.")


@hidden_check
def check_aae_trained(ConvEncoder: Callable, ConvDecoder: Callable) -> None:
    """Hidden check of the submitted adversarial autoencoder."""
    judge_aae_trained(collect_aae_trained(ConvEncoder, ConvDecoder))
