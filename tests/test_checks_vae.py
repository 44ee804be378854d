"""Unit tests of 3_vae's collectors, judges, formulas and messages, beyond the variant sweep in test_checks.py."""
from __future__ import annotations

import ast
import inspect
import math
import re
from pathlib import Path

import pytest
import torch

from grader import notebooks, pipeline
from grader.collect import common as collect_common
from grader.collect import vae as collect
from grader.collect.common import SEED_ENV, Inputs, split, store
from grader.judge import judges_of
from grader.judge import vae as judge
from grader.judge.common import judge_cell

SOURCE = notebooks.build_notebook(pipeline.SOURCE / "3_vae.py")
INPUTS = Inputs(20261122)


def reference_namespace() -> dict:
    """The reference solution's definitions (no training)."""
    return notebooks.definitions(SOURCE)


def leaves(value) -> list[torch.Tensor]:
    """The tensors inside nested tuples and lists, in order."""
    if isinstance(value, torch.Tensor):
        return [value]
    return [tensor for item in value for tensor in leaves(item)]


def correct_kl(mu: torch.Tensor, lv: torch.Tensor) -> torch.Tensor:
    """A correct loss_kl, written here as a student would."""
    return 0.5 * (lv.exp() + mu ** 2 - 1 - lv).sum(1).mean()


# --- the grader's formulas -----------------------------------------------------------------------

def test_kl_closed_form_matches_the_known_value():
    value = judge.kl_closed_form(torch.zeros(3, 3), torch.full((3, 3), math.log(2))).mean()
    assert abs(float(value) - 0.46028) < 1e-5
    assert float(judge.kl_closed_form(torch.zeros(4, 6), torch.zeros(4, 6)).abs().max()) == 0.0


def test_kl_closed_form_agrees_with_monte_carlo_and_torch_distributions():
    from torch.distributions import Normal, kl_divergence

    generator = torch.Generator().manual_seed(0)
    z_mean, z_logvar = torch.randn(6, 4, generator=generator), torch.randn(6, 4, generator=generator)
    exact = judge.kl_closed_form(z_mean, z_logvar)
    estimate, standard_error = judge.kl_monte_carlo(z_mean, z_logvar, n_samples=50_000, seed=1)
    assert abs(estimate - float(exact.mean())) < 4 * standard_error
    library = kl_divergence(Normal(z_mean.double(), (0.5 * z_logvar.double()).exp()), Normal(0.0, 1.0))
    assert torch.allclose(library.sum(1), exact, atol=1e-9)


def test_gaussian_nll_with_and_without_the_constant():
    from torch.distributions import Normal

    generator = torch.Generator().manual_seed(2)
    y_mean, y_logvar, x = (torch.randn(3, 1, 28, 28, generator=generator) for _ in range(3))
    without = judge.gaussian_nll(y_mean, y_logvar, x)
    with_constant = judge.gaussian_nll(y_mean, y_logvar, x, constant=True)
    constant = torch.full((3,), 784 * 0.5 * math.log(2 * math.pi), dtype=torch.float64)
    assert torch.allclose(with_constant - without, constant)
    library = -Normal(y_mean.double(), (0.5 * y_logvar.double()).exp()).log_prob(x.double()).flatten(1).sum(1)
    assert torch.allclose(with_constant, library)


def test_bce_matches_torch():
    generator = torch.Generator().manual_seed(3)
    x_rec = torch.rand(2, 1, 28, 28, generator=generator) * 0.98 + 0.01
    x = torch.rand(2, 1, 28, 28, generator=generator)
    assert abs(float(judge.bce(x_rec, x)) - float(torch.nn.functional.binary_cross_entropy(x_rec, x))) < 1e-6


def test_negative_elbo_is_the_closed_form_kl_plus_the_nll_and_never_finite_on_garbage():
    from torch.distributions import Normal, kl_divergence

    generator = torch.Generator().manual_seed(4)
    images = torch.randn(3, 1, 28, 28, generator=generator)
    outputs = {"z_mean": torch.randn(3, 10, generator=generator), "z_logvar": torch.randn(3, 10, generator=generator),
               "y_mean": torch.randn(3, 1, 28, 28, generator=generator),
               "y_logvar": torch.randn(3, 1, 28, 28, generator=generator)}
    kl = kl_divergence(Normal(outputs["z_mean"].double(), (0.5 * outputs["z_logvar"].double()).exp()),
                       Normal(0.0, 1.0)).sum(1)
    nll = -Normal(outputs["y_mean"].double(), (0.5 * outputs["y_logvar"].double()).exp()).log_prob(
        images.double()).flatten(1).sum(1) - 784 * 0.5 * math.log(2 * math.pi)
    assert torch.allclose(judge.negative_elbo(outputs, images, "a test"), kl + nll)
    broken = dict(outputs, y_logvar=torch.full_like(outputs["y_logvar"], float("nan")))
    assert not judge.FIGURES["brief_training_elbo"].passes(float(judge.negative_elbo(broken, images, "a test").mean()))
    with pytest.raises(AssertionError, match="shape"):
        judge.negative_elbo(dict(outputs, z_mean=outputs["z_mean"][:2]), images, "a test")


