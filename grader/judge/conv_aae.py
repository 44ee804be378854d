"""Judges of notebook 5_conv_aae (convolutional autoencoder, convolutional VAE, adversarial autoencoder).

They run in the TA's process. Each judge rebuilds the secret inputs (held-out images, logits handed to
the GAN losses) with the helpers of `grader.collect.conv_aae` and reads only the student's outputs from
what the kernel collected; every figure (MSE, negative ELBO, code statistics, MMD against prior samples
drawn here, accuracies) and every reference formula lives here, never in the kernel.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from aelib.evaluation import mse_per_pixel
from grader.collect import conv_aae as collect
from grader.collect.common import Inputs, split
from grader.judge.common import (agrees, close, describe, in_range, require_reparameterised, require_scalar,
                                 require_tensor, show_and_measure)
from grader.judge.pictures import (code_panel, image_rows, maps, reference_panels, reference_reconstructions,
                                   reference_row, sample_rows)
from grader.checks import check
from grader.judge.results import measure, number, show
from grader.reference import CONV_AAE as FIGURES

IMAGE = collect.IMAGE
MMD_BANDWIDTHS = (0.5, 1.0, 2.0, 4.0)
MMD_CODES = 2000  # held-out codes (and as many prior samples) in the MMD, the number the threshold was measured on


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


def mmd(codes: torch.Tensor, samples: torch.Tensor, bandwidths: tuple[float, ...] = MMD_BANDWIDTHS) -> float:
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


def prior_samples(inputs: Inputs, count: int, dims: int) -> torch.Tensor:
    """Samples of the prior N(0, I), drawn in the TA's process from a stream of the secret seed."""
    return torch.randn(count, dims, generator=inputs.generator("prior samples"))


def code_statistics(codes: torch.Tensor, inputs: Inputs) -> dict:
    """Per-dimension means and variances of all codes, and the MMD of a secret subset of them against prior samples."""
    codes = codes.double()
    chosen = codes[inputs.subset(len(codes), min(MMD_CODES, len(codes)), "mmd subset")]
    return {"means": codes.mean(dim=0), "variances": codes.var(dim=0),
            "mmd": mmd(chosen, prior_samples(inputs, len(chosen), codes.shape[1]))}


# --- which layers a model really applies ---------------------------------------------------------

def require_calls(calls: Any, what: str) -> list[dict]:
    """The layer trace collected for `what`, checked to be a list of well-formed records."""
    keys = {"kind": str, "conv2d": bool, "transposed": bool, "weights": bool, "index": int}
    assert isinstance(calls, list) and all(
        isinstance(call, dict) and all(isinstance(call.get(key), kind) for key, kind in keys.items())
        for call in calls), f"The layers {what} applies were not collected in the expected form."
    return calls


def judge_convolutional(calls: Any, what: str) -> None:
    """The first layer with weights applied to the images is an nn.Conv2d, and at least two Conv2d layers run."""
    calls = require_calls(calls, what)
    weighted = [call for call in calls if call["weights"]]
    assert weighted, f"{what} applies no layer with weights (nn.Conv2d, nn.Linear, ...) to the images."
    first = weighted[0]
    shape = first.get("input_shape")
    assert first["conv2d"], (
        f"The first layer with weights that {what} applies to the images is a {first['kind']} "
        f"(input shape {describe(shape)}), not an nn.Conv2d: a convolutional encoder starts with convolutions "
        "on the (B, 1, 28, 28) images, and flattens only after them.")
    assert isinstance(shape, (tuple, list)) and len(shape) == 4, (
        f"The first nn.Conv2d of {what} receives a tensor of shape {describe(shape)}; it should get the "
        "images as (B, 1, 28, 28).")
    convolutions = {call["index"] for call in calls if call["conv2d"]}
    assert len(convolutions) >= 2, (
        f"{what} applies {len(convolutions)} nn.Conv2d layer(s) to the images; use at least two (for example "
        "two stride-2 convolutions, 28 -> 14 -> 7).")


# --- ConvEncoder and ConvDecoder -----------------------------------------------------------------

