"""Unit tests of 3_vae's formulas, judges and messages, beyond the variant sweep in test_checks.py."""
from __future__ import annotations

import ast
import math

import pytest
import torch

from grader import notebooks, pipeline
from grader.checks import vae as checks

SOURCE = notebooks.build_notebook(pipeline.SOURCE / "3_vae.py")


def reference_namespace() -> dict:
    return notebooks.definitions(SOURCE)


# --- the grader's formulas -----------------------------------------------------------------------

def test_kl_closed_form_matches_the_known_value():
    value = checks.kl_closed_form(torch.zeros(3, 3), torch.full((3, 3), math.log(2)))
    assert abs(float(value) - 0.46028) < 1e-5
    assert float(checks.kl_closed_form(torch.zeros(4, 6), torch.zeros(4, 6))) == 0.0


def test_kl_closed_form_agrees_with_monte_carlo_and_torch_distributions():
    from torch.distributions import Normal, kl_divergence

    generator = torch.Generator().manual_seed(0)
    z_mean, z_logvar = torch.randn(6, 4, generator=generator), torch.randn(6, 4, generator=generator)
    exact = float(checks.kl_closed_form(z_mean, z_logvar))
    estimate, standard_error = checks.kl_monte_carlo(z_mean, z_logvar, n_samples=50_000, seed=1)
    assert abs(estimate - exact) < 4 * standard_error
    library = kl_divergence(Normal(z_mean.double(), (0.5 * z_logvar.double()).exp()), Normal(0.0, 1.0))
    assert abs(float(library.sum(1).mean()) - exact) < 1e-9


def test_gaussian_nll_with_and_without_the_constant():
    from torch.distributions import Normal

    generator = torch.Generator().manual_seed(2)
    y_mean, y_logvar, x = (torch.randn(3, 1, 28, 28, generator=generator) for _ in range(3))
    without = checks.gaussian_nll(y_mean, y_logvar, x)
    with_constant = checks.gaussian_nll(y_mean, y_logvar, x, constant=True)
    assert torch.allclose(with_constant - without, torch.full((3,), 784 * 0.5 * math.log(2 * math.pi), dtype=torch.float64))
    library = -Normal(y_mean.double(), (0.5 * y_logvar.double()).exp()).log_prob(x.double()).flatten(1).sum(1)
    assert torch.allclose(with_constant, library)


def test_bce_matches_torch():
    generator = torch.Generator().manual_seed(3)
    x_rec, x = torch.rand(2, 1, 28, 28, generator=generator) * 0.98 + 0.01, torch.rand(2, 1, 28, 28, generator=generator)
    assert abs(float(checks.bce(x_rec, x)) - float(torch.nn.functional.binary_cross_entropy(x_rec, x))) < 1e-6


# --- judges on plain tensors ---------------------------------------------------------------------

def kl_out(function) -> dict:
    """What collect_loss_kl would return for a loss_kl computed by `function` (with exact gradients)."""
    return checks.collect_loss_kl(function)


def test_judge_loss_kl_names_the_mistake():
    def correct(mu, lv):
        return 0.5 * (lv.exp() + mu ** 2 - 1 - lv).sum(1).mean()

    checks.judge_loss_kl(kl_out(correct))
    mistakes = {
        "sign is flipped": lambda mu, lv: -correct(mu, lv),
        "factor 1/2 is missing": lambda mu, lv: 2 * correct(mu, lv),
        "averaged over the code dimensions": lambda mu, lv: correct(mu, lv) / mu.shape[1],
        "summed over the batch": lambda mu, lv: correct(mu, lv) * mu.shape[0],
    }
    for hint, wrong in mistakes.items():
        with pytest.raises(AssertionError, match=hint):
            checks.judge_loss_kl(kl_out(wrong))


def test_judge_loss_kl_rejects_a_small_error():
    out = kl_out(lambda mu, lv: 0.5 * (lv.exp() + mu ** 2 - 1 - lv).sum(1).mean())
    case = next(c for c in out["cases"] if tuple(c["z_mean"].shape) == (8, 10))
    case["value"] = case["value"] + 0.05
    with pytest.raises(AssertionError, match="expected"):
        checks.judge_loss_kl(out)


