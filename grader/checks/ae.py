"""Hidden checks for notebook 1_ae (bottleneck autoencoders)."""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from aelib.evaluation import classifier_accuracy, encode, mse_per_pixel
from grader.checks.common import (as_plain, construct, hidden_check, load_submitted, require_tensor,
                                  split, train_briefly)
from grader.reference import AE as FIGURES

ENCODER_FILE, DECODER_FILE, COMPRESSION_FILE = "1_ae_encoder.pth", "1_ae_decoder.pth", "1_ae_compression.pth"
COMPRESSION_LAYERS = sorted([(128, 784), (32, 128), (128, 32), (784, 128)])
COMPRESSION_PARAMETERS = 784 * 128 + 128 + 128 * 32 + 32 + 32 * 128 + 128 + 128 * 784 + 784
CLASSIFIER_TRAIN_IMAGES = 10_000


# --- sample_train -------------------------------------------------------------------------------

def collect_sample_train(sample_train: Callable) -> dict:
    """Draw from the student's sample_train: a small batch, and two labelled batches."""
    torch.manual_seed(1)
    few = sample_train(5)
    first = sample_train(200, return_labels=True)
    second = sample_train(200, return_labels=True)
    out = {"few": as_plain(few), "first_kind": type(first).__name__, "second_kind": type(second).__name__}
    if isinstance(first, tuple) and isinstance(second, tuple) and len(first) == len(second) == 2:
        out.update(images=as_plain(first[0]), labels=as_plain(first[1]),
                   images2=as_plain(second[0]), labels2=as_plain(second[1]))
    return out