@check("test_conv_encoder_decoder", collect.collect_conv_encoder_decoder)
def judge_conv_encoder_decoder(out: dict, inputs: Inputs) -> None:
    """Shapes, the output range, and convolutions really applied in the encoder and the decoder."""
    for n in (2, collect.AE_COMPONENTS):
        assert out.get(f"modules{n}") is True, "ConvEncoder and ConvDecoder should be subclasses of nn.Module."
        for batch in collect.SHAPE_BATCHES:
            require_tensor(out.get(f"codes{n}_{batch}"), f"ConvEncoder({n}) output for a batch of {batch}", (batch, n))
            images = require_tensor(out.get(f"images{n}_{batch}"), f"ConvDecoder({n}) output for a batch of {batch}",
                                    (batch, *IMAGE))
            assert in_range(images, f"ConvDecoder({n}) outputs", 0, 1), (
                f"ConvDecoder({n}) should return pixel values in [0, 1]: end it with a sigmoid.")
            judge_convolutional(out.get(f"encoder_calls{n}_{batch}"), f"ConvEncoder({n})")
            decoder_calls = require_calls(out.get(f"decoder_calls{n}_{batch}"), f"ConvDecoder({n})")
            assert any(call["conv2d"] or call["transposed"] for call in decoder_calls), (
                f"ConvDecoder({n}) applies no convolution: after the linear layer, use nn.ConvTranspose2d layers "
                "(or nn.Upsample followed by nn.Conv2d) to grow the feature maps to 28 x 28.")


@check("test_conv_ae_learns", collect.collect_conv_ae_learns, figures=("brief_training_mse",), trains=True)
def judge_conv_ae_learns(out: dict, inputs: Inputs) -> None:
    """A short training run from scratch brings the held-out MSE well below the mean image's."""
    images = split("test")[0][collect.brief_subsets(inputs)[1]]
    before = mse_per_pixel(require_tensor(out.get("before"), "reconstructions of a fresh ConvEncoder(10) + "
                                          "ConvDecoder(10)", tuple(images.shape)), images)
    after = mse_per_pixel(require_tensor(out.get("after"), "reconstructions after a short training run",
                                         tuple(images.shape)), images)
    measure(FIGURES["brief_training_mse"], after, f"A fresh ConvEncoder(10) and ConvDecoder(10), trained for "
            f"{collect.BRIEF_STEPS} Adam steps (lr 1e-3, batches of 64, MSE loss),", "test MSE",
            context=f" (from {number(before)} before training; the mean image: 0.067)",
            close="Check that the decoder uses its codes, that every layer gets gradients and that nothing squashes "
                  "the codes.")


@check("test_conv_ae_trained", collect.collect_conv_ae_trained, figures=("ae10_mse",), pictured=True)
def judge_conv_ae_trained(out: dict, inputs: Inputs) -> None:
    """The trained convolutional autoencoder beats the fully connected one of notebook 1 on held-out images."""
    images = split("test")[0]
    reconstructions = require_tensor(out.get("reconstructions"), "reconstructions of the test images",
                                     tuple(images.shape))
    show_and_measure(image_rows([("test images", images), ("your conv autoencoder", reconstructions),
                                 *reference_reconstructions(reconstructions)]),
                     FIGURES["ae10_mse"], mse_per_pixel(reconstructions, images), "Your convolutional autoencoder",
                     "per-pixel test MSE",
                     context=" (the threshold is what the fully connected 10-D autoencoder of notebook 1 reaches)",
                     close=f"Train it for the 15 epochs, then save and submit {collect.AE_FILE} again.")


# --- ConvVAE -------------------------------------------------------------------------------------

@check("test_conv_vae", collect.collect_conv_vae)
def judge_conv_vae(out: dict, inputs: Inputs) -> None:
    """forward returns (x_rec, z_mean, z_logvar) with a fresh sample per call; convolutions; self.decoder decodes."""
    batch = collect.VAE_BATCH
    for n in (2, collect.VAE_COMPONENTS):
        assert out.get(f"module{n}") is True, "ConvVAE should be a subclass of nn.Module."
        for mode in ("train", "eval"):
            first, second = out.get(f"first{n}_{mode}"), out.get(f"second{n}_{mode}")
            for output in (first, second):
                assert isinstance(output, list) and len(output) == 3, (
                    f"ConvVAE({n}).forward should return a tuple (x_rec, z_mean, z_logvar), got {describe(output)}.")
            shapes = ((batch, *IMAGE), (batch, n), (batch, n))
            for output in (first, second):
                for value, name, shape in zip(output, ("x_rec", "z_mean", "z_logvar"), shapes):
                    require_tensor(value, f"{name} of ConvVAE({n})", shape)
            x_rec = first[0]
            assert in_range(x_rec, f"x_rec of ConvVAE({n})", 0, 1), (
                f"x_rec of ConvVAE({n}) should hold pixel probabilities in [0, 1]: end the decoder with a sigmoid.")
            assert agrees(torch.stack([first[1], first[2]]), torch.stack([second[1], second[2]]),
                          f"z_mean and z_logvar of ConvVAE({n}) for the same images twice", atol=1e-6,
                          target="each other"), (
                f"ConvVAE({n}) returned different z_mean or z_logvar for the same images: the encoder's outputs "
                "should not be random (only z, drawn from them, is).")
            assert not torch.equal(first[0], second[0]), (
                f"ConvVAE({n}) in {mode} mode returned the same x_rec twice for the same images: forward should "
                "decode a code sampled as z_mean + exp(z_logvar / 2) * eps with a new eps ~ N(0, I) on every call.")
        judge_convolutional(out.get(f"calls{n}"), f"ConvVAE({n})")
        assert out.get(f"has_decoder{n}") is True, (
            f"ConvVAE({n}) should keep its decoder (a ConvDecoder({n})) as the attribute self.decoder.")
        require_tensor(out.get(f"decoded{n}"), f"ConvVAE({n}).decoder applied to codes of shape (3, {n})", (3, *IMAGE))
        require_reparameterised(out.get(f"sampled{n}"), f"ConvVAE({n})", "self.decoder")