# --- secret inputs -------------------------------------------------------------------------------

def test_inputs_depend_on_the_secret_seed_and_both_sides_derive_the_same():
    other = Inputs(INPUTS.seed + 1)
    for make in (collect.sample_parameters, collect.kl_cases, collect.loglik_cases, collect.bce_cases,
                 collect.brief_test_images, collect.trained_test_set, collect.classifier_images,
                 lambda inputs: collect.encoder_images(inputs, 7)):  # subsets of all images are all images offline
        first, again, different = make(INPUTS), make(INPUTS), make(other)
        assert all(torch.equal(a, b) for a, b in zip(leaves(first), leaves(again)))
        assert not all(torch.equal(a, b) for a, b in zip(leaves(first), leaves(different)))


def test_answers_collected_on_other_inputs_fail():
    out = collect.collect_loss_kl(Inputs(1), correct_kl)
    judge.judge_loss_kl(out, Inputs(1))
    with pytest.raises(AssertionError, match="expected"):
        judge.judge_loss_kl(out, Inputs(2))


# --- judges on collected data --------------------------------------------------------------------

def kl_out(function) -> dict:
    """What collect_loss_kl returns for a loss_kl computed by `function`."""
    return collect.collect_loss_kl(INPUTS, function)


def test_judge_loss_kl_names_the_mistake():
    judge.judge_loss_kl(kl_out(correct_kl), INPUTS)
    mistakes = {
        "sign is flipped": lambda mu, lv: -correct_kl(mu, lv),
        "factor 1/2 is missing": lambda mu, lv: 2 * correct_kl(mu, lv),
        "averaged over the code dimensions": lambda mu, lv: correct_kl(mu, lv) / mu.shape[1],
        "summed over the batch": lambda mu, lv: correct_kl(mu, lv) * mu.shape[0],
    }
    for hint, wrong in mistakes.items():
        with pytest.raises(AssertionError, match=hint):
            judge.judge_loss_kl(kl_out(wrong), INPUTS)


def test_judge_loss_kl_rejects_a_small_error():
    out = kl_out(correct_kl)
    index = next(i for i, (mu, _) in enumerate(collect.kl_cases(INPUTS)) if tuple(mu.shape) == (8, 10))
    out["cases"][index]["value"] = out["cases"][index]["value"] + 0.05
    with pytest.raises(AssertionError, match="expected"):
        judge.judge_loss_kl(out, INPUTS)


def test_monte_carlo_estimate_would_catch_a_wrong_closed_form(monkeypatch):
    def skewed_per_image(mu, lv):
        return 1.05 * 0.5 * (lv.double().exp() + mu.double() ** 2 - 1 - lv.double()).sum(1)

    out = kl_out(lambda mu, lv: skewed_per_image(mu, lv).mean())
    monkeypatch.setattr(judge, "kl_closed_form", skewed_per_image)
    with pytest.raises(AssertionError, match="sampling z ~ q"):
        judge.judge_loss_kl(out, INPUTS)


def test_judge_loss_kl_rejects_non_scalars_detached_values_and_wrong_gradients():
    with pytest.raises(AssertionError, match="scalar"):
        judge.judge_loss_kl(kl_out(lambda mu, lv: 0.5 * (lv.exp() + mu ** 2 - 1 - lv).sum(1)), INPUTS)
    with pytest.raises(AssertionError, match="differentiable"):
        judge.judge_loss_kl(kl_out(lambda mu, lv: correct_kl(mu, lv).detach()), INPUTS)
    with pytest.raises(AssertionError, match="gradients of loss_kl do not match"):
        judge.judge_loss_kl(kl_out(lambda mu, lv: correct_kl(mu.detach(), lv) + 0 * mu.sum()), INPUTS)


