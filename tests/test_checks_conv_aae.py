"""Unit tests of 5_conv_aae's collectors, judges, formulas and messages, beyond the variant sweep in test_checks.py."""
from __future__ import annotations

import math
from pathlib import Path
import pytest
import torch
import torch.nn.functional as F

from grader import notebooks, pipeline
from grader.collect import conv_aae as collect
from grader.collect.common import Inputs, collected_path
from grader.collect.record import encode
from grader.judge import judges_of
from grader.judge import conv_aae as judge
from grader.judge.common import judge_cell
from grader.variants import conv_aae as variants

SOURCE = notebooks.build_notebook(pipeline.SOURCE / "5_conv_aae.py")
INPUTS = Inputs(7)


@pytest.fixture(scope="module")
def reference() -> dict:
    """The namespace of the reference solution's set-up and solution cells."""
    return notebooks.definitions(SOURCE)


def namespace_with(reference: dict, code: str) -> dict:
    """The reference namespace with `code` (a variant's cell) executed on top of it."""
    namespace = dict(reference)
    exec(code, namespace)
    return namespace


def judged(name: str, *student_objects, inputs: Inputs = INPUTS) -> None:
    """Collect cell `test_<name>` from `student_objects` and judge it, as autograde does (without the sandbox)."""
    out = getattr(collect, f"collect_{name}")(inputs, *student_objects)
    getattr(judge, f"judge_{name}")(out, inputs)


# --- what the kernel can read --------------------------------------------------------------------

def test_collection_holds_no_figure_and_no_reference_formula():
    text = Path(collect.__file__).read_text()
    for forbidden in ("grader.reference", "grader.judge", "FIGURES", "threshold", "softplus", "logsigmoid",
                      "negative_elbo", "mmd(", "cdist", "binary_cross_entropy(", "sigmoid(-"):
        assert forbidden not in text, forbidden


def test_secret_inputs_depend_on_the_seed():
    first, second = collect.loss_cases(Inputs(1)), collect.loss_cases(Inputs(2))
    for (_, p1, c1), (_, p2, c2) in zip(first, second):
        assert not torch.equal(p1, p2) and not torch.equal(c1, c2)
    assert not torch.equal(collect.brief_subsets(Inputs(1))[1], collect.brief_subsets(Inputs(2))[1])
    for name, prior, codes in first[2:]:  # the large cases: one logit of each sign within (magnitude / 2, magnitude]
        magnitude = 1000.0 if name.endswith("1000") else 100.0
        for logits in (prior, codes):
            assert magnitude / 2 < logits.max() <= magnitude and -magnitude <= logits.min() < -magnitude / 2


def test_answers_for_another_seed_earn_nothing():
    """A collection made with the inputs of one seed fails the judge of another: the kernel cannot reuse answers."""
    def correct(prior, codes):
        """A correct discriminator_loss."""
        return F.softplus(-prior).mean() + F.softplus(codes).mean()

    judge.judge_discriminator_loss(collect.collect_discriminator_loss(Inputs(1), correct), Inputs(1))
    with pytest.raises(AssertionError, match="expected"):
        judge.judge_discriminator_loss(collect.collect_discriminator_loss(Inputs(1), correct), Inputs(2))
    with pytest.raises(AssertionError, match="expected"):
        judge.judge_generator_loss(collect.collect_generator_loss(Inputs(1), lambda c: F.softplus(-c).mean()),
                                   Inputs(2))


MALFORMED = [{}, {"cases": "x", "ordering": 3}, {"cases": [{"value": "Tensor", "grads": [1]}] * 4},
             {"modules2": True, "modules10": True, "module2": True, "module10": True, "module8": True,
              "codes2_1": torch.zeros(1, 2), "encoder_calls2_1": [{"kind": ["Conv2d"], "conv2d": "yes"}]},
             {"before": torch.zeros(3), "after": [1, 2], "reconstructions": torch.full((2000, 1, 28, 28), math.nan),
              "x_rec": "Tensor", "codes": torch.zeros(2000, 8, dtype=torch.long), "prior_logits": torch.zeros(2000)}]