@check("test_conv_vae_trained", collect.collect_conv_vae_trained, figures=("vae_test_elbo",), pictured=True)
def judge_conv_vae_trained(out: dict, inputs: Inputs) -> None:
    """The trained convolutional VAE has a low negative ELBO on held-out images."""
    images = split("test")[0]
    x_rec = require_tensor(out.get("x_rec"), "x_rec of the test images", tuple(images.shape))
    z_mean = require_tensor(out.get("z_mean"), "z_mean of the test images", (len(images), collect.VAE_COMPONENTS))
    z_logvar = require_tensor(out.get("z_logvar"), "z_logvar of the test images",
                              (len(images), collect.VAE_COMPONENTS))
    show(image_rows([("test images", images), ("your ConvVAE's x_rec", x_rec),
                     *reference_row("x_rec", x_rec, "its x_rec of the same test images"),
                     *sample_rows(out.get("samples"))]))  # before the range check: its failure is then visible
    assert in_range(x_rec, "x_rec of the test images", 0, 1), (
        "x_rec of your trained ConvVAE should hold pixel probabilities in [0, 1]: end the decoder with a sigmoid.")
    measure(FIGURES["vae_test_elbo"], float(negative_elbo(x_rec, images, z_mean, z_logvar).mean()),
            "Your trained ConvVAE, on held-out images,", "negative ELBO (BCE summed over pixels plus KL, nats)",
            close=f"Check vae_loss, train for the 15 epochs, then save and submit {collect.VAE_FILE} again.")


# --- Discriminator -------------------------------------------------------------------------------

@check("test_discriminator", collect.collect_discriminator, figures=("discriminator_accuracy",))
def judge_discriminator(out: dict, inputs: Inputs) -> None:
    """Logits of shape (B, 1), not squashed into probabilities, that separate the prior from shifted codes."""
    for n in (2, collect.AAE_COMPONENTS):
        assert out.get(f"module{n}") is True, "Discriminator should be a subclass of nn.Module."
        for batch in collect.DISCRIMINATOR_BATCHES:
            require_tensor(out.get(f"logits{n}_{batch}"), f"Discriminator({n}) output for a batch of {batch}",
                           (batch, 1))
    count = collect.DISCRIMINATOR_TEST_POINTS
    prior = require_tensor(out.get("prior_logits"), "logits of prior samples", (count, 1))
    codes = require_tensor(out.get("code_logits"), "logits of codes", (count, 1))
    both = torch.cat([prior, codes])
    assert not (both.min() >= 0 and both.max() <= 1), (
        "After training, all your discriminator's outputs lie in [0, 1]: return logits (real numbers), with no "
        "sigmoid at the end; the losses apply the sigmoid themselves.")
    accuracy = 0.5 * (float((prior > 0).double().mean()) + float((codes < 0).double().mean()))
    measure(FIGURES["discriminator_accuracy"], accuracy, f"Trained for {collect.DISCRIMINATOR_STEPS} Adam steps to "
            f"tell N(0, I) from N(1, 0.25 I) in {collect.AAE_COMPONENTS} dimensions, your "
            f"Discriminator({collect.AAE_COMPONENTS})", "accuracy on new points (by the sign of its logits)", digits=3,
            close="Use a few hidden layers with nonlinearities and end with a linear layer with one output.")