def _matches(images: torch.Tensor, pool: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each image, its nearest image in `pool` and the squared distance to it."""
    flat, pool_flat = images.reshape(len(images), -1).double(), pool.reshape(len(pool), -1).double()
    distances = (flat.pow(2).sum(1, keepdim=True) - 2 * flat @ pool_flat.T + pool_flat.pow(2).sum(1)).clamp_min(0)
    best, index = distances.min(dim=1)
    return index, best


def judge_sample_train(out: dict, train_images: torch.Tensor, train_labels: torch.Tensor) -> None:
    """sample_train returns N random training images (and their labels) of the right shapes."""
    few = require_tensor(out["few"], "sample_train(5)", (5, 1, 28, 28))
    assert few.min() >= 0 and few.max() <= 1, "Images from sample_train should have values in [0, 1]."
    assert out["first_kind"] == "tuple" and "images" in out, (
        "sample_train(N, return_labels=True) should return a tuple (images, labels), "
        f"got {out['first_kind']}.")
    images = require_tensor(out["images"], "images of sample_train(200, return_labels=True)", (200, 1, 28, 28))
    labels = out["labels"]
    assert isinstance(labels, torch.Tensor) and tuple(labels.shape) == (200,), (
        f"labels of sample_train(200, return_labels=True) should be a tensor of shape (200,), got {labels}.")
    assert not torch.equal(images, out["images2"]), "Two calls of sample_train gave the same images: draw at random."
    index, distance = _matches(images, train_images)
    assert (distance < 1e-3).all(), (
        f"{int((distance >= 1e-3).sum())} of 200 images from sample_train are not images of the training set "
        "(x_train). Sample from the training split, with values scaled to [0, 1].")
    assert torch.equal(labels.long(), train_labels[index]), (
        "The labels from sample_train do not belong to the returned images: index images and labels with the "
        "same random indices.")


@hidden_check
def check_sample_train(sample_train: Callable) -> None:
    """Hidden check of sample_train against the training split."""
    train_images, train_labels = split("train")
    judge_sample_train(collect_sample_train(sample_train), train_images, train_labels)


# --- Encoder, Decoder, Autoencoder ---------------------------------------------------------------

def collect_encoder_decoder(Encoder: Callable, Decoder: Callable) -> dict:
    """Outputs of fresh encoders and decoders for two code sizes and two batch sizes."""
    torch.manual_seed(2)
    out = {}
    for n in (2, 10):
        encoder, decoder = construct(Encoder, n), construct(Decoder, n)
        for batch in (1, 7):
            out[f"z{n}_{batch}"] = as_plain(encoder(torch.rand(batch, 1, 28, 28)))
            out[f"y{n}_{batch}"] = as_plain(decoder(3 * torch.randn(batch, n)))
        out[f"encoder{n}_modules"] = isinstance(encoder, nn.Module) and isinstance(decoder, nn.Module)
    return out


def judge_encoder_decoder(out: dict) -> None:
    """Encoder maps (B,1,28,28) to (B,n); Decoder maps (B,n) to (B,1,28,28) in [0,1]."""
    for n in (2, 10):
        assert out[f"encoder{n}_modules"], "Encoder and Decoder should be subclasses of nn.Module."
        for batch in (1, 7):
            require_tensor(out[f"z{n}_{batch}"], f"Encoder({n}) output for a batch of {batch}", (batch, n))
            y = require_tensor(out[f"y{n}_{batch}"], f"Decoder({n}) output for a batch of {batch}",
                               (batch, 1, 28, 28))
            assert y.min() >= 0 and y.max() <= 1, (
                f"Decoder({n}) outputs should lie in [0, 1] like the images (got values from {y.min():.3g} "
                f"to {y.max():.3g}): end the decoder with a sigmoid.")


@hidden_check
def check_encoder_decoder(Encoder: Callable, Decoder: Callable) -> None:
    """Hidden check of the Encoder and Decoder shapes and output range."""
    judge_encoder_decoder(collect_encoder_decoder(Encoder, Decoder))


def collect_autoencoder(Autoencoder: Callable) -> dict:
    """The output of a fresh Autoencoder(10) and of its submodules on the same batch."""
    model = construct(Autoencoder, 10)
    x = torch.rand(6, 1, 28, 28)
    output = model(x)
    out = {"kind": type(output).__name__, "length": len(output) if isinstance(output, tuple) else -1,
           "has_submodules": all(isinstance(getattr(model, name, None), nn.Module) for name in ("encoder", "decoder"))}
    if out["length"] == 2 and out["has_submodules"]:
        codes = model.encoder(x)
        out.update(codes=as_plain(output[0]), reconstructions=as_plain(output[1]),
                   encoder_codes=as_plain(codes), decoded=as_plain(model.decoder(codes)))
    return out


def judge_autoencoder(out: dict) -> None:
    """forward(x) returns (encoder(x), decoder(encoder(x))) through the encoder and decoder submodules."""
    assert out["has_submodules"], "Autoencoder should have nn.Module attributes named encoder and decoder."
    assert out["length"] == 2, f"Autoencoder.forward should return a tuple (codes, reconstructions), got {out['kind']}."
    codes = require_tensor(out["codes"], "codes returned by Autoencoder(10)", (6, 10))
    reconstructions = require_tensor(out["reconstructions"], "reconstructions returned by Autoencoder(10)",
                                     (6, 1, 28, 28))
    assert torch.allclose(codes, out["encoder_codes"], atol=1e-5), "The codes should be self.encoder(x)."
    assert torch.allclose(reconstructions, out["decoded"], atol=1e-5), (
        "The reconstructions should be self.decoder(codes).")


def collect_brief_training(Autoencoder: Callable) -> dict:
    """Test MSE of a fresh Autoencoder(10) before and after a short training run."""
    train_images, _ = split("train")
    test_images, _ = split("test")
    model = construct(Autoencoder, 10)

    def reconstruction_loss(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        return nn.functional.mse_loss(model(batch)[1], batch)

    with torch.no_grad():
        before = mse_per_pixel(model(test_images[:1000])[1], test_images[:1000])
    train_briefly(model, train_images[:4000], steps=400, loss_of=reconstruction_loss)
    with torch.no_grad():
        after = mse_per_pixel(model(test_images[:1000])[1], test_images[:1000])
    return {"before": before, "after": after}


def judge_brief_training(out: dict) -> None:
    """A short training run from scratch lowers the test MSE below the threshold."""
    limit = FIGURES["brief_training_mse"].threshold
    assert math.isfinite(out["after"]) and out["after"] < limit and out["after"] < 0.8 * out["before"], (
        f"Your Autoencoder(10), trained from scratch for 400 Adam steps (lr 1e-3, batches of 64), reached a "
        f"test MSE of {out['after']:.4f} (from {out['before']:.4f}); a working architecture gets below {limit}. "
        "Check that the decoder uses the codes and that gradients reach every layer.")


@hidden_check
def check_autoencoder(Autoencoder: Callable) -> None:
    """Hidden check of the Autoencoder's structure and that it learns in a short run."""
    judge_autoencoder(collect_autoencoder(Autoencoder))
    judge_brief_training(collect_brief_training(Autoencoder))


# --- the trained 10-D autoencoder ----------------------------------------------------------------

def collect_trained_codes(Encoder: Callable, Decoder: Callable) -> dict:
    """Codes and reconstructions of held-out images from the submitted 10-D checkpoints."""
    encoder = load_submitted(construct(Encoder, 10), ENCODER_FILE)
    decoder = load_submitted(construct(Decoder, 10), DECODER_FILE)
    train_images, train_labels = split("train")
    test_images, test_labels = split("test")
    train_images, train_labels = train_images[:CLASSIFIER_TRAIN_IMAGES], train_labels[:CLASSIFIER_TRAIN_IMAGES]
    with torch.no_grad():
        test_codes = encode(encoder, test_images)
        reconstructions = torch.cat([decoder(test_codes[i:i + 1000]) for i in range(0, len(test_codes), 1000)])
        train_codes = encode(encoder, train_images)
    return {"train_codes": as_plain(train_codes), "train_labels": train_labels, "test_codes": as_plain(test_codes),
            "test_labels": test_labels, "reconstructions": as_plain(reconstructions), "test_images": test_images}


def judge_test_mse(out: dict, figure: str, model: str) -> None:
    """Reconstructions of the held-out images reach the per-pixel MSE threshold of `figure`."""
    reconstructions = require_tensor(out["reconstructions"], "reconstructions of the test images",
                                     tuple(out["test_images"].shape))
    mse = mse_per_pixel(reconstructions, out["test_images"])
    limit = FIGURES[figure].threshold
    assert mse < limit, (
        f"Your trained {model} reconstructs test images with a per-pixel MSE of {mse:.4f}; it should be "
        f"below {limit} (a reference solution reaches about {FIGURES[figure].reference}). Train longer or "
        "with a larger network, then save and submit the checkpoints again.")


def judge_reconstruction(out: dict) -> None:
    """The trained 10-D autoencoder reconstructs held-out images with a low per-pixel MSE."""
    judge_test_mse(out, "ae10_mse", "10-D autoencoder")


def judge_classifier(out: dict) -> None:
    """A logistic-regression classifier on the 10-D codes classifies held-out digits accurately."""
    test_codes = require_tensor(out["test_codes"], "codes of the test images", (len(out["test_labels"]), 10))
    train_codes = require_tensor(out["train_codes"], "codes of the training images", (len(out["train_labels"]), 10))
    accuracy = classifier_accuracy(train_codes, out["train_labels"], test_codes, out["test_labels"])
    limit = FIGURES["ae10_accuracy"].threshold
    assert accuracy > limit, (
        f"A logistic-regression classifier on your 10-D codes reaches {accuracy:.3f} accuracy on held-out "
        f"images; it should be above {limit} (a reference solution reaches about "
        f"{FIGURES['ae10_accuracy'].reference}).")


@hidden_check
def check_reconstruction(Encoder: Callable, Decoder: Callable) -> None:
    """Hidden check of the submitted 10-D autoencoder's reconstruction error."""
    judge_reconstruction(collect_trained_codes(Encoder, Decoder))


@hidden_check
def check_classifier(Encoder: Callable, Decoder: Callable) -> None:
    """Hidden check of the classifier accuracy on the submitted encoder's codes."""
    judge_classifier(collect_trained_codes(Encoder, Decoder))


# --- compression autoencoder ---------------------------------------------------------------------

def collect_compression(CompressionAutoencoder: Callable) -> dict:
    """Layer shapes, parameter count and outputs of a fresh compression autoencoder."""
    model = construct(CompressionAutoencoder)
    x = torch.rand(4, 1, 28, 28)
    output = model(x)
    out = {"layers": sorted(tuple(m.weight.shape) for m in model.modules() if isinstance(m, nn.Linear)),
           "parameters": sum(p.numel() for p in model.parameters()),
           "length": len(output) if isinstance(output, tuple) else -1}
    if out["length"] == 2:
        out.update(codes=as_plain(output[0]), reconstructions=as_plain(output[1]))
    return out


def judge_compression(out: dict) -> None:
    """The compression autoencoder is 784-128-32-128-784 with sigmoids on every layer."""
    assert out["layers"] == COMPRESSION_LAYERS, (
        "CompressionAutoencoder should have four nn.Linear layers 784-128-32-128-784, got weight shapes "
        f"{out['layers']}.")
    assert out["parameters"] == COMPRESSION_PARAMETERS, (
        f"CompressionAutoencoder should have {COMPRESSION_PARAMETERS} parameters, got {out['parameters']}.")
    assert out["length"] == 2, "CompressionAutoencoder.forward should return (codes, reconstructions)."
    codes = require_tensor(out["codes"], "codes of CompressionAutoencoder", (4, 32))
    reconstructions = require_tensor(out["reconstructions"], "reconstructions of CompressionAutoencoder",
                                     (4, 1, 28, 28))
    assert codes.min() > 0 and codes.max() < 1, "The 32 code units should use a sigmoid (values in (0, 1))."
    assert reconstructions.min() >= 0 and reconstructions.max() <= 1, "The output layer should use a sigmoid."


@hidden_check
def check_compression(CompressionAutoencoder: Callable) -> None:
    """Hidden check of the compression autoencoder's architecture."""
    judge_compression(collect_compression(CompressionAutoencoder))


def collect_trained_compression(CompressionAutoencoder: Callable) -> dict:
    """Reconstructions of held-out images from the submitted compression autoencoder."""
    model = load_submitted(construct(CompressionAutoencoder), COMPRESSION_FILE)
    test_images, _ = split("test")
    with torch.no_grad():
        reconstructions = torch.cat([model(test_images[i:i + 1000])[1] for i in range(0, len(test_images), 1000)])
    return {"reconstructions": as_plain(reconstructions), "test_images": test_images}


def judge_trained_compression(out: dict) -> None:
    """The trained compression autoencoder reconstructs held-out images well."""
    judge_test_mse(out, "compression_mse", "compression autoencoder")


@hidden_check
def check_trained_compression(CompressionAutoencoder: Callable) -> None:
    """Hidden check of the submitted compression autoencoder."""
    judge_trained_compression(collect_trained_compression(CompressionAutoencoder))


# --- sparsity penalty ----------------------------------------------------------------------------

def sparsity_closed_form(activations: torch.Tensor, rho: float) -> torch.Tensor:
    """The KL sparsity penalty, summed over units, with rho_hat the batch mean of each unit."""
    rho_hat = activations.double().mean(dim=0)
    return (rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))).sum()