def sample_out(scale, seed: int = 0, inputs: Inputs = INPUTS) -> dict:
    """What collect_sample would return for z = z_mean + scale(z_logvar) * eps."""
    generator = torch.Generator().manual_seed(seed)
    mean, logvar = collect.sample_parameters(inputs)
    rows, dims, draws = *mean.shape, collect.SAMPLE_DRAWS
    big = mean.repeat(draws, 1) + scale(logvar.repeat(draws, 1)) * torch.randn(draws * rows, dims, generator=generator)
    eps = torch.randn(rows, dims, generator=generator)
    z = mean + scale(logvar) * eps
    return {"draws": big, "first": z, "second": z + 1, "z": z, "grad_mean": torch.ones(rows, dims),
            "grad_logvar": 0.5 * scale(logvar) * eps}


@pytest.mark.parametrize("seed", range(5))
def test_judge_sample_accepts_correct_samples_whatever_the_seed(seed):
    judge.judge_sample(sample_out(lambda lv: torch.exp(0.5 * lv), seed, Inputs(seed)), Inputs(seed))


def test_judge_sample_accepts_the_reference_sample():
    judge.judge_sample(collect.collect_sample(INPUTS, reference_namespace()["Encoder"]), INPUTS)


def test_judge_sample_names_the_mistake():
    with pytest.raises(AssertionError, match="exp\\(z_logvar\\) as the standard deviation"):
        judge.judge_sample(sample_out(torch.exp), INPUTS)
    with pytest.raises(AssertionError, match="z_logvar itself as the standard deviation"):
        judge.judge_sample(sample_out(lambda lv: lv), INPUTS)
    with pytest.raises(AssertionError, match="do not vary"):
        judge.judge_sample(sample_out(lambda lv: 0 * lv), INPUTS)
    same = sample_out(lambda lv: torch.exp(0.5 * lv))
    with pytest.raises(AssertionError, match="same values"):
        judge.judge_sample(dict(same, second=same["first"]), INPUTS)
    with pytest.raises(AssertionError, match="Gradients do not flow"):
        judge.judge_sample(dict(same, grad_logvar=None), INPUTS)
    with pytest.raises(AssertionError, match="gradient of the samples with respect to z_logvar"):
        judge.judge_sample(dict(same, grad_logvar=same["grad_logvar"] + 0.1), INPUTS)


def test_standard_error_tolerances_come_from_the_sample_size():
    # Six standard errors of the variance for 20,000 draws: 6 * sqrt(2 / 19,999) = 6 %.
    with pytest.raises(AssertionError, match="variance"):
        judge.judge_sample(sample_out(lambda lv: 1.1 * torch.exp(0.5 * lv)), INPUTS)  # 21 % too much variance
    judge.judge_sample(sample_out(lambda lv: 1.005 * torch.exp(0.5 * lv)), INPUTS)  # 1 %: within the noise


def test_judge_loss_loglik_accepts_both_conventions_and_names_mistakes():
    def nll(m, lv, x, constant=False):
        per_pixel = 0.5 * (lv + (x - m) ** 2 / lv.exp()) + (0.5 * math.log(2 * math.pi) if constant else 0.0)
        return per_pixel.flatten(1).sum(1).mean()

    def judged(function) -> None:
        judge.judge_loss_loglik(collect.collect_loss_loglik(INPUTS, function), INPUTS)

    judged(nll)
    judged(lambda m, lv, x: nll(m, lv, x, True))
    with pytest.raises(AssertionError, match="averaged over the pixels"):
        judged(lambda m, lv, x: nll(m, lv, x) / 784)
    with pytest.raises(AssertionError, match="log-variance term"):
        judged(lambda m, lv, x: (0.5 * (x - m) ** 2 / lv.exp()).flatten(1).sum(1).mean())
    with pytest.raises(AssertionError, match="differentiable"):
        judged(lambda m, lv, x: nll(m.detach(), lv, x) + 0 * m.sum())


def test_judge_loss_bce_catches_probabilities_treated_as_logits():
    def judged(function) -> None:
        judge.judge_loss_bce(collect.collect_loss_bce(INPUTS, function), INPUTS)

    judged(torch.nn.functional.binary_cross_entropy)
    with pytest.raises(AssertionError, match="logits"):
        judged(torch.nn.functional.binary_cross_entropy_with_logits)
    with pytest.raises(AssertionError, match="summed over pixels"):
        judged(lambda p, x: torch.nn.functional.binary_cross_entropy(p, x, reduction="sum") / len(x))
    with pytest.raises(AssertionError, match="differentiable"):
        judged(lambda p, x: torch.nn.functional.binary_cross_entropy(p.detach(), x))