@pytest.mark.parametrize("out", MALFORMED)
def test_judges_fail_malformed_collections_with_a_message(out, tmp_path):
    for grade_id, judge_function in judges_of("5_conv_aae").items():
        path = collected_path(grade_id, tmp_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode(out))
        verdict = judge_cell(judge_function, grade_id, tmp_path, INPUTS)
        assert not verdict.passed, grade_id
        assert "malformed" not in verdict.message, (grade_id, verdict.message)


# --- the grader's formulas -----------------------------------------------------------------------

def test_bce_logits_matches_torch_and_stays_finite():
    generator = torch.Generator().manual_seed(0)
    logits = 4 * torch.randn(7, 1, generator=generator)
    for label in (0, 1):
        target = torch.full_like(logits, float(label))
        assert abs(float(judge.bce_logits(logits, label)) - float(F.binary_cross_entropy_with_logits(logits, target))) < 1e-6
    extreme = torch.tensor([[1000.0], [-1000.0]])
    assert float(judge.bce_logits(extreme, 1)) == pytest.approx(500.0)
    assert float(judge.bce_logits(extreme, 0)) == pytest.approx(500.0)


def test_gan_loss_formulas_known_values():
    zeros = torch.zeros(3, 1)
    assert float(judge.discriminator_loss_formula(zeros, torch.zeros(5, 1))) == pytest.approx(2 * math.log(2))
    assert float(judge.generator_loss_formula(zeros)) == pytest.approx(math.log(2))
    assert float(judge.generator_loss_formula(torch.full((2, 1), 100.0))) < 1e-40


def test_negative_elbo_matches_torch():
    generator = torch.Generator().manual_seed(1)
    x_rec, x = torch.rand(3, 1, 28, 28, generator=generator) * 0.98 + 0.01, torch.rand(3, 1, 28, 28, generator=generator)
    z_mean, z_logvar = torch.randn(3, 4, generator=generator), torch.randn(3, 4, generator=generator)
    bce = F.binary_cross_entropy(x_rec, x, reduction="none").flatten(1).sum(1)
    kl = 0.5 * (z_logvar.exp() + z_mean ** 2 - 1 - z_logvar).sum(1)
    assert torch.allclose(judge.negative_elbo(x_rec, x, z_mean, z_logvar).float(), bce + kl, rtol=1e-5)


def test_mmd_is_near_zero_for_the_prior_and_grows_with_the_mismatch():
    prior = judge.prior_samples(INPUTS, 1000, 8)
    same = torch.randn(1000, 8, generator=torch.Generator().manual_seed(3))
    assert abs(judge.mmd(same, prior)) < 0.01
    assert judge.mmd(same + 0.3, prior) < judge.mmd(same + 1.0, prior)
    assert judge.mmd(2 * same, prior) > 0.2


def test_prior_samples_are_drawn_in_the_judge_from_the_secret_seed():
    assert torch.equal(judge.prior_samples(Inputs(1), 50, 8), judge.prior_samples(Inputs(1), 50, 8))
    assert not torch.equal(judge.prior_samples(Inputs(1), 50, 8), judge.prior_samples(Inputs(2), 50, 8))


# --- convolutional structure ---------------------------------------------------------------------

def encoder_calls(reference: dict, code: str) -> list[dict]:
    """The layers a ConvEncoder(10) defined by `code` applies to two random images."""
    encoder = namespace_with(reference, code)["ConvEncoder"](10)
    _, calls = collect.traced_call(encoder, torch.rand(2, 1, 28, 28))
    return calls


def test_reference_encoder_is_convolutional(reference):
    _, calls = collect.traced_call(reference["ConvEncoder"](10), torch.rand(2, 1, 28, 28))
    judge.judge_convolutional(calls, "ConvEncoder(10)")


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
        judge.judge_convolutional(encoder_calls(reference, code), "ConvEncoder(10)")


