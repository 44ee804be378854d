"""Collectors of notebook 1_ae (bottleneck autoencoders): call the student's code, return plain data."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from grader.collect.common import Inputs, as_plain, call, construct, load_submitted, split, train_briefly

ENCODER_FILE, DECODER_FILE, COMPRESSION_FILE = "1_ae_encoder.pth", "1_ae_decoder.pth", "1_ae_compression.pth"
SPARSE_FILE = "1_ae_sparse.pth"
BUILDER_SIZES = (3, 50)
SATURATING_SCALE = 100.0  # large inputs drive a Tanh code to +-1
CLASSIFIER_TRAIN_IMAGES = 10_000
BRIEF_TRAIN_IMAGES, BRIEF_TEST_IMAGES, BRIEF_STEPS = 4000, 1000, 400
SPARSITY_CASES = ((64, 32, None), (10, 5, 0.05), (3, 7, 0.3))  # batch, units, rho (None: the default)


def sample_train_batches(sample_train: Callable, inputs: Inputs) -> dict:
    """The student's sample_train: a small batch and two labelled batches, with an unpredictable seed."""
    torch.manual_seed(inputs.torch_seed("sample order"))
    few = call(sample_train, 5)
    first = call(sample_train, 200, return_labels=True)
    second = call(sample_train, 200, return_labels=True)
    out = {"few": as_plain(few), "first_kind": type(first).__name__}
    if isinstance(first, tuple) and isinstance(second, tuple) and len(first) == len(second) == 2:
        out.update(images=as_plain(first[0]), labels=as_plain(first[1]), images2=as_plain(second[0]))
    return out


def collect_sample_train(inputs: Inputs, sample_train: Callable) -> dict:
    """Batches drawn by the student's sample_train."""
    return sample_train_batches(sample_train, inputs)


def encoder_inputs(inputs: Inputs, batch: int) -> torch.Tensor:
    """Random images for the shape checks (the judge never needs them back)."""
    return torch.rand(batch, 1, 28, 28, generator=inputs.generator("shape images"))


def collect_encoder_decoder(inputs: Inputs, Encoder: Callable, Decoder: Callable) -> dict:
    """Outputs of fresh encoders and decoders for two code sizes and two batch sizes."""
    out = {}
    for n in (2, 10):
        encoder, decoder = construct(Encoder, n), construct(Decoder, n)
        for batch in (1, 7):
            out[f"z{n}_{batch}"] = as_plain(encoder(encoder_inputs(inputs, batch)))
            codes = 3 * torch.randn(batch, n, generator=inputs.generator("shape codes"))
            out[f"y{n}_{batch}"] = as_plain(decoder(codes))
        out[f"encoder{n}_modules"] = isinstance(encoder, nn.Module) and isinstance(decoder, nn.Module)
    return out


def builder_codes(inputs: Inputs, size: int) -> torch.Tensor:
    """Random codes in (-1, 1) for the built decoders (the judge derives the same ones)."""
    return 2 * torch.rand(5, size, generator=inputs.generator("builder codes")) - 1


def saturating_inputs(inputs: Inputs) -> torch.Tensor:
    """Large inputs of both signs that drive a Tanh code close to -1 and +1."""
    return SATURATING_SCALE * (encoder_inputs(inputs, 5) - 0.5)


def collect_builders(inputs: Inputs, make_encoder: Callable, make_decoder: Callable) -> dict:
    """Linear layers (in order, with their weights) and outputs of built encoders and decoders for two code sizes."""
    out = {}
    for size in BUILDER_SIZES:
        encoder, decoder = construct(make_encoder, size), construct(make_decoder, size)
        modules = isinstance(encoder, nn.Module) and isinstance(decoder, nn.Module)
        out[f"modules{size}"] = modules
        if not modules:
            continue
        for part, model in (("encoder", encoder), ("decoder", decoder)):
            linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
            out[f"{part}{size}_layers"] = [tuple(m.weight.shape) for m in linears]
            out[f"{part}{size}_weights"] = [(as_plain(m.weight), as_plain(m.bias)) for m in linears]
            out[f"{part}{size}_parameters"] = sum(p.numel() for p in model.parameters())
        with torch.no_grad():
            out[f"codes{size}"] = as_plain(encoder(encoder_inputs(inputs, 5)))
            out[f"saturated{size}"] = as_plain(encoder(saturating_inputs(inputs)))
            out[f"images{size}"] = as_plain(decoder(builder_codes(inputs, size)))
    return out