# --- the GAN losses ------------------------------------------------------------------------------

def loss_value(value: Any, what: str, case: str) -> float:
    """The float of a loss's scalar output; an infinite value fails with the hint about large logits."""
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not bool(torch.isfinite(value).all()):
        raise AssertionError(
            f"{what} returned {float(value.reshape(()).real)} for {case}: with large logits the sigmoid rounds to 0 "
            "or 1 and its logarithm is infinite. Work with the logits (F.binary_cross_entropy_with_logits or "
            "F.softplus).")
    return require_scalar(value, what, "average over the batch")


def require_cases(out: dict, count: int, what: str) -> list[dict]:
    """The collected cases of a loss, checked to be `count` records."""
    cases = out.get("cases")
    assert isinstance(cases, list) and len(cases) == count and all(isinstance(case, dict) for case in cases), (
        f"The results collected for {what} are incomplete.")
    return cases


def discriminator_hint(value: float, prior: torch.Tensor, codes: torch.Tensor) -> str:
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
            if close(value, float(option), rtol=1e-3):
                return hint
    return "check the formula softplus(-prior logits).mean() + softplus(code logits).mean()"


def generator_hint(value: float, codes: torch.Tensor) -> str:
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
        if close(value, float(option), rtol=1e-3):
            return hint
    return "check the formula softplus(-code logits).mean()"


def judge_gradients(case: dict, expected: list[torch.Tensor], what: str, name: str) -> None:
    """The collected gradients of a loss with respect to its logits match `expected`."""
    grads = case.get("grads")
    assert isinstance(grads, list) and len(grads) == len(expected) and all(g is not None for g in grads), (
        f"{what} should be differentiable with respect to the logits: use torch operations, without detach or .item().")
    for grad, target in zip(grads, expected):
        right = (isinstance(grad, torch.Tensor) and grad.is_floating_point() and grad.shape == target.shape
                 and bool(torch.isfinite(grad).all())
                 and agrees(grad, target, f"The gradients of {what}", rtol=1e-3, atol=1e-6, target="the closed form"))
        assert right, (
            f"The gradient of {what} with respect to the logits is wrong or not finite for {name}: compute "
            "it from the logits with a stable function (F.binary_cross_entropy_with_logits, F.softplus, F.logsigmoid).")


def large_logits_hint(hint: str, name: str) -> str:
    """The hint for a loss that is right for ordinary logits but wrong for very large ones."""
    if name.startswith("logits of") and hint.startswith("check"):
        return ("correct for ordinary logits but not for very large ones: computing with probabilities (sigmoid, "
                "then a log or F.binary_cross_entropy, which clips log 0 to -100) loses them. Work with the logits "
                "(F.binary_cross_entropy_with_logits or F.softplus)")
    return hint


def ordering_values(out: dict, what: str) -> dict[str, float]:
    """The loss's values on the constant ordered logits, checked to be scalars."""
    ordering = out.get("ordering")
    assert isinstance(ordering, dict) and set(ordering) == set(collect.ORDERING), (
        f"The results collected for {what} are incomplete.")
    return {name: require_scalar(ordering[name], what, "average over the batch") for name in collect.ORDERING}


@check("test_discriminator_loss", collect.collect_discriminator_loss)
def judge_discriminator_loss(out: dict, inputs: Inputs) -> None:
    """discriminator_loss = BCE(prior, 1) + BCE(codes, 0) on logits, stable, lower when D separates the two."""
    order = ordering_values(out, "discriminator_loss")
    assert order["separates"] < order["unsure"] < order["fooled"], (
        "A discriminator that gives prior samples large logits and codes small ones should have a lower "
        f"discriminator_loss than an unsure one, and a fooled one a higher loss; got {order['separates']:.3f}, "
        f"{order['unsure']:.3f} and {order['fooled']:.3f}: are the labels swapped? Prior samples are real (label 1), "
        "codes fake (label 0).")
    cases = collect.loss_cases(inputs)
    for (name, prior, codes), case in zip(cases, require_cases(out, len(cases), "discriminator_loss")):
        value = loss_value(case.get("value"), "discriminator_loss", name)
        expected = float(discriminator_loss_formula(prior, codes))
        if not agrees(value, expected, "discriminator_loss on the hidden logits", rtol=1e-4, atol=1e-5,
                      target="BCE(prior, 1) + BCE(codes, 0)"):
            hint = large_logits_hint(discriminator_hint(value, prior, codes), name)
            raise AssertionError(
                f"discriminator_loss for {name} (prior logits {[round(v, 3) for v in prior.flatten().tolist()]}, code "
                f"logits {[round(v, 3) for v in codes.flatten().tolist()]}) returned {value:.5f}, expected "
                f"{expected:.5f}: {hint}.")
        p, c = prior.double(), codes.double()
        judge_gradients(case, [-torch.sigmoid(-p) / len(p), torch.sigmoid(c) / len(c)], "discriminator_loss", name)