def test_monte_carlo_estimate_would_catch_a_wrong_closed_form(monkeypatch):
    def skewed(mu, lv):
        return 1.05 * 0.5 * (lv.double().exp() + mu.double() ** 2 - 1 - lv.double()).sum(1).mean()

    out = kl_out(skewed)
    monkeypatch.setattr(checks, "kl_closed_form", skewed)
    with pytest.raises(AssertionError, match="sampling z ~ q"):
        checks.judge_loss_kl(out)


def test_judge_loss_kl_rejects_non_scalars_and_detached_values():
    with pytest.raises(AssertionError, match="scalar"):
        checks.judge_loss_kl(kl_out(lambda mu, lv: 0.5 * (lv.exp() + mu ** 2 - 1 - lv).sum(1)))
    with pytest.raises(AssertionError, match="differentiable"):
        checks.judge_loss_kl(kl_out(lambda mu, lv: 0.5 * (lv.exp() + mu ** 2 - 1 - lv).sum(1).mean().detach()))


def sample_out(scale, seed: int = 0) -> dict:
    """What collect_sample would return for z = z_mean + scale(z_logvar) * eps."""
    generator = torch.Generator().manual_seed(seed)
    mean, logvar, draws = checks.SAMPLE_MEAN, checks.SAMPLE_LOGVAR, checks.SAMPLE_DRAWS
    big = mean.repeat(draws, 1) + scale(logvar.repeat(draws, 1)) * torch.randn(draws * 4, 3, generator=generator)
    eps = torch.randn(4, 3, generator=generator)
    z = mean + scale(logvar) * eps
    return {"draws": big, "first": z, "second": z + 1, "z": z, "grad_mean": torch.ones(4, 3),
            "grad_logvar": 0.5 * scale(logvar) * eps, "rows": 4}


@pytest.mark.parametrize("seed", range(5))
def test_judge_sample_accepts_correct_samples_whatever_the_seed(seed):
    checks.judge_sample(sample_out(lambda lv: torch.exp(0.5 * lv), seed))


def test_judge_sample_names_the_mistake():
    with pytest.raises(AssertionError, match="exp\\(z_logvar\\) as the standard deviation"):
        checks.judge_sample(sample_out(torch.exp))
    with pytest.raises(AssertionError, match="z_logvar itself as the standard deviation"):
        checks.judge_sample(sample_out(lambda lv: lv))
    with pytest.raises(AssertionError, match="do not vary"):
        checks.judge_sample(sample_out(lambda lv: 0 * lv))
    same = sample_out(lambda lv: torch.exp(0.5 * lv))
    with pytest.raises(AssertionError, match="same values"):
        checks.judge_sample(dict(same, second=same["first"]))
    with pytest.raises(AssertionError, match="Gradients do not flow"):
        checks.judge_sample(dict(same, grad_logvar=None))


def test_standard_error_tolerances_come_from_the_sample_size():
    # Six standard errors of the variance for 20,000 draws: 6 * sqrt(2 / 19,999) = 6 %.
    out = sample_out(lambda lv: 1.1 * torch.exp(0.5 * lv))  # 21 % too much variance
    with pytest.raises(AssertionError, match="variance"):
        checks.judge_sample(out)
    checks.judge_sample(sample_out(lambda lv: 1.005 * torch.exp(0.5 * lv)))  # 1 %: within the noise


def test_judge_loss_loglik_accepts_both_conventions_and_names_mistakes():
    def nll(m, lv, x, constant=False):
        return checks.gaussian_nll(m, lv, x, constant).mean().float().requires_grad_()

    def out_for(function) -> dict:
        return {"cases": [{"y_mean": m, "y_logvar": lv, "x": x, "value": function(m, lv, x), "differentiable": True}
                          for m, lv, x in checks._loglik_cases()]}

    checks.judge_loss_loglik(out_for(nll))
    checks.judge_loss_loglik(out_for(lambda m, lv, x: nll(m, lv, x, True)))
    with pytest.raises(AssertionError, match="averaged over the pixels"):
        checks.judge_loss_loglik(out_for(lambda m, lv, x: nll(m, lv, x) / 784))
    with pytest.raises(AssertionError, match="log-variance term"):
        checks.judge_loss_loglik(out_for(lambda m, lv, x: (0.5 * (x - m) ** 2 / lv.exp()).flatten(1).sum(1).mean()))


