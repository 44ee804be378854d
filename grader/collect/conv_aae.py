"""Collectors of notebook 5_conv_aae (convolutional autoencoder, convolutional VAE, adversarial autoencoder).

Every input below (random images and codes, held-out subsets, initial weights, batch orders, the
two Gaussians the discriminator learns to separate, the logits handed to the GAN losses, the VAE's
samples) comes from the submission's secret `Inputs`; the judges rebuild the same inputs with the
helpers of this module. The short training runs use torch's own losses written inline (the mean
squared error for the autoencoder, binary cross-entropy with logits on labelled points for the
discriminator); no collector calls the student's `vae_loss`, `discriminator_loss` or
`generator_loss` outside the cell that tests it, so a mistake in one costs only that cell.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from grader.collect.common import (CollectionFailed, Inputs, as_plain, call, construct, load_submitted, prior_samples,
                                   sampled_codes, split, train_briefly)

AE_FILE, VAE_FILE, AAE_FILE = "5_conv_aae_ae.pth", "5_conv_aae_vae.pth", "5_conv_aae_aae.pth"
AE_COMPONENTS, VAE_COMPONENTS, AAE_COMPONENTS = 10, 10, 8
IMAGE = (1, 28, 28)
SHAPE_BATCHES = (1, 5)
VAE_BATCH = 6
DISCRIMINATOR_BATCHES = (1, 6)
BRIEF_TRAIN_IMAGES, BRIEF_TEST_IMAGES, BRIEF_STEPS = 4000, 500, 400
DISCRIMINATOR_TRAIN_POINTS, DISCRIMINATOR_TEST_POINTS = 4000, 2000
DISCRIMINATOR_STEPS, DISCRIMINATOR_BATCH = 300, 128
OUTPUT_BATCH = 1000  # images per forward pass when a model runs over a whole set
# Constant logits (prior, codes) of four samples each, for the ordering of the GAN losses.
ORDERING = {"separates": (3.0, -3.0), "unsure": (0.0, 0.0), "fooled": (-3.0, 3.0)}



# --- inputs both sides derive from the secret seed ------------------------------------------------

def brief_subsets(inputs: Inputs) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the training images and held-out images of the autoencoder's short training run."""
    train, test = len(split("train")[0]), len(split("test")[0])
    return (inputs.subset(train, min(BRIEF_TRAIN_IMAGES, train), "brief train subset"),
            inputs.subset(test, min(BRIEF_TEST_IMAGES, test), "brief test subset"))