def brief_subsets(inputs: Inputs) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the training images and held-out images of the short training run."""
    train, test = len(split("train")[0]), len(split("test")[0])
    return inputs.subset(train, BRIEF_TRAIN_IMAGES, "brief train subset"), inputs.subset(test, BRIEF_TEST_IMAGES, "brief test subset")


def collect_autoencoder(inputs: Inputs, Autoencoder: Callable) -> dict:
    """Structure of a fresh Autoencoder(10), and its reconstructions before and after a short training run."""
    model = construct(Autoencoder, 10)
    x = encoder_inputs(inputs, 6)
    output = model(x)
    out = {"kind": type(output).__name__, "length": len(output) if isinstance(output, tuple) else -1,
           "has_submodules": all(isinstance(getattr(model, name, None), nn.Module) for name in ("encoder", "decoder"))}
    if out["length"] != 2 or not out["has_submodules"]:
        return out
    codes = model.encoder(x)
    out.update(codes=as_plain(output[0]), reconstructions=as_plain(output[1]),
               encoder_codes=as_plain(codes), decoded=as_plain(model.decoder(codes)))
    train_index, test_index = brief_subsets(inputs)
    test_images = split("test")[0][test_index]

    def reconstruction_loss(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        return nn.functional.mse_loss(model(batch)[1], batch)

    with torch.no_grad():
        out["before"] = as_plain(model(test_images)[1])
    train_briefly(model, split("train")[0][train_index], steps=BRIEF_STEPS, loss_of=reconstruction_loss,
                  seed=inputs.torch_seed("brief order"))
    with torch.no_grad():
        out["after"] = as_plain(model(test_images)[1])
    return out


def classifier_subset(inputs: Inputs) -> torch.Tensor:
    """Indices of the training images whose codes train the judge's classifier."""
    total = len(split("train")[0])
    return inputs.subset(total, min(CLASSIFIER_TRAIN_IMAGES, total), "classifier subset")


def collect_trained_codes(inputs: Inputs, Encoder: Callable, Decoder: Callable) -> dict:
    """Codes and reconstructions of the held-out images, and codes of training images, from the 10-D checkpoints."""
    encoder = load_submitted(construct(Encoder, 10), ENCODER_FILE)
    decoder = load_submitted(construct(Decoder, 10), DECODER_FILE)
    train_images = split("train")[0][classifier_subset(inputs)]
    test_images = split("test")[0]
    with torch.no_grad():
        test_codes = torch.cat([encoder(test_images[i:i + 1000]) for i in range(0, len(test_images), 1000)])
        reconstructions = torch.cat([decoder(test_codes[i:i + 1000]) for i in range(0, len(test_codes), 1000)])
        train_codes = torch.cat([encoder(train_images[i:i + 1000]) for i in range(0, len(train_images), 1000)])
    return {"train_codes": as_plain(train_codes), "test_codes": as_plain(test_codes),
            "reconstructions": as_plain(reconstructions)}


def collect_compression(inputs: Inputs, CompressionAutoencoder: Callable) -> dict:
    """Layer shapes, parameter count and outputs of a fresh compression autoencoder."""
    model = construct(CompressionAutoencoder)
    output = model(encoder_inputs(inputs, 4))
    out = {"layers": sorted(tuple(m.weight.shape) for m in model.modules() if isinstance(m, nn.Linear)),
           "parameters": sum(p.numel() for p in model.parameters()),
           "length": len(output) if isinstance(output, tuple) else -1}
    if out["length"] == 2:
        out.update(codes=as_plain(output[0]), reconstructions=as_plain(output[1]))
    return out


def collect_trained_compression(inputs: Inputs, CompressionAutoencoder: Callable) -> dict:
    """Reconstructions of the held-out images by the submitted compression autoencoder."""
    model = load_submitted(construct(CompressionAutoencoder), COMPRESSION_FILE)
    test_images = split("test")[0]
    with torch.no_grad():
        reconstructions = torch.cat([model(test_images[i:i + 1000])[1] for i in range(0, len(test_images), 1000)])
    return {"reconstructions": as_plain(reconstructions)}


def sparsity_activations(inputs: Inputs) -> list[tuple[torch.Tensor, float | None]]:
    """Random sigmoid activations of each case, and its rho (None: the function's default)."""
    generator = inputs.generator("sparsity draws")
    return [(torch.sigmoid(2 * torch.randn(batch, units, generator=generator) - 1), rho)
            for batch, units, rho in SPARSITY_CASES]


def collect_sparsity(inputs: Inputs, sparsity_penalty: Callable) -> dict:
    """The student's penalties on secret random activations, and their gradients."""
    out = {"cases": []}
    for activations, rho in sparsity_activations(inputs):
        activations = activations.clone().requires_grad_()
        value = call(sparsity_penalty, activations) if rho is None else call(sparsity_penalty, activations, rho=rho)
        grad = None
        if isinstance(value, torch.Tensor) and value.requires_grad and value.numel() == 1:
            grad = as_plain(torch.autograd.grad(value.sum(), activations, allow_unused=True)[0])
        out["cases"].append({"value": as_plain(value), "grad": grad})
    return out


def collect_trained_sparse(inputs: Inputs, CompressionAutoencoder: Callable) -> dict:
    """Codes and reconstructions of the held-out images by the submitted sparse autoencoder."""
    model = load_submitted(construct(CompressionAutoencoder), SPARSE_FILE)
    test_images = split("test")[0]
    with torch.no_grad():
        outputs = [model(test_images[i:i + 1000]) for i in range(0, len(test_images), 1000)]
    if not all(isinstance(output, tuple) and len(output) == 2 for output in outputs):
        return {"kind": type(outputs[0]).__name__}
    return {"codes": as_plain(torch.cat([output[0] for output in outputs])),
            "reconstructions": as_plain(torch.cat([output[1] for output in outputs]))}
