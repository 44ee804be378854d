"""Judges of notebook 1_ae (bottleneck autoencoders), run in the TA's process on what the kernel collected."""
from __future__ import annotations

from typing import Callable

import torch

from aelib.evaluation import classifier_accuracy, mse_per_pixel
from grader.collect import ae as collect
from grader.collect.common import Inputs, split
from grader.judge.common import (COMPRESSION_LAYERS, COMPRESSION_PARAMETERS, agrees, describe, in_range,
                                 require_tensor, show_and_measure, within)
from grader.judge.pictures import code_panel, image_rows, maps, reference_panels, reference_reconstructions
from grader.checks import check
from grader.judge.results import measure, number
from grader.reference import AE as FIGURES



def _matches(images: torch.Tensor, pool: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each image, its nearest image in `pool` and the squared distance to it."""
    flat, pool_flat = images.reshape(len(images), -1).double(), pool.reshape(len(pool), -1).double()
    distances = (flat.pow(2).sum(1, keepdim=True) - 2 * flat @ pool_flat.T + pool_flat.pow(2).sum(1)).clamp_min(0)
    best, index = distances.min(dim=1)
    return index, best


@check("test_sample_train", collect.collect_sample_train)
def judge_sample_train(out: dict, inputs: Inputs) -> None:
    """sample_train returns N random training images (and their labels) of the right shapes."""
    train_images, train_labels = split("train")
    few = require_tensor(out["few"], "sample_train(5)", (5, 1, 28, 28))
    assert in_range(few, "The images of sample_train(5)", 0, 1), (
        "Images from sample_train should have values in [0, 1].")
    assert out["first_kind"] == "tuple" and "images" in out, (
        "sample_train(N, return_labels=True) should return a tuple (images, labels), "
        f"got {out['first_kind']}.")
    images = require_tensor(out["images"], "images of sample_train(200, return_labels=True)", (200, 1, 28, 28))
    labels = out["labels"]
    assert isinstance(labels, torch.Tensor) and tuple(labels.shape) == (200,), (
        f"labels of sample_train(200, return_labels=True) should be a tensor of shape (200,), got {describe(labels)}.")
    images2 = require_tensor(out["images2"], "images of a second sample_train(200, return_labels=True)",
                             (200, 1, 28, 28))
    assert not torch.equal(images, images2), "Two calls of sample_train gave the same images: draw at random."
    index, distance = _matches(images, train_images)
    assert within(distance, 1e-3, "The 200 images of sample_train", target="their nearest training images"), (
        f"{int((distance > 1e-3).sum())} of 200 images from sample_train are not images of the training set "
        "(x_train). Sample from the training split, with values scaled to [0, 1].")
    assert agrees(labels.long(), train_labels[index], "Their labels", target="the labels of those training images"), (
        "The labels from sample_train do not belong to the returned images: index images and labels with the "
        "same random indices.")


@check("test_encoder_decoder", collect.collect_encoder_decoder)
def judge_encoder_decoder(out: dict, inputs: Inputs) -> None:
    """Encoder maps (B,1,28,28) to (B,n); Decoder maps (B,n) to (B,1,28,28) in [0,1]."""
    for n in (2, 10):
        assert out[f"encoder{n}_modules"] is True, "Encoder and Decoder should be subclasses of nn.Module."
        for batch in (1, 7):
            require_tensor(out[f"z{n}_{batch}"], f"Encoder({n}) output for a batch of {batch}", (batch, n))
            y = require_tensor(out[f"y{n}_{batch}"], f"Decoder({n}) output for a batch of {batch}",
                               (batch, 1, 28, 28))
            assert in_range(y, f"Decoder({n}) outputs", 0, 1), (
                f"Decoder({n}) outputs should lie in [0, 1] like the images (got values from {y.min():.3g} "
                f"to {y.max():.3g}): end the decoder with a sigmoid.")


def builder_layers(size: int) -> dict[str, list[tuple[int, int]]]:
    """Weight shapes, in order, of make_encoder(size) and make_decoder(size)."""
    return {"encoder": [(100, 784), (size, 100)], "decoder": [(100, size), (784, 100)]}


def built_output(weights: object, x: torch.Tensor, last: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """What the prescribed two-layer builder computes with `weights`: last(W2 relu(W1 x + b1) + b2)."""
    assert isinstance(weights, list) and len(weights) == 2 and all(
        isinstance(t, torch.Tensor) for pair in weights for t in pair), "The builders' linear layers need biases."
    (w1, b1), (w2, b2) = [(w.double(), b.double()) for w, b in weights]
    return last(torch.relu(x.flatten(1).double() @ w1.T + b1) @ w2.T + b2)


@check("test_builders", collect.collect_builders)
def judge_builders(out: dict, inputs: Inputs) -> None:
    """make_encoder(DIM) computes tanh(W2 relu(W1 x + b1) + b2); make_decoder(DIM) sigmoid(...) reshaped to images."""
    for size in collect.BUILDER_SIZES:
        assert out.get(f"modules{size}") is True, "make_encoder and make_decoder should return nn.Module objects."
        for part, layers in builder_layers(size).items():
            assert out.get(f"{part}{size}_layers") == layers, (
                f"make_{part}({size}) should have the linear layers {' then '.join(f'{i}->{o}' for o, i in layers)} "
                f"(weight shapes {layers}), got {describe(out.get(f'{part}{size}_layers'))}.")
            parameters = sum(o * i + o for o, i in layers)
            assert out.get(f"{part}{size}_parameters") == parameters, (
                f"make_{part}({size}) should have {parameters} parameters, got {describe(out.get(f'{part}{size}_parameters'))}.")
        codes = require_tensor(out.get(f"codes{size}"), f"make_encoder({size}) output for 5 images", (5, size))
        saturated = require_tensor(out.get(f"saturated{size}"), f"make_encoder({size}) output for large inputs", (5, size))
        assert in_range(codes, f"make_encoder({size}) codes", -1, 1, strict=True) and in_range(
                saturated, f"make_encoder({size}) codes of large inputs", -1, 1), (
            f"The codes of make_encoder({size}) should lie in (-1, 1), got values up to "
            f"{max(codes.abs().max(), saturated.abs().max()):.3g}: end the encoder with nn.Tanh().")
        for x, got in ((collect.encoder_inputs(inputs, 5), codes), (collect.saturating_inputs(inputs), saturated)):
            assert agrees(got, built_output(out.get(f"encoder{size}_weights"), x, torch.tanh),
                          f"make_encoder({size}) on the hidden inputs", atol=1e-5), (
                f"make_encoder({size}) does not compute tanh(W2 relu(W1 x + b1) + b2) with its own layers: flatten, "
                "Linear(784, 100), ReLU, Linear(100, DIM), Tanh, in this order.")
        images = require_tensor(out.get(f"images{size}"), f"make_decoder({size}) output for 5 codes", (5, 1, 28, 28))
        assert in_range(images, f"make_decoder({size}) outputs", 0, 1), (
            f"make_decoder({size}) outputs should lie in [0, 1] (got {images.min():.3g} to {images.max():.3g}): "
            "end with a sigmoid before reshaping.")
        expected = built_output(out.get(f"decoder{size}_weights"), collect.builder_codes(inputs, size), torch.sigmoid)
        assert agrees(images.flatten(1), expected, f"make_decoder({size}) on the hidden codes", atol=1e-5), (
            f"make_decoder({size}) does not compute sigmoid(W2 relu(W1 z + b1) + b2) with its own layers: "
            "Linear(DIM, 100), ReLU, Linear(100, 784), sigmoid, then nn.Unflatten(1, (1, 28, 28)).")


@check("test_autoencoder", collect.collect_autoencoder, figures=("brief_training_mse",), trains=True)
def judge_autoencoder(out: dict, inputs: Inputs) -> None:
    """forward(x) returns (encoder(x), decoder(encoder(x))), and a short training run from scratch works."""
    assert out["has_submodules"] is True, "Autoencoder should have nn.Module attributes named encoder and decoder."
    assert out["length"] == 2, f"Autoencoder.forward should return a tuple (codes, reconstructions), got {out['kind']}."
    codes = require_tensor(out["codes"], "codes returned by Autoencoder(10)", (6, 10))
    reconstructions = require_tensor(out["reconstructions"], "reconstructions returned by Autoencoder(10)",
                                     (6, 1, 28, 28))
    assert agrees(codes, require_tensor(out["encoder_codes"], "self.encoder(x)", (6, 10)), "The codes of forward(x)",
                  atol=1e-5, target="self.encoder(x)"), "The codes should be self.encoder(x)."
    assert agrees(reconstructions, require_tensor(out["decoded"], "self.decoder(codes)", (6, 1, 28, 28)),
                  "The reconstructions of forward(x)", atol=1e-5, target="self.decoder(codes)"), (
        "The reconstructions should be self.decoder(codes).")
    _, test_index = collect.brief_subsets(inputs)
    images = split("test")[0][test_index]
    before = mse_per_pixel(require_tensor(out["before"], "reconstructions before training", tuple(images.shape)), images)
    after = mse_per_pixel(require_tensor(out["after"], "reconstructions after training", tuple(images.shape)), images)
    advice = "Check that the decoder uses the codes and that gradients reach every layer."
    measure(FIGURES["brief_training_mse"], after, f"Your Autoencoder(10), trained from scratch for "
            f"{collect.BRIEF_STEPS} Adam steps (lr 1e-3, batches of 64),", "test MSE",
            context=f" (from {number(before)} before training)", close=advice)
    assert after < 0.8 * before, (
        f"Your Autoencoder(10) barely learns: {collect.BRIEF_STEPS} Adam steps took its test MSE from {number(before)} "
        f"to {number(after)} (a working one loses at least a fifth). {advice}")


def judge_test_mse(reconstructions: object, figure: str, model: str) -> None:
    """Reconstructions of the held-out images reach the per-pixel MSE threshold of `figure`."""
    images = split("test")[0]
    reconstructions = require_tensor(reconstructions, "reconstructions of the test images", tuple(images.shape))
    rows = [("test images", images), (f"your {model}", reconstructions),
            *reference_reconstructions(reconstructions)]
    show_and_measure(image_rows(rows), FIGURES[figure],
                     mse_per_pixel(reconstructions, images), f"Your trained {model}", "per-pixel test MSE",
                     range_check=(reconstructions, "reconstructions", "end the decoder with a sigmoid"),
                     close="Train longer or with a larger network, then save and submit the checkpoints again.",
                     far="That is far from it: compare your architecture with the task's (layers, the sigmoid at the "
                         "end) and check the loss, train until the loss stops falling, then save and submit the "
                         "checkpoints again.")


@check("test_reconstruction", collect.collect_trained_codes, figures=("ae10_mse",), pictured=True)
def judge_reconstruction(out: dict, inputs: Inputs) -> None:
    """The trained 10-D autoencoder reconstructs held-out images with a low per-pixel MSE."""
    judge_test_mse(out["reconstructions"], "ae10_mse", "10-D autoencoder")


@check("test_classifier", collect.collect_trained_codes, figures=("ae10_accuracy",), trains=True, pictured=True)
def judge_classifier(out: dict, inputs: Inputs) -> None:
    """A logistic-regression classifier on the 10-D codes classifies held-out digits accurately."""
    train_labels = split("train")[1][collect.classifier_subset(inputs)]
    test_labels = split("test")[1]
    test_codes = require_tensor(out["test_codes"], "codes of the test images", (len(test_labels), 10))
    train_codes = require_tensor(out["train_codes"], "codes of the training images", (len(train_labels), 10))
    panels = [code_panel(test_codes, test_labels, "your 10-D test codes (first two principal components)"),
              *reference_panels("test_codes", test_codes, test_labels, "a reference solution's 10-D test codes",
                                "its codes of the same test images")]
    show_and_measure(maps(panels),
                     FIGURES["ae10_accuracy"], classifier_accuracy(train_codes, train_labels, test_codes, test_labels),
                     "A logistic-regression classifier on your 10-D codes", "held-out accuracy", digits=3,
                     close="Train the autoencoder longer, then save and submit it again.",
                     far="Codes that far from separating the digits come from an encoder that ignores its input or a "
                         "model that was not trained: check both, then save and submit again.")


@check("test_compression", collect.collect_compression)
def judge_compression(out: dict, inputs: Inputs) -> None:
    """The compression autoencoder is 784-128-32-128-784 with sigmoids on every layer."""
    assert out["layers"] == COMPRESSION_LAYERS, (
        "CompressionAutoencoder should have four nn.Linear layers 784-128-32-128-784, got weight shapes "
        f"{describe(out['layers'])}.")
    assert out["parameters"] == COMPRESSION_PARAMETERS, (
        f"CompressionAutoencoder should have {COMPRESSION_PARAMETERS} parameters, got {describe(out['parameters'])}.")
    assert out["length"] == 2, "CompressionAutoencoder.forward should return (codes, reconstructions)."
    codes = require_tensor(out["codes"], "codes of CompressionAutoencoder", (4, 32))
    reconstructions = require_tensor(out["reconstructions"], "reconstructions of CompressionAutoencoder",
                                     (4, 1, 28, 28))
    assert in_range(codes, "The 32 code units", 0, 1, strict=True), (
        "The 32 code units should use a sigmoid (values in (0, 1)).")
    assert in_range(reconstructions, "The reconstructions", 0, 1), "The output layer should use a sigmoid."


@check("test_compression_trained", collect.collect_trained_compression, figures=("compression_mse",), pictured=True)
def judge_trained_compression(out: dict, inputs: Inputs) -> None:
    """The trained compression autoencoder reconstructs held-out images well."""
    judge_test_mse(out["reconstructions"], "compression_mse", "compression autoencoder")


def sparsity_closed_form(activations: torch.Tensor, rho: float) -> torch.Tensor:
    """The KL sparsity penalty, summed over units, with rho_hat the batch mean of each unit."""
    rho_hat = activations.double().mean(dim=0)
    return (rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))).sum()


@check("test_sparsity_penalty", collect.collect_sparsity)
def judge_sparsity(out: dict, inputs: Inputs) -> None:
    """The penalty matches sum_j KL(rho || rho_hat_j) on the secret activations, and gradients flow."""
    cases = collect.sparsity_activations(inputs)
    assert isinstance(out["cases"], list) and len(out["cases"]) == len(cases), "Collected cases are incomplete."
    for (activations, rho), case in zip(cases, out["cases"]):
        rho = 0.01 if rho is None else rho
        value = case["value"]
        assert isinstance(value, torch.Tensor) and value.numel() == 1, (
            f"sparsity_penalty should return a scalar tensor, got {describe(value)}.")
        expected = sparsity_closed_form(activations, rho)
        batch, units = activations.shape
        assert agrees(value.reshape(()), expected, "sparsity_penalty on the hidden activations", rtol=1e-4, atol=1e-6,
                      target="sum_j KL(rho || rho_hat_j)"), (
            f"sparsity_penalty on activations of shape ({batch}, {units}) with rho={rho} returned "
            f"{float(value):.6f}, expected {float(expected):.6f}: rho_hat_j is the mean of unit j over the batch, "
            "and the KL terms are summed over the units.")
        grad = case["grad"]
        assert isinstance(grad, torch.Tensor) and tuple(grad.shape) == (batch, units) \
            and torch.isfinite(grad).all() and grad.abs().sum() > 0, (
            "Gradients of sparsity_penalty should flow back to the activations: use torch operations only.")


@check("test_sparse_trained", collect.collect_trained_sparse, figures=("sparse_activation", "sparse_mse"),
       pictured=True)
def judge_trained_sparse(out: dict, inputs: Inputs) -> None:
    """The trained sparse autoencoder's code units are rarely active on held-out images, and it still reconstructs."""
    images = split("test")[0]
    assert "codes" in out, f"CompressionAutoencoder.forward should return (codes, reconstructions), got {out.get('kind')}."
    codes = require_tensor(out.get("codes"), "codes of the test images", (len(images), 32))
    assert in_range(codes, "The codes of the test images", 0, 1), (
        f"The codes of your sparse autoencoder should be sigmoid activations in (0, 1), got values from "
        f"{codes.min():.3g} to {codes.max():.3g}.")
    measure(FIGURES["sparse_activation"], codes.double().mean().item(),
            "The code units of your sparse autoencoder (1_ae_sparse.pth), on held-out images,", "mean activation",
            digits=3, close="Train it with the penalty added to the loss, as described, and save it again.")
    judge_test_mse(out.get("reconstructions"), "sparse_mse", "sparse autoencoder")