def two_gaussians(count: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """`count` samples of the prior N(0, I) and `count` 'codes' from N(1, 0.5^2 I), in AAE_COMPONENTS dimensions."""
    prior = torch.randn(count, AAE_COMPONENTS, generator=generator)
    codes = 1.0 + 0.5 * torch.randn(count, AAE_COMPONENTS, generator=generator)
    return prior, codes


def large_logits(generator: torch.Generator, magnitude: float, count: int) -> torch.Tensor:
    """`count` (>= 2) logits (count, 1): one in (m/2, m], one in [-m, -m/2) for m = magnitude, the rest ordinary."""
    extremes = magnitude * (1 - 0.5 * torch.rand(2, generator=generator)) * torch.tensor([1.0, -1.0])
    values = torch.cat([extremes, 3 * torch.randn(count - 2, generator=generator)])
    return values[torch.randperm(count, generator=generator)].unsqueeze(1)


def loss_cases(inputs: Inputs) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(name, prior logits, code logits) handed to the GAN losses: ordinary, equal-size, and very large logits."""
    generator = inputs.generator("loss cases")
    return [
        ("random logits", 3 * torch.randn(6, 1, generator=generator), 3 * torch.randn(4, 1, generator=generator)),
        ("equal sizes", 2 * torch.randn(5, 1, generator=generator), 2 * torch.randn(5, 1, generator=generator) + 1),
        ("logits of up to +-100", large_logits(generator, 100.0, 3), large_logits(generator, 100.0, 2)),
        ("logits of up to +-1000", large_logits(generator, 1000.0, 2), large_logits(generator, 1000.0, 3)),
    ]


# --- running the student's models ------------------------------------------------------------------

def traced_call(model: nn.Module, *arguments: Any) -> tuple[Any, list[dict]]:
    """Call `model` and record, in order, every layer without sub-layers it applies (kind, weights, input shape)."""
    calls: list[dict] = []
    handles = []
    for index, module in enumerate(model.modules()):
        if next(module.children(), None) is not None:
            continue

        def record(layer: nn.Module, args: tuple, index: int = index) -> None:
            shape = tuple(args[0].shape) if args and isinstance(args[0], torch.Tensor) else None
            calls.append({"kind": type(layer).__name__, "conv2d": isinstance(layer, nn.Conv2d),
                          "transposed": isinstance(layer, nn.ConvTranspose2d),
                          "weights": any(True for _ in layer.parameters(recurse=False)),
                          "input_shape": shape, "index": index})
        handles.append(module.register_forward_pre_hook(record))
    try:
        output = call(model, *arguments)
    finally:
        for handle in handles:
            handle.remove()
    return output, calls


def batched_outputs(function: Callable, images: torch.Tensor) -> torch.Tensor:
    """`function` applied to `images` in batches without gradients, concatenated; a non-tensor output fails."""
    outputs = []
    with torch.no_grad():
        for start in range(0, len(images), OUTPUT_BATCH):
            output = call(function, images[start:start + OUTPUT_BATCH])
            if not isinstance(output, torch.Tensor):
                raise CollectionFailed(f"{type(function).__name__} returned {type(output).__name__}, not a tensor.")
            outputs.append(output)
    return torch.cat(outputs)


def autoencoder(ConvEncoder: Callable, ConvDecoder: Callable, n: int, inputs: Inputs,
                encoder_stream: str, decoder_stream: str) -> nn.Sequential:
    """nn.Sequential(ConvEncoder(n), ConvDecoder(n)) with initial weights from two secret streams."""
    encoder = construct(ConvEncoder, n, seed=inputs.torch_seed(encoder_stream))
    decoder = construct(ConvDecoder, n, seed=inputs.torch_seed(decoder_stream))
    if not (isinstance(encoder, nn.Module) and isinstance(decoder, nn.Module)):
        raise CollectionFailed("ConvEncoder and ConvDecoder should be subclasses of nn.Module.")
    return nn.Sequential(encoder, decoder)


def loss_outputs(function: Callable, *logits: torch.Tensor) -> dict:
    """The value of a student's loss on `logits` and its gradients with respect to each of them."""
    arguments = [x.clone().requires_grad_() for x in logits]
    value = call(function, *arguments)
    grads = None
    if isinstance(value, torch.Tensor) and value.requires_grad and value.numel() == 1:
        grads = [None if g is None else as_plain(g)
                 for g in torch.autograd.grad(value.sum(), arguments, allow_unused=True)]
    return {"value": as_plain(value), "grads": grads}


# --- collectors, one per graded cell ---------------------------------------------------------------

def collect_conv_encoder_decoder(inputs: Inputs, ConvEncoder: Callable, ConvDecoder: Callable) -> dict:
    """Outputs and applied layers of fresh encoders and decoders for two code sizes and two batch sizes."""
    images, codes = inputs.generator("shape images"), inputs.generator("shape codes")
    out = {}
    for n in (2, AE_COMPONENTS):
        encoder = construct(ConvEncoder, n, seed=inputs.torch_seed("encoder init"))
        decoder = construct(ConvDecoder, n, seed=inputs.torch_seed("decoder init"))
        out[f"modules{n}"] = isinstance(encoder, nn.Module) and isinstance(decoder, nn.Module)
        if not out[f"modules{n}"]:
            continue
        encoder.eval(), decoder.eval()  # batches of 1: batch normalisation must use its running statistics
        for batch in SHAPE_BATCHES:
            with torch.no_grad():
                z, encoder_calls = traced_call(encoder, torch.rand(batch, *IMAGE, generator=images))
                x, decoder_calls = traced_call(decoder, 3 * torch.randn(batch, n, generator=codes))
            out[f"codes{n}_{batch}"], out[f"images{n}_{batch}"] = as_plain(z), as_plain(x)
            out[f"encoder_calls{n}_{batch}"], out[f"decoder_calls{n}_{batch}"] = encoder_calls, decoder_calls
    return out


def collect_conv_ae_learns(inputs: Inputs, ConvEncoder: Callable, ConvDecoder: Callable) -> dict:
    """Secret held-out reconstructions by a fresh ConvEncoder(10) + ConvDecoder(10) before and after a short MSE run."""
    train_index, test_index = brief_subsets(inputs)
    test_images = split("test")[0][test_index]
    model = autoencoder(ConvEncoder, ConvDecoder, AE_COMPONENTS, inputs, "brief encoder init", "brief decoder init")
    before = batched_outputs(model.eval(), test_images)

    def reconstruction_loss(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        return nn.functional.mse_loss(model(batch), batch)

    train_briefly(model, split("train")[0][train_index], steps=BRIEF_STEPS, loss_of=reconstruction_loss,
                  seed=inputs.torch_seed("brief order"))
    return {"before": as_plain(before), "after": as_plain(batched_outputs(model, test_images))}


def collect_conv_ae_trained(inputs: Inputs, ConvEncoder: Callable, ConvDecoder: Callable) -> dict:
    """Reconstructions of every held-out image by the submitted 10-D convolutional autoencoder."""
    model = nn.Sequential(construct(ConvEncoder, AE_COMPONENTS), construct(ConvDecoder, AE_COMPONENTS))
    load_submitted(model, AE_FILE)
    return {"reconstructions": as_plain(batched_outputs(model, split("test")[0]))}


def collect_conv_vae(inputs: Inputs, ConvVAE: Callable) -> dict:
    """Outputs of fresh ConvVAE(2) and ConvVAE(10): two calls on the same images, applied layers, the decoder."""
    images, codes = inputs.generator("vae images"), inputs.generator("vae codes")
    out = {}
    for n in (2, VAE_COMPONENTS):
        model = construct(ConvVAE, n, seed=inputs.torch_seed("vae init"))
        out[f"module{n}"] = isinstance(model, nn.Module)
        if not out[f"module{n}"]:
            continue
        x = torch.rand(VAE_BATCH, *IMAGE, generator=images)
        for mode in ("train", "eval"):
            model.train(mode == "train")
            with torch.no_grad():
                first, calls = traced_call(model, x)
                second = call(model, x)
            out[f"calls{n}"] = calls
            for name, value in (("first", first), ("second", second)):
                out[f"{name}{n}_{mode}"] = ([as_plain(v) for v in value] if isinstance(value, tuple)
                                            else type(value).__name__)
        decoder = getattr(model, "decoder", None)
        out[f"has_decoder{n}"] = isinstance(decoder, nn.Module)
        if out[f"has_decoder{n}"]:
            with torch.no_grad():
                out[f"decoded{n}"] = as_plain(call(decoder, torch.randn(3, n, generator=codes)))
            bright = torch.rand(2, *IMAGE, generator=images) * torch.tensor([1.0, 8.0]).reshape(2, 1, 1, 1)
            out[f"sampled{n}"] = sampled_codes(model, "decoder", bright, train=False)
    return out


def collect_conv_vae_trained(inputs: Inputs, ConvVAE: Callable) -> dict:
    """x_rec (one secretly seeded sample each), z_mean and z_logvar of every held-out image by the submitted ConvVAE."""
    model = load_submitted(construct(ConvVAE, VAE_COMPONENTS), VAE_FILE)
    test_images = split("test")[0]
    torch.manual_seed(inputs.torch_seed("vae trained samples"))
    parts: list[list[torch.Tensor]] = [[], [], []]
    with torch.no_grad():
        for start in range(0, len(test_images), OUTPUT_BATCH):
            output = call(model, test_images[start:start + OUTPUT_BATCH])
            if not (isinstance(output, tuple) and len(output) == 3
                    and all(isinstance(v, torch.Tensor) for v in output)):
                raise CollectionFailed("ConvVAE.forward should return a tuple of tensors (x_rec, z_mean, z_logvar), "
                                       f"got {type(output).__name__}.")
            for part, value in zip(parts, output):
                part.append(value)
    x_rec, z_mean, z_logvar = (as_plain(torch.cat(part)) for part in parts)
    return {"x_rec": x_rec, "z_mean": z_mean, "z_logvar": z_logvar,
            **prior_samples(getattr(model, "decoder", None), VAE_COMPONENTS)}


def collect_discriminator(inputs: Inputs, Discriminator: Callable) -> dict:
    """Outputs of fresh discriminators, and logits of new points by one trained to tell N(0, I) from N(1, 0.25 I)."""
    codes = inputs.generator("discriminator codes")
    out = {}
    for n in (2, AAE_COMPONENTS):
        model = construct(Discriminator, n, seed=inputs.torch_seed("discriminator init"))
        out[f"module{n}"] = isinstance(model, nn.Module)
        if not out[f"module{n}"]:
            return out
        model.eval()  # batches of 1: batch normalisation must use its running statistics
        for batch in DISCRIMINATOR_BATCHES:
            with torch.no_grad():
                logits = call(model, torch.randn(batch, n, generator=codes))
            out[f"logits{n}_{batch}"] = as_plain(logits)
            if not (isinstance(logits, torch.Tensor) and tuple(logits.shape) == (batch, 1)):
                return out  # the judge names the shape; training needs logits of shape (B, 1)
    model = construct(Discriminator, AAE_COMPONENTS, seed=inputs.torch_seed("discriminator init"))
    prior, shifted = two_gaussians(DISCRIMINATOR_TRAIN_POINTS, inputs.generator("discriminator train"))
    labelled = torch.cat([torch.cat([prior, torch.ones(len(prior), 1)], dim=1),
                          torch.cat([shifted, torch.zeros(len(shifted), 1)], dim=1)])

    def separation_loss(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        return nn.functional.binary_cross_entropy_with_logits(model(batch[:, :-1]), batch[:, -1:])

    train_briefly(model, labelled, steps=DISCRIMINATOR_STEPS, loss_of=separation_loss,
                  batch_size=DISCRIMINATOR_BATCH, seed=inputs.torch_seed("discriminator order"))
    test_prior, test_shifted = two_gaussians(DISCRIMINATOR_TEST_POINTS, inputs.generator("discriminator test"))
    with torch.no_grad():
        out["prior_logits"], out["code_logits"] = as_plain(model(test_prior)), as_plain(model(test_shifted))
    return out


def collect_discriminator_loss(inputs: Inputs, discriminator_loss: Callable) -> dict:
    """Values and gradients of the student's discriminator_loss on secret logits, and on an ordered series."""
    out = {"cases": [loss_outputs(discriminator_loss, prior, codes) for _, prior, codes in loss_cases(inputs)],
           "ordering": {}}
    for name, (p, c) in ORDERING.items():
        out["ordering"][name] = as_plain(call(discriminator_loss, torch.full((4, 1), p), torch.full((4, 1), c)))
    return out


def collect_generator_loss(inputs: Inputs, generator_loss: Callable) -> dict:
    """Values and gradients of the student's generator_loss on secret code logits, and on an ordered series."""
    out = {"cases": [loss_outputs(generator_loss, codes) for _, _, codes in loss_cases(inputs)], "ordering": {}}
    for name, (_, c) in ORDERING.items():
        out["ordering"][name] = as_plain(call(generator_loss, torch.full((4, 1), c)))
    return out


def collect_aae_trained(inputs: Inputs, ConvEncoder: Callable, ConvDecoder: Callable) -> dict:
    """Codes and reconstructions of every held-out image by the submitted adversarial autoencoder."""
    model = nn.Sequential(construct(ConvEncoder, AAE_COMPONENTS), construct(ConvDecoder, AAE_COMPONENTS))
    load_submitted(model, AAE_FILE)
    codes = batched_outputs(model[0], split("test")[0])
    return {"codes": as_plain(codes), "reconstructions": as_plain(batched_outputs(model[1], codes))}