@check("test_generator_loss", collect.collect_generator_loss)
def judge_generator_loss(out: dict, inputs: Inputs) -> None:
    """generator_loss = BCE(codes, 1) on logits, stable, falling as the discriminator is fooled."""
    order = ordering_values(out, "generator_loss")
    assert order["fooled"] < order["unsure"] < order["separates"], (
        "generator_loss should fall as the discriminator takes the codes for prior samples (larger code logits); "
        f"for code logits -3, 0 and 3 it returned {order['separates']:.3f}, {order['unsure']:.3f} and "
        f"{order['fooled']:.3f}.")
    cases = collect.loss_cases(inputs)
    for (name, _, codes), case in zip(cases, require_cases(out, len(cases), "generator_loss")):
        value = loss_value(case.get("value"), "generator_loss", name)
        expected = float(generator_loss_formula(codes))
        if not agrees(value, expected, "generator_loss on the hidden logits", rtol=1e-4, atol=1e-5,
                      target="BCE(codes, 1)"):
            hint = large_logits_hint(generator_hint(value, codes), name)
            raise AssertionError(
                f"generator_loss for {name} (code logits {[round(v, 3) for v in codes.flatten().tolist()]}) "
                f"returned {value:.5f}, expected {expected:.5f}: {hint}.")
        c = codes.double()
        judge_gradients(case, [-torch.sigmoid(-c) / len(c)], "generator_loss", name)


# --- the trained adversarial autoencoder ---------------------------------------------------------

def judge_aae_codes(codes: torch.Tensor, inputs: Inputs) -> None:
    """The codes match the prior N(0, I): per-dimension means and variances, and a kernel two-sample statistic."""
    stats = code_statistics(codes, inputs)
    subject = "The codes of your adversarial autoencoder for held-out images"
    measure(FIGURES["aae_abs_mean"], float(stats["means"].abs().max()), subject,
            "largest mean of a dimension, in absolute value", digits=2, context=" (the prior's means are 0)",
            close="Check the generator phase (it updates the encoder to fool the discriminator) and train longer.")
    phases = "Check the discriminator and generator phases and train longer."
    measure(FIGURES["aae_min_variance"], float(stats["variances"].min()), subject, "smallest variance of a "
            "dimension", digits=2, context=" (the prior's variances are 1)", close=phases)
    measure(FIGURES["aae_max_variance"], float(stats["variances"].max()), subject, "largest variance of a "
            "dimension", digits=2, context=" (the prior's variances are 1)", close=phases)
    measure(FIGURES["aae_mmd"], stats["mmd"], subject, "MMD against samples of N(0, I)", digits=3,
            context=" (a plain autoencoder's codes: above 2)", close="Check the adversarial phases and train longer.")


@check("test_aae_trained", collect.collect_aae_trained,
       figures=("aae_abs_mean", "aae_max_variance", "aae_min_variance", "aae_mmd", "aae_mse"), pictured=True)
def judge_aae_trained(out: dict, inputs: Inputs) -> None:
    """The adversarial autoencoder's codes follow the prior and it still reconstructs held-out images."""
    images = split("test")[0]
    codes = require_tensor(out.get("codes"), "codes of the test images", (len(images), collect.AAE_COMPONENTS))
    reconstructions = require_tensor(out.get("reconstructions"), "reconstructions of the test images",
                                     tuple(images.shape))
    show(image_rows([("test images", images), ("your AAE", reconstructions),
                     *reference_reconstructions(reconstructions)]))
    labels = split("test")[1]
    show(maps([code_panel(codes, labels, "your AAE's test codes (first two principal components)"),
               *reference_panels("codes", codes, labels, "a reference solution's AAE codes",
                                 "its codes of the same test images")]))
    judge_aae_codes(codes, inputs)
    measure(FIGURES["aae_mse"], mse_per_pixel(reconstructions, images), "Your adversarial autoencoder",
            "per-pixel test MSE", close=f"Keep the reconstruction phase in every step and train for the 15 epochs, "
                                        f"then save and submit {collect.AAE_FILE} again.")