def test_forged_layer_traces_are_rejected():
    with pytest.raises(AssertionError, match="expected form"):
        judge.judge_convolutional([{"kind": "Conv2d", "conv2d": 1, "transposed": False, "weights": True, "index": 0}],
                                  "ConvEncoder(10)")
    with pytest.raises(AssertionError, match="expected form"):
        judge.judge_convolutional("Conv2d Conv2d", "ConvEncoder(10)")


def test_decoder_without_sigmoid_is_caught(reference):
    namespace = namespace_with(reference, variants.REFERENCE_DECODER.replace(", nn.Sigmoid()", ""))
    with pytest.raises(AssertionError, match="sigmoid"):
        judged("conv_encoder_decoder", namespace["ConvEncoder"], namespace["ConvDecoder"])


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
        judged("conv_encoder_decoder", namespace["ConvEncoder"], namespace["ConvDecoder"])


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
        judged("conv_vae", namespace["ConvVAE"])


def test_sigmoid_discriminator_is_named(reference):
    namespace = namespace_with(reference, variants.SIGMOID_DISCRIMINATOR)
    with pytest.raises(AssertionError, match="no\\s+sigmoid at the end"):
        judged("discriminator", namespace["Discriminator"])


def test_discriminator_of_the_wrong_shape_is_named_not_trained(reference):
    namespace = namespace_with(reference, '''
class Discriminator(nn.Module):
    def __init__(self, n_components):
        super().__init__()
        self.layer = nn.Linear(n_components, 2)

    def forward(self, z):
        return self.layer(z)
''')
    out = collect.collect_discriminator(INPUTS, namespace["Discriminator"])
    assert "prior_logits" not in out
    with pytest.raises(AssertionError, match="shape \\(1, 1\\)"):
        judge.judge_discriminator(out, INPUTS)


# --- the GAN losses: judges name the mistake -----------------------------------------------------

def correct_discriminator_loss(prior, codes):
    """The course's discriminator loss, written with softplus."""
    return F.softplus(-prior).mean() + F.softplus(codes).mean()


@pytest.mark.parametrize("seed", range(4))
def test_correct_losses_pass_whatever_the_seed(seed):
    judged("discriminator_loss", correct_discriminator_loss, inputs=Inputs(seed))
    judged("generator_loss", lambda c: F.softplus(-c).mean(), inputs=Inputs(seed))


def test_judge_discriminator_loss_names_the_mistake():
    mistakes = {
        "labels swapped": lambda p, c: F.softplus(p).mean() + F.softplus(-c).mean(),
        "averaged the two terms": lambda p, c: 0.5 * correct_discriminator_loss(p, c),
        "one mean over all logits": lambda p, c: F.binary_cross_entropy_with_logits(
            torch.cat([p, c]), torch.cat([torch.ones_like(p), torch.zeros_like(c)])),
        "summed over the batch": lambda p, c: F.softplus(-p).sum() + F.softplus(c).sum(),
        "applied a sigmoid": lambda p, c: correct_discriminator_loss(torch.sigmoid(p), torch.sigmoid(c)),
        "returned inf": lambda p, c: -torch.log(torch.sigmoid(p)).mean() - torch.log(1 - torch.sigmoid(c)).mean(),
        "not for very large ones": lambda p, c: (F.binary_cross_entropy(torch.sigmoid(p), torch.ones_like(p))
                                                 + F.binary_cross_entropy(torch.sigmoid(c), torch.zeros_like(c))),
        "gradient of discriminator_loss": lambda p, c: correct_discriminator_loss(p, c) + 0.1 * (c - c.detach()).sum(),
        "differentiable": lambda p, c: correct_discriminator_loss(p, c).detach(),
        "scalar": lambda p, c: F.softplus(-p).mean(dim=1) + F.softplus(c).mean(),
    }
    for hint, wrong in mistakes.items():
        with pytest.raises(AssertionError, match=hint):
            judged("discriminator_loss", wrong)