def test_judge_decoder_requires_a_floor():
    out = collect.collect_decoder(INPUTS, reference_namespace()["Decoder"])
    judge.judge_decoder(out, INPUTS)
    key = f"logvar10_{collect.HUGE_CODES}"
    out[key] = out[key] - 20
    with pytest.raises(AssertionError, match="floor"):
        judge.judge_decoder(out, INPUTS)


def vae_outputs_for(images: torch.Tensor, y_logvar: torch.Tensor) -> dict:
    """Outputs of a model whose codes are the prior and whose variances are `y_logvar`."""
    return {"z_mean": torch.zeros(len(images), 10), "z_logvar": torch.zeros(len(images), 10),
            "y_mean": torch.zeros_like(images), "y_logvar": y_logvar}


def test_judge_vae_learns_computes_the_elbo_from_the_outputs():
    clean = split("test")[0][collect.brief_subsets(INPUTS)[1]]
    images = collect.brief_test_images(INPUTS)
    good = vae_outputs_for(images, torch.log(clean.clamp_min(math.exp(-3)) ** 2))
    fresh = vae_outputs_for(images, torch.zeros_like(images))
    out = {"before": fresh, "after": good, "after_huge_logvar": torch.full((64, 1, 28, 28), -6.0)}
    judge.judge_vae_learns(out, INPUTS)
    with pytest.raises(AssertionError, match="negative ELBO"):
        judge.judge_vae_learns(dict(out, after=fresh), INPUTS)
    with pytest.raises(AssertionError, match="negative ELBO of nan"):
        judge.judge_vae_learns(dict(out, after=dict(good, y_mean=good["y_mean"] * float("nan"))), INPUTS)
    with pytest.raises(AssertionError, match="floor"):
        judge.judge_vae_learns(dict(out, after_huge_logvar=torch.full((64, 1, 28, 28), -12.0)), INPUTS)
    with pytest.raises(AssertionError, match="negative ELBO"):  # an answer for other images earns nothing
        judge.judge_vae_learns(out, Inputs(INPUTS.seed + 1))


def test_trained_judges_work_on_plain_tensors_alone():
    clean, noisy = collect.trained_test_set(INPUTS)
    good = dict(vae_outputs_for(noisy, torch.log(clean.clamp_min(math.exp(-3)) ** 2)),
                y_logvar_of_means=torch.log((clean + 0.01) ** 2))
    judge.judge_vae_trained(good, INPUTS)
    with pytest.raises(AssertionError, match="negative ELBO"):
        judge.judge_vae_trained(dict(good, y_logvar=torch.zeros_like(noisy)), INPUTS)
    with pytest.raises(AssertionError, match="standard deviations"):
        judge.judge_vae_trained(dict(good, y_logvar_of_means=torch.full_like(clean, 2 * math.log(clean.mean()))),
                                INPUTS)
    images = split("test")[0]
    judge.judge_bernoulli_trained({"reconstructions": images * 0.98 + 0.01}, INPUTS)
    with pytest.raises(AssertionError, match="BCE"):
        judge.judge_bernoulli_trained({"reconstructions": torch.full_like(images, 0.5)}, INPUTS)


def test_judge_vae_classifier_uses_its_own_labels():
    train_labels = split("train")[1][collect.classifier_subset(INPUTS)]
    test_labels = split("test")[1]
    out = {"train_codes": torch.nn.functional.one_hot(train_labels, 10).float(),
           "test_codes": torch.nn.functional.one_hot(test_labels, 10).float()}
    judge.judge_vae_classifier(out, INPUTS)
    with pytest.raises(AssertionError, match="accuracy"):
        judge.judge_vae_classifier(dict(out, test_codes=out["test_codes"].roll(1, dims=0)), INPUTS)


def test_judge_bernoulli_vae_checks_the_layers():
    out = collect.collect_bernoulli_vae(INPUTS, reference_namespace()["BernoulliVAE"])
    judge.judge_bernoulli_vae(out, INPUTS)
    assert judge.BERNOULLI_PARAMETERS == 220196
    with pytest.raises(AssertionError, match="784-128-64"):
        judge.judge_bernoulli_vae(dict(out, layers=out["layers"][1:]), INPUTS)
    with pytest.raises(AssertionError, match="same images"):
        judge.judge_bernoulli_vae(dict(out, forward10=out["forward10"][:1] + [out["forward10"][1] + 1,
                                                                              out["forward10"][2]]), INPUTS)


