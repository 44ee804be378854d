"""Unit tests of 4_tsne's reference formulas, collectors and judges, beyond the variant sweep in test_checks.py."""
from __future__ import annotations

import ast
import math
import re
from pathlib import Path

import pytest
import torch

from grader import notebooks, pipeline
from grader.collect import tsne as collect
from grader.collect.common import SEED_ENV, CollectionFailed, Inputs, single_thread, split, store
from grader.judge import tsne as judge
from grader.judge.common import judge_cell
from grader.reference import TSNE as FIGURES

SOURCE = notebooks.build_notebook(pipeline.SOURCE / "4_tsne.py")
INPUTS = Inputs(7)


@pytest.fixture(autouse=True)
def one_thread():
    """Small tensor work, as in collection and judging: one thread is faster on a shared machine."""
    with single_thread():
        yield


def first_test_images(n: int) -> torch.Tensor:
    """The first n test images flattened to (n, 784)."""
    return split("test")[0][:n].reshape(n, -1)


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
    """q_ij written out with loops over the pairs."""
    n = len(Y)
    kernel = torch.zeros(n, n, dtype=torch.float64)
    for i in range(n):
        for j in range(n):
            if i != j:
                kernel[i, j] = 1.0 / (1.0 + float(((Y[i] - Y[j]) ** 2).sum()))
    return kernel / kernel.sum()


