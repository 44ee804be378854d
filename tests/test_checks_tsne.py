"""Unit tests of 4_tsne's reference formulas, judges and helpers, beyond the variant sweep in test_checks.py."""
from __future__ import annotations

import ast
import math
import re

import pytest
import torch

from grader import notebooks, pipeline
from grader.checks import tsne as checks
from grader.reference import TSNE as FIGURES

SOURCE = notebooks.build_notebook(pipeline.SOURCE / "4_tsne.py")


@pytest.fixture(autouse=True)
def one_thread():
    """Small tensor work, as in the checks: one thread is faster on a shared machine."""
    with checks.single_thread():
        yield


def naive_joint_p(X: torch.Tensor, sigmas: list[float]) -> torch.Tensor:
    """p_ij written out with loops over i, j and k, straight from the formula."""
    n = len(X)
    conditional = torch.zeros(n, n, dtype=torch.float64)
    for i in range(n):
        weights = [math.exp(-float(((X[i] - X[j]) ** 2).sum()) / (2 * sigmas[i] ** 2)) if j != i else 0.0
                   for j in range(n)]
        for j in range(n):
            conditional[i, j] = weights[j] / sum(weights)
    return (conditional + conditional.T) / (2 * n)


def naive_q(Y: torch.Tensor) -> torch.Tensor:
    n = len(Y)
    kernel = torch.zeros(n, n, dtype=torch.float64)
    for i in range(n):
        for j in range(n):
            if i != j:
                kernel[i, j] = 1.0 / (1.0 + float(((Y[i] - Y[j]) ** 2).sum()))
    return kernel / kernel.sum()


def test_reference_formulas_match_loops_over_pairs():
    generator = torch.Generator().manual_seed(0)
    X = torch.randn(7, 3, generator=generator, dtype=torch.float64)
    sigmas = [0.5 + 0.3 * i for i in range(7)]
    assert torch.allclose(checks.reference_gauss_p(X, torch.tensor(sigmas, dtype=torch.float64)),
                          naive_joint_p(X, sigmas), atol=1e-12)
    assert torch.allclose(checks.reference_gauss_p(X, 1.3), naive_joint_p(X, [1.3] * 7), atol=1e-12)
    Y = torch.randn(6, 2, generator=generator, dtype=torch.float64)
    assert torch.allclose(checks.reference_student_t_q(Y), naive_q(Y), atol=1e-12)
    P, Q = checks.reference_gauss_p(X[:6], 1.0), naive_q(Y)
    expected = sum(float(P[i, j] * math.log(P[i, j] / Q[i, j])) for i in range(6) for j in range(6) if i != j)
    assert math.isclose(float(checks.reference_kl(P, Q)), expected, rel_tol=1e-10)


def test_analytic_gradient_matches_autograd():
    generator = torch.Generator().manual_seed(1)
    P = checks.reference_gauss_p(torch.randn(30, 5, generator=generator, dtype=torch.float64), 1.5)
    Y = torch.randn(30, 2, generator=generator, dtype=torch.float64, requires_grad=True)
    loss = checks.reference_kl(P, checks.reference_student_t_q(Y))
    (gradient,) = torch.autograd.grad(loss, Y)
    assert torch.isfinite(gradient).all()
    assert torch.allclose(gradient, checks.analytic_gradient(P, Y.detach()), rtol=1e-9, atol=1e-12)