def test_judge_loss_bce_catches_probabilities_treated_as_logits():
    with pytest.raises(AssertionError, match="logits"):
        checks.judge_loss_bce(checks.collect_loss_bce(torch.nn.functional.binary_cross_entropy_with_logits))
    checks.judge_loss_bce(checks.collect_loss_bce(torch.nn.functional.binary_cross_entropy))
    with pytest.raises(AssertionError, match="summed over pixels"):
        checks.judge_loss_bce(checks.collect_loss_bce(
            lambda p, x: torch.nn.functional.binary_cross_entropy(p, x, reduction="sum") / len(x)))


def test_judge_decoder_requires_a_floor():
    out = checks.collect_decoder(reference_namespace()["Decoder"])
    checks.judge_decoder(out)
    out["logvar10_64"] = out["logvar10_64"] - 20
    with pytest.raises(AssertionError, match="floor"):
        checks.judge_decoder(out)


def test_trained_judges_work_on_plain_tensors_alone():
    clean = torch.rand(50, 1, 28, 28)
    good = {"negative_elbo": torch.full((50,), -1600.0), "stds": clean + 0.01, "clean": clean}
    checks.judge_vae_trained(good)
    with pytest.raises(AssertionError, match="negative ELBO"):
        checks.judge_vae_trained(dict(good, negative_elbo=torch.full((50,), -1100.0)))
    with pytest.raises(AssertionError, match="standard deviations"):
        checks.judge_vae_trained(dict(good, stds=torch.zeros_like(clean) + clean.mean()))
    images = (torch.rand(20, 1, 28, 28) > 0.8).float()
    checks.judge_bernoulli_trained({"reconstructions": images * 0.98 + 0.01, "test_images": images})
    with pytest.raises(AssertionError, match="BCE"):
        checks.judge_bernoulli_trained({"reconstructions": torch.full_like(images, 0.5), "test_images": images})


def test_judge_bernoulli_vae_checks_the_layers():
    out = checks.collect_bernoulli_vae(reference_namespace()["BernoulliVAE"])
    checks.judge_bernoulli_vae(out)
    assert checks.BERNOULLI_PARAMETERS == 220196
    with pytest.raises(AssertionError, match="784-128-64"):
        checks.judge_bernoulli_vae(dict(out, layers=out["layers"][1:]))


# --- messages and notebook structure -------------------------------------------------------------

def test_missing_checkpoints_say_what_to_do(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = reference_namespace()
    with pytest.raises(AssertionError, match="3_vae_encoder.pth was not found.*submit"):
        checks.check_vae_trained(namespace["Encoder"], namespace["Decoder"])
    with pytest.raises(AssertionError, match="3_vae_bernoulli.pth was not found"):
        checks.check_bernoulli_trained(namespace["BernoulliVAE"])


def test_stubs_fail_with_a_message():
    def stub(*args):
        raise NotImplementedError()

    with pytest.raises(AssertionError, match="not implemented"):
        checks.check_loss_kl(stub)


def test_test_cells_end_with_a_statement_and_checkpoint_checks_come_first():
    for grade_id, cell in notebooks.cells_by_grade_id(SOURCE).items():
        if not cell.metadata["nbgrader"]["grade"]:
            continue
        body = ast.parse(cell.source).body
        assert not body or not isinstance(body[-1], ast.Expr) or isinstance(body[-1].value, ast.Call), grade_id
        if "check_vae_trained" in cell.source or "check_vae_classifier" in cell.source or "check_bernoulli_trained" in cell.source:
            code = [line for line in cell.source.splitlines()
                    if line.strip() and (line.startswith("###") or not line.startswith("#"))]
            assert code[0] == "### BEGIN HIDDEN TESTS", f"{grade_id}: put the hidden checkpoint check first"


def test_checkpoint_names_match_what_the_notebook_saves():
    text = (pipeline.SOURCE / "3_vae.py").read_text()
    for name in (checks.ENCODER_FILE, checks.DECODER_FILE, checks.BERNOULLI_FILE):
        assert f'save_model(' in text and f'"{name}"' in text and name.startswith("3_vae_")
