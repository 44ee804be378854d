"""Unit tests of 5_conv_aae's formulas, judges and messages, beyond the variant sweep in test_checks.py."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from grader import notebooks, pipeline
from grader.checks import conv_aae as checks
from grader.variants import conv_aae as variants

SOURCE = notebooks.build_notebook(pipeline.SOURCE / "5_conv_aae.py")


@pytest.fixture(scope="module")
def reference() -> dict:
    return notebooks.definitions(SOURCE)


def namespace_with(reference: dict, code: str) -> dict:
    """The reference namespace with `code` (a variant's cell) executed on top of it."""
    namespace = dict(reference)
    exec(code, namespace)
    return namespace


# --- the grader's formulas -----------------------------------------------------------------------

def test_bce_logits_matches_torch_and_stays_finite():
    generator = torch.Generator().manual_seed(0)
    logits = 4 * torch.randn(7, 1, generator=generator)
    for label in (0, 1):
        target = torch.full_like(logits, float(label))
        assert abs(float(checks.bce_logits(logits, label)) - float(F.binary_cross_entropy_with_logits(logits, target))) < 1e-6
    extreme = torch.tensor([[1000.0], [-1000.0]])
    assert float(checks.bce_logits(extreme, 1)) == pytest.approx(500.0)
    assert float(checks.bce_logits(extreme, 0)) == pytest.approx(500.0)


def test_gan_loss_formulas_known_values():
    zeros = torch.zeros(3, 1)
    assert float(checks.discriminator_loss_formula(zeros, torch.zeros(5, 1))) == pytest.approx(2 * math.log(2))
    assert float(checks.generator_loss_formula(zeros)) == pytest.approx(math.log(2))
    assert float(checks.generator_loss_formula(torch.full((2, 1), 100.0))) < 1e-40


def test_negative_elbo_matches_torch():
    generator = torch.Generator().manual_seed(1)
    x_rec, x = torch.rand(3, 1, 28, 28, generator=generator) * 0.98 + 0.01, torch.rand(3, 1, 28, 28, generator=generator)
    z_mean, z_logvar = torch.randn(3, 4, generator=generator), torch.randn(3, 4, generator=generator)
    bce = F.binary_cross_entropy(x_rec, x, reduction="none").flatten(1).sum(1)
    kl = 0.5 * (z_logvar.exp() + z_mean ** 2 - 1 - z_logvar).sum(1)
    assert torch.allclose(checks.negative_elbo(x_rec, x, z_mean, z_logvar).float(), bce + kl, rtol=1e-5)


def test_mmd_is_near_zero_for_the_prior_and_grows_with_the_mismatch():
    prior = checks.prior_samples(1000, 8)
    same = torch.randn(1000, 8, generator=torch.Generator().manual_seed(3))
    assert abs(checks.mmd(same, prior)) < 0.01
    assert checks.mmd(same + 0.3, prior) < checks.mmd(same + 1.0, prior)
    assert checks.mmd(2 * same, prior) > 0.2


# --- convolutional structure ---------------------------------------------------------------------

def encoder_calls(reference: dict, code: str) -> list[dict]:
    encoder = namespace_with(reference, code)["ConvEncoder"](10)
    _, calls = checks.traced_call(encoder, torch.rand(2, 1, 28, 28))
    return calls


def test_reference_encoder_is_convolutional(reference):
    _, calls = checks.traced_call(reference["ConvEncoder"](10), torch.rand(2, 1, 28, 28))
    checks.judge_convolutional(calls, "ConvEncoder(10)")


@pytest.mark.parametrize("code, message", [
    (variants.MLP_ENCODER, "is a Linear"),
    (variants.LINEAR_FIRST_ENCODER, "is a Linear"),
    ('''
class ConvEncoder(nn.Module):
    def __init__(self, n_components):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, stride=2, padding=1)
        self.fc = nn.Linear(8 * 14 * 14, n_components)

    def forward(self, x):
        return self.fc(F.relu(self.conv(x)).flatten(1))
''', "applies 1 nn.Conv2d"),
    ('''
class ConvEncoder(nn.Module):
    """Declares convolutions but never uses them."""
    def __init__(self, n_components):
        super().__init__()
        self.unused = nn.Sequential(nn.Conv2d(1, 8, 3), nn.Conv2d(8, 8, 3))
        self.fc = nn.Linear(784, n_components)

    def forward(self, x):
        return self.fc(x.flatten(1))
''', "is a Linear"),
])
def test_non_convolutional_encoders_are_named(reference, code, message):
    with pytest.raises(AssertionError, match=message):
        checks.judge_convolutional(encoder_calls(reference, code), "ConvEncoder(10)")


def test_decoder_without_sigmoid_is_caught(reference):
    namespace = namespace_with(reference, variants.REFERENCE_DECODER.replace(", nn.Sigmoid()", ""))
    with pytest.raises(AssertionError, match="sigmoid"):
        checks.judge_conv_encoder_decoder(checks.collect_conv_encoder_decoder(namespace["ConvEncoder"], namespace["ConvDecoder"]))


def test_decoder_without_convolutions_is_caught(reference):
    namespace = namespace_with(reference, '''
class ConvDecoder(nn.Module):
    def __init__(self, n_components):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(n_components, 784), nn.Sigmoid(), nn.Unflatten(1, (1, 28, 28)))

    def forward(self, z):
        return self.layers(z)
''')
    with pytest.raises(AssertionError, match="applies no convolution"):
        checks.judge_conv_encoder_decoder(checks.collect_conv_encoder_decoder(namespace["ConvEncoder"], namespace["ConvDecoder"]))


# --- other correct architectures pass the checks that need no checkpoint ------------------------

def test_pooling_encoder_and_upsampling_decoder_pass(reference):
    namespace = namespace_with(reference, variants.POOLING_ENCODER_UPSAMPLING_DECODER)
    checks.check_conv_encoder_decoder(namespace["ConvEncoder"], namespace["ConvDecoder"])
    checks.check_conv_ae_learns(namespace["ConvEncoder"], namespace["ConvDecoder"])


def test_two_head_vae_and_other_discriminator_pass(reference):
    namespace = namespace_with(reference, variants.POOLING_ENCODER_UPSAMPLING_DECODER + variants.TWO_HEADS_VAE
                               + variants.OTHER_DISCRIMINATOR)
    checks.check_conv_vae(namespace["ConvVAE"])
    checks.check_discriminator(namespace["Discriminator"])


def test_vae_without_sampling_is_named(reference):
    namespace = namespace_with(reference, '''
class ConvVAE(nn.Module):
    def __init__(self, n_components):
        super().__init__()
        self.encoder = ConvEncoder(2 * n_components)
        self.decoder = ConvDecoder(n_components)

    def forward(self, x):
        z_mean, z_logvar = self.encoder(x).chunk(2, dim=1)
        return self.decoder(z_mean), z_mean, z_logvar
''')
    with pytest.raises(AssertionError, match="same x_rec twice"):
        checks.judge_conv_vae(checks.collect_conv_vae(namespace["ConvVAE"]))


def test_sigmoid_discriminator_is_named(reference):
    namespace = namespace_with(reference, variants.SIGMOID_DISCRIMINATOR)
    with pytest.raises(AssertionError, match="no\\s+sigmoid at the end"):
        checks.judge_discriminator(checks.collect_discriminator(namespace["Discriminator"]))


# --- the GAN losses: judges name the mistake -----------------------------------------------------

def correct_discriminator_loss(prior, codes):
    return F.softplus(-prior).mean() + F.softplus(codes).mean()


def test_judge_discriminator_loss_names_the_mistake():
    checks.judge_discriminator_loss(checks.collect_discriminator_loss(correct_discriminator_loss))
    mistakes = {
        "labels swapped": lambda p, c: F.softplus(p).mean() + F.softplus(-c).mean(),
        "averaged the two terms": lambda p, c: 0.5 * correct_discriminator_loss(p, c),
        "one mean over all logits": lambda p, c: F.binary_cross_entropy_with_logits(
            torch.cat([p, c]), torch.cat([torch.ones_like(p), torch.zeros_like(c)])),
        "summed over the batch": lambda p, c: F.softplus(-p).sum() + F.softplus(c).sum(),
        "applied a sigmoid": lambda p, c: correct_discriminator_loss(torch.sigmoid(p), torch.sigmoid(c)),
        "returned inf": lambda p, c: -torch.log(torch.sigmoid(p)).mean() - torch.log(1 - torch.sigmoid(c)).mean(),
        "gradient of discriminator_loss": lambda p, c: (F.binary_cross_entropy(torch.sigmoid(p), torch.ones_like(p))
                                                 + F.binary_cross_entropy(torch.sigmoid(c), torch.zeros_like(c))),
        "differentiable": lambda p, c: correct_discriminator_loss(p, c).detach(),
        "scalar": lambda p, c: F.softplus(-p).mean(dim=1) + F.softplus(c).mean(),
    }
    for hint, wrong in mistakes.items():
        with pytest.raises(AssertionError, match=hint):
            checks.judge_discriminator_loss(checks.collect_discriminator_loss(wrong))


def test_judge_generator_loss_names_the_mistake():
    checks.judge_generator_loss(checks.collect_generator_loss(lambda c: F.softplus(-c).mean()))
    mistakes = {
        "saturating minimax loss": lambda c: -F.softplus(c).mean(),
        "fall as the discriminator": lambda c: F.softplus(c).mean(),  # codes labelled 0
        "summed over the batch": lambda c: F.softplus(-c).sum(),
        "applied a sigmoid": lambda c: F.softplus(-torch.sigmoid(c)).mean(),
        "returned inf": lambda c: -torch.log(torch.sigmoid(c)).mean(),
    }
    for hint, wrong in mistakes.items():
        with pytest.raises(AssertionError, match=hint):
            checks.judge_generator_loss(checks.collect_generator_loss(wrong))


def test_generator_hints_for_values_that_keep_the_ordering():
    codes = torch.tensor([[0.3], [-1.2]])
    saturating = float(-F.softplus(codes.double()).mean())
    assert "saturating" in checks._generator_hint(saturating, codes)
    assert "labelled the codes 0" in checks._generator_hint(float(F.softplus(codes.double()).mean()), codes)


# --- the adversarial autoencoder's codes ---------------------------------------------------------

def test_prior_samples_pass_and_mismatched_codes_fail():
    samples = torch.randn(2000, 8, generator=torch.Generator().manual_seed(7))
    checks.judge_aae_codes(samples)
    with pytest.raises(AssertionError, match="mean of"):
        checks.judge_aae_codes(samples + torch.tensor([1.5, 0, 0, 0, 0, 0, 0, 0]))
    with pytest.raises(AssertionError, match="variances"):
        checks.judge_aae_codes(0.5 * samples)
    with pytest.raises(AssertionError, match="MMD"):
        checks.judge_aae_codes(samples + 0.7)  # every mean and variance within bounds, the joint shifted


def test_plain_autoencoder_codes_fail_the_prior_check(reference, monkeypatch):
    """The reference's plain 10-D convolutional autoencoder: its first 8 code dimensions are far from N(0, I)."""
    monkeypatch.chdir(pipeline.train_reference("5_conv_aae"))
    model = torch.nn.Sequential(reference["ConvEncoder"](10), reference["ConvDecoder"](10))
    checks.load_submitted(model, checks.AE_FILE)
    images, _ = checks.split("test")
    with torch.no_grad():
        codes = model[0](images)[:, :8]
    with pytest.raises(AssertionError):
        checks.judge_aae_codes(codes)
    assert checks.code_statistics(codes)["mmd"] > 1.0


def test_reference_aae_codes_pass_with_their_figures(reference, monkeypatch):
    monkeypatch.chdir(pipeline.train_reference("5_conv_aae"))
    out = checks.collect_aae_trained(reference["ConvEncoder"], reference["ConvDecoder"])
    checks.judge_aae_trained(out)
    stats = checks.code_statistics(out["codes"])
    assert stats["mmd"] == pytest.approx(checks.FIGURES["aae_mmd"].reference, abs=0.02)


def test_thresholds_lie_on_the_safe_side_of_the_reference():
    for name, figure in checks.FIGURES.items():
        if figure.higher_is_better:
            assert figure.threshold < figure.reference, name
        else:
            assert figure.threshold > figure.reference, name


def test_batch_normalisation_does_not_crash_the_shape_checks(reference):
    namespace = namespace_with(reference, '''
class Discriminator(nn.Module):
    def __init__(self, n_components):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(n_components, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 1))

    def forward(self, z):
        return self.layers(z)


class ConvEncoder(nn.Module):
    def __init__(self, n_components):
        super().__init__()
        self.layers = nn.Sequential(nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.ReLU(),
                                    nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(),
                                    nn.Linear(32 * 7 * 7, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, n_components))

    def forward(self, x):
        return self.layers(x)
''')
    checks.judge_conv_encoder_decoder(checks.collect_conv_encoder_decoder(namespace["ConvEncoder"], namespace["ConvDecoder"]))
    checks.check_discriminator(namespace["Discriminator"])