@pytest.mark.parametrize("grade_id", sorted(judges_of("3_vae")))
def test_judges_never_pass_on_garbage(grade_id):
    nan = torch.full((3,), float("nan"))
    for garbage in ({}, {"cases": "cases"}, {"cases": [{}] * 9}, {key: nan for key in
                    ("before", "after", "z_mean", "draws", "train_codes", "test_codes", "reconstructions", "layers")}):
        with pytest.raises(Exception):
            judges_of("3_vae")[grade_id](garbage, INPUTS)


# --- collection holds nothing that grades ----------------------------------------------------------

def test_collection_imports_no_grading_code_and_holds_no_figures():
    tree = ast.parse(inspect.getsource(collect))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert not any(name.startswith(("grader.reference", "grader.judge", "grader.checks")) for name in imported)
    text = inspect.getsource(collect)
    assert "FIGURES" not in text and "threshold" not in text.lower()


def every_collect_function() -> list:
    """Every function a student can import from grader.collect.vae and grader.collect.common."""
    return [value for module in (collect, collect_common) for value in vars(module).values()
            if inspect.isfunction(value)]


@pytest.mark.parametrize("function", every_collect_function(), ids=lambda f: f"{f.__module__}.{f.__name__}")
def test_nothing_in_collection_passes_as_a_graded_function(function, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a function with side effects (store) writes here
    monkeypatch.delenv(SEED_ENV, raising=False)

    class Encoder(torch.nn.Module):
        def __init__(self, n_components):
            super().__init__()

        def sample(self, z_mean, z_logvar):
            return function(z_mean, z_logvar)

    cases = [("loss_kl", collect.collect_loss_kl, judge.judge_loss_kl, function),
             ("loss_loglik", collect.collect_loss_loglik, judge.judge_loss_loglik, function),
             ("loss_bce", collect.collect_loss_bce, judge.judge_loss_bce, function),
             ("sample", collect.collect_sample, judge.judge_sample, Encoder)]
    for name, collector, judged, student in cases:
        with pytest.raises(Exception):
            judged(collector(INPUTS, student), INPUTS)


# --- messages and notebook structure -------------------------------------------------------------

def verdict_of(grade_id: str, collector, *student_objects) -> str:
    """The message of the verdict on `collector` run through store and judge_cell in the current folder."""
    store(grade_id, collector, *student_objects)
    verdict = judge_cell(judges_of("3_vae")[grade_id], grade_id, Path.cwd(), INPUTS)
    assert not verdict.passed
    return verdict.message


def test_missing_checkpoints_say_what_to_do(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(SEED_ENV, str(INPUTS.seed))
    namespace = reference_namespace()
    message = verdict_of("test_vae_trained", collect.collect_vae_trained, namespace["Encoder"], namespace["Decoder"])
    assert re.search("3_vae_encoder.pth was not found.*submit", message), message
    message = verdict_of("test_bernoulli_trained", collect.collect_bernoulli_trained, namespace["BernoulliVAE"])
    assert "3_vae_bernoulli.pth was not found" in message, message


def test_stubs_fail_with_a_message(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(SEED_ENV, str(INPUTS.seed))

    def loss_kl(*args):
        raise NotImplementedError()

    assert "not implemented" in verdict_of("test_loss_kl", collect.collect_loss_kl, loss_kl)


def test_test_cells_end_with_a_statement_and_checkpoint_checks_come_first():
    for grade_id, cell in notebooks.cells_by_grade_id(SOURCE).items():
        if not cell.metadata["nbgrader"]["grade"]:
            continue
        body = ast.parse(cell.source).body
        assert not body or not isinstance(body[-1], ast.Expr) or isinstance(body[-1].value, ast.Call), grade_id
        checkpoint_collectors = ("collect_vae_trained", "collect_vae_codes", "collect_bernoulli_trained")
        if any(name in cell.source for name in checkpoint_collectors):
            code = [line for line in cell.source.splitlines()
                    if line.strip() and (line.startswith("###") or not line.startswith("#"))]
            assert code[0] == "### BEGIN HIDDEN TESTS", f"{grade_id}: put the hidden checkpoint check first"


def test_checkpoint_names_match_what_the_notebook_saves():
    text = (pipeline.SOURCE / "3_vae.py").read_text()
    for name in (collect.ENCODER_FILE, collect.DECODER_FILE, collect.BERNOULLI_FILE):
        assert 'save_model(' in text and f'"{name}"' in text and name.startswith("3_vae_")