def test_judge_generator_loss_names_the_mistake():
    mistakes = {
        "saturating minimax loss": lambda c: -F.softplus(c).mean(),
        "fall as the discriminator": lambda c: F.softplus(c).mean(),  # codes labelled 0
        "summed over the batch": lambda c: F.softplus(-c).sum(),
        "applied a sigmoid": lambda c: F.softplus(-torch.sigmoid(c)).mean(),
        "returned inf": lambda c: -torch.log(torch.sigmoid(c)).mean(),
        "gradient of generator_loss": lambda c: F.softplus(-c).mean() + 0.1 * (c - c.detach()).sum(),
    }
    for hint, wrong in mistakes.items():
        with pytest.raises(AssertionError, match=hint):
            judged("generator_loss", wrong)


def test_generator_hints_for_values_that_keep_the_ordering():
    codes = torch.tensor([[0.3], [-1.2]])
    saturating = float(-F.softplus(codes.double()).mean())
    assert "saturating" in judge.generator_hint(saturating, codes)
    assert "labelled the codes 0" in judge.generator_hint(float(F.softplus(codes.double()).mean()), codes)


def test_the_judge_ignores_logits_echoed_by_the_kernel():
    """Only values and gradients are read: logits the kernel adds to the collection change nothing."""
    out = collect.collect_discriminator_loss(INPUTS, correct_discriminator_loss)
    for case in out["cases"]:
        case.update(name="random logits", prior=torch.zeros(1, 1), codes=torch.zeros(1, 1))
    judge.judge_discriminator_loss(out, INPUTS)
    wrong = collect.collect_discriminator_loss(INPUTS, lambda p, c: 0.5 * correct_discriminator_loss(p, c))
    for case, (_, prior, codes) in zip(wrong["cases"], collect.loss_cases(INPUTS)):
        case.update(prior=2 * prior, codes=2 * codes)  # logits for which the wrong values would be right
    with pytest.raises(AssertionError, match="averaged"):
        judge.judge_discriminator_loss(wrong, INPUTS)


# --- the adversarial autoencoder's codes ---------------------------------------------------------

def test_prior_samples_pass_and_mismatched_codes_fail():
    samples = torch.randn(2000, 8, generator=torch.Generator().manual_seed(7))
    judge.judge_aae_codes(samples, INPUTS)
    with pytest.raises(AssertionError, match="mean of"):
        judge.judge_aae_codes(samples + torch.tensor([1.5, 0, 0, 0, 0, 0, 0, 0]), INPUTS)
    with pytest.raises(AssertionError, match="variances"):
        judge.judge_aae_codes(0.5 * samples, INPUTS)
    with pytest.raises(AssertionError, match="MMD"):
        judge.judge_aae_codes(samples + 0.7, INPUTS)  # every mean and variance within bounds, the joint shifted


def test_plain_autoencoder_codes_fail_the_prior_check(reference, monkeypatch):
    """The reference's plain 10-D convolutional autoencoder: its first 8 code dimensions are far from N(0, I)."""
    monkeypatch.chdir(pipeline.train_reference("5_conv_aae"))
    model = torch.nn.Sequential(reference["ConvEncoder"](10), reference["ConvDecoder"](10))
    collect.load_submitted(model, collect.AE_FILE)
    images, _ = collect.split("test")
    with torch.no_grad():
        codes = model[0](images)[:, :8]
    with pytest.raises(AssertionError):
        judge.judge_aae_codes(codes, INPUTS)
    assert judge.code_statistics(codes, INPUTS)["mmd"] > 1.0


def test_reference_aae_codes_pass_with_their_figures(reference, monkeypatch):
    monkeypatch.chdir(pipeline.train_reference("5_conv_aae"))
    out = collect.collect_aae_trained(INPUTS, reference["ConvEncoder"], reference["ConvDecoder"])
    judge.judge_aae_trained(out, INPUTS)
    stats = judge.code_statistics(out["codes"], INPUTS)
    assert stats["mmd"] == pytest.approx(judge.FIGURES["aae_mmd"].reference, abs=0.02)


def test_thresholds_lie_on_the_safe_side_of_the_reference():
    for name, figure in judge.FIGURES.items():
        assert figure.passes(figure.reference), name
        assert not figure.passes(figure.threshold), name


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
    judged("conv_encoder_decoder", namespace["ConvEncoder"], namespace["ConvDecoder"])
    judged("discriminator", namespace["Discriminator"])