def tsne_gradient(P: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """The t-SNE gradient 4 sum_j (p_ij - q_ij)(y_i - y_j) / (1 + ||y_i - y_j||^2), written with loops."""
    n, Q = len(Y), naive_q(Y)
    gradient = torch.zeros_like(Y)
    for i in range(n):
        for j in range(n):
            if i != j:
                gradient[i] += 4 * (P[i, j] - Q[i, j]) * (Y[i] - Y[j]) / (1 + float(((Y[i] - Y[j]) ** 2).sum()))
    return gradient


def test_reference_formulas_match_loops_over_pairs():
    generator = torch.Generator().manual_seed(0)
    X = torch.randn(7, 3, generator=generator, dtype=torch.float64)
    sigmas = [0.5 + 0.3 * i for i in range(7)]
    assert torch.allclose(judge.reference_gauss_p(X, torch.tensor(sigmas, dtype=torch.float64)),
                          naive_joint_p(X, sigmas), atol=1e-12)
    assert torch.allclose(judge.reference_gauss_p(X, 1.3), naive_joint_p(X, [1.3] * 7), atol=1e-12)
    Y = torch.randn(6, 2, generator=generator, dtype=torch.float64)
    assert torch.allclose(judge.reference_student_t_q(Y), naive_q(Y), atol=1e-12)
    P, Q = judge.reference_gauss_p(X[:6], 1.0), naive_q(Y)
    expected = sum(float(P[i, j] * math.log(P[i, j] / Q[i, j])) for i in range(6) for j in range(6) if i != j)
    assert math.isclose(float(judge.reference_kl(P, Q)), expected, rel_tol=1e-10)


def test_the_judged_kl_gradient_gives_the_tsne_gradient():
    """dC/dQ, reduced to the part that moves a map, chained through Q(Y) is the t-SNE gradient of the map."""
    generator = torch.Generator().manual_seed(1)
    P = judge.reference_gauss_p(torch.randn(12, 5, generator=generator, dtype=torch.float64), 1.5)
    Y = torch.randn(12, 2, generator=generator, dtype=torch.float64, requires_grad=True)
    Q = judge.reference_student_t_q(Y)
    expected = tsne_gradient(P, Y.detach())
    (autograd,) = torch.autograd.grad(judge.reference_kl(P, Q), Y, retain_graph=True)
    assert torch.allclose(autograd, expected, rtol=1e-9, atol=1e-12)
    for gradient in (judge.kl_gradient(P, Q.detach()), judge.moving_part(judge.kl_gradient(P, Q.detach()))):
        (chained,) = torch.autograd.grad(Q, Y, grad_outputs=gradient, retain_graph=True)
        assert torch.allclose(chained, expected, rtol=1e-9, atol=1e-12)


def test_kl_gradients_that_move_maps_alike_are_judged_alike():
    """KL written over half the pairs, or renormalising Q, has another dC/dQ but the same effect on maps."""
    P, Q = collect.kl_gradient_inputs(INPUTS)
    P, Q = P.double(), Q.double().requires_grad_()
    upper = torch.triu(torch.ones_like(P, dtype=torch.bool), diagonal=1)
    forms = {"full": judge.reference_kl(P, Q),
             "upper": 2 * (P[upper] * torch.log(P[upper] / Q[upper])).sum(),
             "renormalised": judge.reference_kl(P, Q / Q.sum())}
    expected = judge.moving_part(judge.kl_gradient(P, Q.detach()))
    for name, loss in forms.items():
        (gradient,) = torch.autograd.grad(loss, Q)
        assert torch.allclose(judge.moving_part(gradient), expected, atol=1e-9), name
    (swapped,) = torch.autograd.grad(judge.reference_kl(Q, P), Q)  # KL(Q || P) moves maps differently
    assert not torch.allclose(judge.moving_part(swapped), expected, atol=1e-3 * float(expected.abs().max()))


def test_reference_kl_is_safe_with_zeros():
    P = torch.tensor([[0.0, 0.5, 0.0], [0.5, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    Q = ((1 - torch.eye(3, dtype=torch.float64)) / 6).requires_grad_()
    loss = judge.reference_kl(P, Q)
    loss.backward()
    assert math.isclose(loss.item(), math.log(3), rel_tol=1e-12)
    assert torch.isfinite(Q.grad).all() and Q.grad[0, 2] == 0 and Q.grad[0, 1] == -3
    assert torch.equal(judge.kl_gradient(P, Q.detach()), Q.grad)


@pytest.mark.parametrize("perplexity", [5.0, 30.0, 80.0])
def test_found_sigmas_reach_the_perplexity(perplexity):
    images = first_test_images(200)
    sigmas = judge.reference_find_sigmas(images, perplexity)
    reached = judge.perplexities(images, sigmas)
    assert torch.allclose(reached, torch.full_like(reached, perplexity), rtol=1e-6)
    # Larger perplexities need wider kernels, and a huge sigma makes every other point equally likely.
    assert (judge.reference_find_sigmas(images, perplexity * 1.2) > sigmas).all()
    uniform = judge.perplexities(images, torch.full((200,), 1e6))
    assert torch.allclose(uniform, torch.full((200,), 199.0, dtype=torch.float64))


def test_sigmas_on_mnist_pixels_are_as_the_notebook_says():
    images, _ = split("train")
    sigmas = judge.reference_find_sigmas(images[:1000].reshape(1000, -1), 30.0)
    assert 1.7 < float(sigmas.median()) < 1.85 and float(sigmas.min()) > 0.9 and float(sigmas.max()) < 2.8


def test_collection_holds_no_reference_and_no_threshold():
    """What a student can import from grader/collect/tsne.py decides nothing and reveals no solution."""
    path = Path(collect.__file__)
    tree = ast.parse(path.read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not any(name.startswith(("grader.reference", "grader.judge", "grader.checks")) for name in imported)
    defined = {node.name for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
    solutions = {"pairwise_squared_distances", "symmetric_gauss_neighbour_probability", "find_sigmas",
                 "symmetric_student_t_neighbour_probability", "kl_divergence", "tsne"}
    assert not {name for name in defined if name.startswith("reference_") or name in solutions}
    text = path.read_text()
    for word in ("softmax", "xlogy", "log(", "threshold", "trustworthiness", "FIGURES", "PERPLEXITY_TOLERANCE"):
        assert word not in text, word


def test_secret_inputs_follow_the_seed_and_are_valid():
    for make in (collect.tsne_images, collect.distance_inputs, collect.map_inputs, collect.kl_gradient_inputs):
        assert all(torch.equal(a, b) for a, b in zip(make(Inputs(7)), make(Inputs(7)))), make.__name__
    first, again, other = collect.tsne_images(Inputs(7))[0], collect.tsne_images(Inputs(7))[0], \
        collect.tsne_images(Inputs(8))[0]
    assert torch.equal(first, again) and not torch.equal(first, other) and first.shape == (collect.TSNE_POINTS, 784)
    assert collect.tsne_seed(Inputs(7)) == collect.tsne_seed(Inputs(7)) != collect.tsne_seed(Inputs(8))
    assert not torch.equal(collect.distance_inputs(Inputs(7))[3], collect.distance_inputs(Inputs(8))[3])
    for _, P, Q in collect.kl_inputs(INPUTS):
        for M in (P, Q):
            assert torch.allclose(M, M.T) and float(M.diagonal().abs().max()) == 0 and float(M.min()) >= 0
            assert abs(float(M.double().sum()) - 1) < 1e-6
    assert float((collect.kl_inputs(INPUTS)[2][1] == 0).double().mean()) > 0.5  # many zeros, as its name says


def test_operation_counts_expose_loops_over_points():
    def looped(X):
        return torch.stack([((X - X[i]) ** 2).sum(dim=1) for i in range(len(X))])

    sizes = collect.COUNT_SIZES["pairwise_squared_distances"]
    counts = [collect.counted_calls(looped, torch.randn(n, 3)) for n in sizes]
    with pytest.raises(AssertionError, match="loop over the points"):
        judge._judge_vectorised(counts, "pairwise_squared_distances")
    counts = [collect.counted_calls(judge.reference_distances, torch.randn(n, 3)) for n in sizes]
    judge._judge_vectorised(counts, "pairwise_squared_distances")
    assert counts[0] == counts[1]
    for garbage in ("list", [1], [1.5, 2.0], None):
        with pytest.raises(AssertionError, match="malformed"):
            judge._judge_vectorised(garbage, "find_sigmas")


def test_stubs_are_named_even_when_a_helper_is_the_stub():
    namespace = {}
    exec("def find_sigmas(X, perplexity=30.0):\n    raise NotImplementedError()\n\n"
         "def tsne(X, n_iter, learning_rate, optimizer='sgd', sigma=None, perplexity=None, seed=0):\n"
         "    return find_sigmas(X, perplexity)\n", namespace)
    with pytest.raises(CollectionFailed, match="tsne calls your find_sigmas, which is not implemented yet"):
        collect.collect_tsne(INPUTS, namespace["tsne"])
    with pytest.raises(CollectionFailed, match="^find_sigmas is not implemented yet"):
        collect.call_building_on(namespace["find_sigmas"], torch.ones(3, 2))


def test_student_exceptions_reach_the_student_as_failed_cells(tmp_path, monkeypatch):
    def broken(X):
        return X @ torch.ones(5, 5)

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(SEED_ENV, str(INPUTS.seed))
    store("test_pairwise_distances", collect.collect_pairwise_distances, broken)
    verdict = judge_cell(judge.judge_pairwise_distances, "test_pairwise_distances", tmp_path, INPUTS)
    assert not verdict.passed and "RuntimeError" in verdict.message and "broken" in verdict.message


def reference_outputs(inputs: Inputs) -> dict[str, dict]:
    """What the reference functions would collect for each cell but test_tsne, built in the judge's process."""
    return {
        "distances": {"cases": [judge.reference_distances(X) for X in collect.distance_inputs(inputs)],
                      "calls": [7, 7]},
        "gauss": {"cases": [judge.reference_gauss_p(X, sigma) for X, sigma, _ in collect.gauss_inputs(inputs)]},
        "sigmas": {"cases": [judge.reference_find_sigmas(X, perplexity or 30.0)
                             for X, perplexity in collect.sigma_inputs(inputs)], "calls": [5, 5]},
        "q": {"cases": [judge.reference_student_t_q(Y) for Y in collect.map_inputs(inputs)],
              "gradient": torch.ones(20, 2)},
        "kl": {"values": [judge.reference_kl(P, Q) for _, P, Q in collect.kl_inputs(inputs)],
               "gradient": judge.kl_gradient(*collect.kl_gradient_inputs(inputs))},
    }


def test_judges_accept_the_reference_and_reject_known_mistakes():
    good = reference_outputs(INPUTS)
    judge.judge_pairwise_distances(good["distances"], INPUTS)
    judge.judge_gauss_p(good["gauss"], INPUTS)
    judge.judge_find_sigmas(good["sigmas"], INPUTS)
    judge.judge_student_t_q(good["q"], INPUTS)
    judge.judge_kl(good["kl"], INPUTS)
    with pytest.raises(AssertionError, match="no square root"):
        judge.judge_pairwise_distances(
            {**good["distances"], "cases": [torch.cdist(X, X) for X in collect.distance_inputs(INPUTS)]}, INPUTS)
    one_sigma = {**good["sigmas"], "cases": [torch.full((len(X),), 2.0) for X, _ in collect.sigma_inputs(INPUTS)]}
    with pytest.raises(AssertionError, match="miss the perplexity 30"):
        judge.judge_find_sigmas(one_sigma, INPUTS)
    rows = []
    for Y in collect.map_inputs(INPUTS):
        kernel = 1 / (1 + judge.reference_distances(Y)) * (1 - torch.eye(len(Y)))
        rows.append(kernel / kernel.sum(1, keepdim=True))
    with pytest.raises(AssertionError, match="not row by row"):
        judge.judge_student_t_q({**good["q"], "cases": rows}, INPUTS)
    P, Q = collect.kl_gradient_inputs(INPUTS)
    with pytest.raises(AssertionError, match="differs from dC/dq_ij"):
        judge.judge_kl({**good["kl"], "gradient": -torch.log(P.masked_fill(P == 0, 1) / Q.masked_fill(Q == 0, 1))},
                       INPUTS)
    nan_diagonal = good["kl"]["gradient"].clone().fill_diagonal_(math.nan)
    with pytest.raises(AssertionError, match="contains NaN"):
        judge.judge_kl({**good["kl"], "gradient": nan_diagonal}, INPUTS)


def test_judges_reject_garbage_without_passing_it():
    """A hostile kernel can store anything: incomplete or mistyped results fail with a message."""
    good = reference_outputs(INPUTS)
    with pytest.raises(AssertionError, match="incomplete"):
        judge.judge_pairwise_distances({**good["distances"], "cases": []}, INPUTS)
    with pytest.raises(AssertionError, match="incomplete"):
        judge.judge_gauss_p({"cases": good["gauss"]["cases"][:1]}, INPUTS)
    with pytest.raises(AssertionError, match="should be a torch.Tensor"):
        judge.judge_find_sigmas({**good["sigmas"], "cases": ["Tensor"] * 3}, INPUTS)
    with pytest.raises(AssertionError, match="scalar float tensor"):
        judge.judge_kl({**good["kl"], "values": [torch.tensor(0)] * 3}, INPUTS)
    with pytest.raises(AssertionError, match="stay differentiable"):
        judge.judge_kl({**good["kl"], "gradient": "NoneType"}, INPUTS)
    with pytest.raises(AssertionError, match="Gradients should flow"):
        judge.judge_student_t_q({**good["q"], "gradient": torch.zeros(20, 2)}, INPUTS)
    with pytest.raises(AssertionError, match="should be a torch.Tensor"):
        judge.judge_tsne({}, INPUTS)


def api_outputs(generator: torch.Generator) -> dict:
    """Collected short runs of tsne that follow its description: N(0, I) start, perplexity 30, a callback per update."""
    n, steps = collect.API_POINTS, collect.API_ITERATIONS
    maps = [torch.randn(n, 2, generator=generator) for _ in range(steps)]
    default = torch.randn(n, 2, generator=generator)
    return {"initial": torch.randn(n, 2, generator=generator), "default_perplexity": default,
            "perplexity_30": default.clone(), "callback_returned": maps[-1].clone(),
            "callback_calls": [[step, Y, 1.5] for step, Y in enumerate(maps, start=1)], "helpers": {}}


def test_random_maps_fail_the_tsne_judge():
    generator = torch.Generator().manual_seed(0)
    maps = {key: torch.randn(collect.TSNE_POINTS, 2, generator=generator) for key in collect.tsne_runs(INPUTS)}
    maps["early_sgd_again"] = maps["early_sgd"]
    with pytest.raises(AssertionError, match="KL divergence of your map"):
        judge.judge_tsne({**maps, **api_outputs(generator)}, INPUTS)


@pytest.mark.parametrize("change, message", [
    (lambda out: out.update(initial=torch.rand(collect.API_POINTS, 2)), "drawn from N"),
    (lambda out: out.update(default_perplexity=out["default_perplexity"] + 0.1), "perplexity 30"),
    (lambda out: out["callback_calls"].pop(), "once after each"),
    (lambda out: out["callback_calls"][0].__setitem__(0, 0), "iteration number 1"),
    (lambda out: out["callback_calls"][1].__setitem__(2, torch.tensor(1.5)), "Python float"),
    (lambda out: out.update(callback_returned=-out["callback_returned"]), "the map tsne returns"),
])
def test_tsne_api_mistakes_are_named(change, message):
    out = api_outputs(torch.Generator().manual_seed(1))
    judge._judge_tsne_api(out)
    change(out)
    with pytest.raises(AssertionError, match=message):
        judge._judge_tsne_api(out)


def test_thresholds_keep_a_margin_and_the_notebook_quotes_them():
    text = "\n".join(cell.source for cell in SOURCE.cells if cell.cell_type == "markdown")
    for name, figure in FIGURES.items():
        assert figure.higher_is_better == (figure.reference > figure.threshold), name
        assert 0.05 <= figure.margin <= 0.4, f"{name}: margin {figure.margin:.2f}"
        if name.startswith("check_"):
            assert f"above {figure.threshold:g}" in text or f"and {figure.threshold:.2f}" in text, name
    assert f"within {judge.PERPLEXITY_TOLERANCE:.0%} of the target" in text
    assert "correct versions" not in text and "your own versions of the functions it calls" in text


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
        assert FIGURES[f"{prefix}_trustworthiness"].passes(trust), (run, trust)
        assert FIGURES[f"{prefix}_1nn"].passes(nearest), (run, nearest)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_reference_tsne_runs_on_the_gpu_unchanged():
    namespace = notebooks.definitions(SOURCE)
    X = first_test_images(200).cuda()
    for settings in ({"optimizer": "sgd", "sigma": 2.0, "learning_rate": 10.0},
                     {"optimizer": "adam", "perplexity": 30.0, "learning_rate": 0.1}):
        Y = namespace["tsne"](X, 50, **settings)
        assert Y.device.type == "cuda" and Y.shape == (200, 2) and torch.isfinite(Y).all()