SPARSITY_CASES = ((64, 32, None), (10, 5, 0.05), (3, 7, 0.3))


def collect_sparsity(sparsity_penalty: Callable) -> dict:
    """Penalties computed by the student's function on fixed random activations."""
    generator = torch.Generator().manual_seed(3)
    out = {"cases": []}
    for batch, units, rho in SPARSITY_CASES:
        activations = torch.sigmoid(2 * torch.randn(batch, units, generator=generator) - 1).requires_grad_()
        value = sparsity_penalty(activations) if rho is None else sparsity_penalty(activations, rho=rho)
        grad = None
        if isinstance(value, torch.Tensor) and value.requires_grad and value.numel() == 1:
            grad = as_plain(torch.autograd.grad(value.sum(), activations, allow_unused=True)[0])
        out["cases"].append({"activations": activations.detach().clone(), "rho": 0.01 if rho is None else rho,
                             "value": as_plain(value), "grad": grad})
    return out


def judge_sparsity(out: dict) -> None:
    """The penalty matches sum_j KL(rho || rho_hat_j) and gradients flow to the activations."""
    for case in out["cases"]:
        value = case["value"]
        assert isinstance(value, torch.Tensor) and value.numel() == 1, (
            f"sparsity_penalty should return a scalar tensor, got {value}.")
        expected = sparsity_closed_form(case["activations"], case["rho"])
        batch, units = case["activations"].shape
        assert torch.allclose(value.double().reshape(()), expected, rtol=1e-4, atol=1e-6), (
            f"sparsity_penalty on activations of shape ({batch}, {units}) with rho={case['rho']} returned "
            f"{float(value):.6f}, expected {float(expected):.6f}: rho_hat_j is the mean of unit j over the batch, "
            "and the KL terms are summed over the units.")
        assert isinstance(case["grad"], torch.Tensor) and torch.isfinite(case["grad"]).all() \
            and case["grad"].abs().sum() > 0, (
            "Gradients of sparsity_penalty should flow back to the activations: use torch operations only.")


@hidden_check
def check_sparsity(sparsity_penalty: Callable) -> None:
    """Hidden check of sparsity_penalty against its closed form."""
    judge_sparsity(collect_sparsity(sparsity_penalty))