def test_reference_kl_is_safe_with_zeros():
    P = torch.tensor([[0.0, 0.5, 0.0], [0.5, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    Q = ((1 - torch.eye(3, dtype=torch.float64)) / 6).requires_grad_()
    loss = checks.reference_kl(P, Q)
    loss.backward()
    assert math.isclose(loss.item(), math.log(3), rel_tol=1e-12)
    assert torch.isfinite(Q.grad).all() and Q.grad[0, 2] == 0 and Q.grad[0, 1] == -3


@pytest.mark.parametrize("perplexity", [5.0, 30.0, 80.0])
def test_found_sigmas_reach_the_perplexity(perplexity):
    images = checks._images(200)
    sigmas = checks.reference_find_sigmas(images, perplexity)
    reached = checks.perplexities(images, sigmas)
    assert torch.allclose(reached, torch.full_like(reached, perplexity), rtol=1e-6)
    # Larger perplexities need wider kernels, and a huge sigma makes every other point equally likely.
    assert (checks.reference_find_sigmas(images, perplexity * 1.2) > sigmas).all()
    assert torch.allclose(checks.perplexities(images, torch.full((200,), 1e6)), torch.full((200,), 199.0, dtype=torch.float64))


def test_sigmas_on_mnist_pixels_are_as_the_notebook_says():
    images, _ = checks.split("train")
    sigmas = checks.reference_find_sigmas(images[:1000].reshape(1000, -1), 30.0)
    assert 1.7 < float(sigmas.median()) < 1.85 and float(sigmas.min()) > 0.9 and float(sigmas.max()) < 2.8


def test_reference_helpers_swap_and_restore_even_on_errors():
    namespace = {"kl_divergence": "student's", "__name__": "notebook"}
    exec("def uses():\n    return kl_divergence, find_sigmas\n", namespace)
    with checks.reference_helpers(namespace["uses"], keep=("find_sigmas",)):
        with pytest.raises(NameError):
            namespace["uses"]()  # find_sigmas was kept, and the student never defined it
    with pytest.raises(ZeroDivisionError), checks.reference_helpers(namespace["uses"]):
        assert namespace["uses"]() == (checks.reference_kl, checks.reference_find_sigmas)
        1 / 0
    assert namespace["kl_divergence"] == "student's" and "find_sigmas" not in namespace
    assert "pairwise_squared_distances" not in namespace


def test_operation_counts_expose_loops_over_points():
    def looped(X):
        return torch.stack([((X - X[i]) ** 2).sum(dim=1) for i in range(len(X))])

    small, large = (checks.counted_calls(looped, torch.randn(n, 3)) for n in (60, 240))
    with pytest.raises(AssertionError, match="loop over the points"):
        checks._judge_vectorised(small, large, (60, 240), "looped")
    small, large = (checks.counted_calls(checks.reference_distances, torch.randn(n, 3)) for n in (60, 240))
    checks._judge_vectorised(small, large, (60, 240), "vectorised")
    assert small == large


def test_student_exceptions_become_failed_checks_with_reasons():
    def stub(X):
        raise NotImplementedError

    def broken(X):
        return X @ torch.ones(5, 5)

    with pytest.raises(AssertionError, match="stub is not implemented yet"):
        checks.run(stub, torch.ones(2, 2))
    with pytest.raises(AssertionError, match="broken raised RuntimeError"):
        checks.run(broken, torch.ones(2, 2))


def test_judges_work_on_plain_tensors_alone():
    X = torch.randn(5, 3)
    good = {"cases": [{"X": X, "D": checks.reference_distances(X)}], "calls": [7, 7]}
    checks.judge_pairwise_distances(good)
    with pytest.raises(AssertionError, match="no square root"):
        checks.judge_pairwise_distances({**good, "cases": [{"X": X, "D": torch.cdist(X, X)}]})
    images = checks._images(40)
    one_sigma = {"cases": [{"X": images, "perplexity": 10.0, "default": False, "sigmas": torch.full((40,), 2.0)}],
                 "calls": [5, 5]}
    with pytest.raises(AssertionError, match="miss the perplexity 10"):
        checks.judge_find_sigmas(one_sigma)
    Y = torch.randn(4, 2)
    checks.judge_student_t_q({"cases": [{"Y": Y, "Q": checks.reference_student_t_q(Y)}], "gradient": torch.ones(4, 2)})
    with pytest.raises(AssertionError, match="not row by row"):
        kernel = 1 / (1 + checks.reference_distances(Y)) * (1 - torch.eye(4))
        checks.judge_student_t_q({"cases": [{"Y": Y, "Q": kernel / kernel.sum(1, keepdim=True)}],
                                  "gradient": torch.ones(4, 2)})


def test_random_maps_fail_the_tsne_judge():
    images, labels = checks.split("test")
    X = images[:checks.CHECK_POINTS].reshape(checks.CHECK_POINTS, -1)
    generator = torch.Generator().manual_seed(0)
    maps = {key: torch.randn(len(X), 2, generator=generator) for key in (
        "early_sgd_other_seed", "early_sgd_other_sigma", "early_adam", "early_adam_other_perplexity", "sgd", "adam")}
    maps["early_sgd"] = maps["early_sgd_again"] = torch.randn(len(X), 2, generator=generator)
    with pytest.raises(AssertionError, match="KL divergence of your map"):
        checks.judge_tsne({"X": X, "labels": labels[:checks.CHECK_POINTS], **maps})


def test_thresholds_keep_a_margin_and_the_notebook_quotes_them():
    text = "\n".join(cell.source for cell in SOURCE.cells if cell.cell_type == "markdown")
    for name, figure in FIGURES.items():
        assert figure.higher_is_better == (figure.reference > figure.threshold), name
        assert 0.05 <= figure.margin <= 0.4, f"{name}: margin {figure.margin:.2f}"
        if name.startswith("check_"):
            assert f"above {figure.threshold:g}" in text or f"and {figure.threshold:.2f}" in text, name
    assert f"within {checks.PERPLEXITY_TOLERANCE:.0%} of the target" in text


def test_test_cells_end_with_a_statement():
    for grade_id, cell in notebooks.cells_by_grade_id(SOURCE).items():
        if cell.metadata["nbgrader"]["grade"]:
            body = ast.parse(cell.source).body
            assert not body or not isinstance(body[-1], ast.Expr) or isinstance(body[-1].value, ast.Call), grade_id


def test_setup_cells_before_the_first_solution_are_cheap():
    """notebooks.definitions runs every code cell before the first solution cell: no t-SNE runs there."""
    cells = [cell for cell in SOURCE.cells if cell.cell_type == "code"]
    first = next(i for i, cell in enumerate(cells) if cell.metadata.get("nbgrader", {}).get("solution"))
    setup = "\n".join(cell.source for cell in cells[:first])
    assert "tsne(" not in setup and "TSNE(" not in setup and "set_num_threads" not in setup


def test_reference_notebook_reaches_what_it_promises():
    """The executed reference notebook (training on) prints the figures its text quotes."""
    executed = notebooks.read(pipeline.train_reference("4_tsne") / "4_tsne.ipynb")
    printed = "".join(output.get("text", "") for cell in executed.cells if cell.cell_type == "code"
                      for output in cell.get("outputs", []))
    rows = {}
    for line in printed.splitlines():
        match = re.match(r"(.+): KL (\S+), T\(5\) (\S+), 1-NN (\S+), seconds (\S+)$", line)
        if match:
            rows[match[1]] = [float(value) for value in match.groups()[1:]]
    assert set(rows) == {"gradient descent, sigma 10", "Adam, sigma 10", "Adam, perplexity 30", "scikit-learn TSNE"}
    for run, prefix in (("gradient descent, sigma 10", "notebook_sgd"), ("Adam, sigma 10", "notebook_adam"),
                        ("Adam, perplexity 30", "notebook_perplexity"), ("scikit-learn TSNE", "notebook_sklearn")):
        _, trust, nearest, _ = rows[run]
        assert trust > FIGURES[f"{prefix}_trustworthiness"].threshold, (run, trust)
        assert nearest > FIGURES[f"{prefix}_1nn"].threshold, (run, nearest)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_reference_tsne_runs_on_the_gpu_unchanged():
    namespace = notebooks.definitions(SOURCE)
    X = checks._images(200).cuda()
    for settings in ({"optimizer": "sgd", "sigma": 2.0, "learning_rate": 10.0},
                     {"optimizer": "adam", "perplexity": 30.0, "learning_rate": 0.1}):
        Y = namespace["tsne"](X, 50, **settings)
        assert Y.device.type == "cuda" and Y.shape == (200, 2) and torch.isfinite(Y).all()
