"""Judges of notebook 4_tsne (t-SNE from scratch), run in the TA's process on what the kernel collected.

The reference implementations of the notebook's functions live here, never in the student's kernel.
Each judge re-derives the secret inputs from `Inputs` (with the helpers of grader.collect.tsne) and
compares the student's outputs with what these reference functions compute from them.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from grader.collect import tsne as collect
from grader.collect.common import Inputs
from grader.judge.common import agrees, describe, require_tensor, within
from grader.judge.beside import reference_inputs, reference_value
from grader.judge.pictures import maps as map_picture
from grader.checks import check
from grader.judge.results import measure, show
from grader.reference import TSNE as FIGURES

DEFAULT_PERPLEXITY = 30.0
PERPLEXITY_TOLERANCE = 0.01  # relative; the notebook asks for a much tighter bisection
KL_DROP = 0.9  # the KL of the final map is below this fraction of the KL after EARLY_ITERATIONS
VECTORISED_GROWTH = 2.0  # a loop over points makes the operation count grow with N; vectorised code does not

# --- the reference implementation -----------------------------------------------------------------


def _diagonal(n: int, device: torch.device) -> torch.Tensor:
    """A boolean (n, n) mask of the diagonal."""
    return torch.eye(n, dtype=torch.bool, device=device)


def reference_distances(X: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances (N, N) between the rows of X, exactly 0 on the diagonal."""
    norms = X.pow(2).sum(dim=1)
    distances = (norms[:, None] + norms[None, :] - 2 * X @ X.T).clamp_min(0.0)
    return distances.masked_fill(_diagonal(len(X), X.device), 0.0)


def _per_row(sigma: Any, like: torch.Tensor) -> torch.Tensor:
    """sigma as a tensor that broadcasts over the rows of `like`: a scalar, or a column of N values."""
    sigma = torch.as_tensor(sigma, dtype=like.dtype, device=like.device)
    return sigma.reshape(-1, 1) if sigma.dim() else sigma


def reference_conditional(X: torch.Tensor, sigma: Any) -> torch.Tensor:
    """p_{j|i} (row i, column j) for the Gaussian kernel of bandwidth sigma_i, with p_{i|i} = 0."""
    distances = reference_distances(X)
    logits = -distances / (2 * _per_row(sigma, distances) ** 2)
    return torch.softmax(logits.masked_fill(_diagonal(len(X), X.device), -math.inf), dim=1)


def reference_gauss_p(X: torch.Tensor, sigma: Any) -> torch.Tensor:
    """The joint probabilities P = (p_{j|i} + p_{i|j}) / (2N)."""
    conditional = reference_conditional(X, sigma)
    return (conditional + conditional.T) / (2 * len(X))


def perplexities(X: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """Perplexity 2^H(P_i) of each point's conditional distribution, computed in float64."""
    conditional = reference_conditional(X.double(), sigmas.double())
    entropy = -torch.xlogy(conditional, conditional).sum(dim=1)  # in nats, so the perplexity is e^H
    return entropy.exp()


def reference_find_sigmas(X: torch.Tensor, perplexity: float = DEFAULT_PERPLEXITY, steps: int = 64) -> torch.Tensor:
    """Per-point sigmas of the given perplexity, by bisection on log(sigma) for all points at once."""
    distances = reference_distances(X.double())
    diagonal = _diagonal(len(X), X.device)
    low = torch.full((len(X),), -20.0, dtype=torch.float64, device=X.device)
    high = torch.full_like(low, 20.0)
    target = math.log(perplexity)
    for _ in range(steps):
        middle = (low + high) / 2
        logits = (-distances / (2 * torch.exp(2 * middle)[:, None])).masked_fill(diagonal, -math.inf)
        log_p = torch.log_softmax(logits, dim=1)
        entropy = -(log_p.exp() * log_p.masked_fill(diagonal, 0.0)).sum(dim=1)
        too_wide = entropy > target
        high = torch.where(too_wide, middle, high)
        low = torch.where(too_wide, low, middle)
    return ((low + high) / 2).exp().to(X.dtype)


def reference_student_t_q(Y: torch.Tensor) -> torch.Tensor:
    """Q with q_ij proportional to 1 / (1 + ||y_i - y_j||^2), q_ii = 0, normalised over all pairs."""
    kernel = (1.0 / (1.0 + reference_distances(Y))).masked_fill(_diagonal(len(Y), Y.device), 0.0)
    return kernel / kernel.sum()


def reference_kl(P: torch.Tensor, Q: torch.Tensor) -> torch.Tensor:
    """sum over i != j of p_ij log(p_ij / q_ij), 0 where p_ij = 0, with NaN-free gradients."""
    diagonal = _diagonal(len(P), P.device)
    terms = torch.xlogy(P, P) - torch.xlogy(P, Q.masked_fill(diagonal, 1.0))
    return terms.masked_fill(diagonal, 0.0).sum()


def kl_gradient(P: torch.Tensor, Q: torch.Tensor) -> torch.Tensor:
    """dKL/dq_ij = -p_ij / q_ij off the diagonal (0 where p_ij = 0), and 0 on the diagonal."""
    diagonal = _diagonal(len(P), P.device)
    return (-P / Q.masked_fill(diagonal, 1.0)).masked_fill(diagonal, 0.0)


def moving_part(gradient: torch.Tensor) -> torch.Tensor:
    """The part of a gradient dC/dQ that acts on a map's Q (symmetric, zero diagonal, summing to 1).

    A change of Q(Y) is symmetric, off the diagonal and sums to 0, so only the symmetrised off-diagonal
    gradient minus its mean reaches the map points: two KL functions whose gradients agree on this part
    give every map the same gradient (the t-SNE gradient, for the right KL).
    """
    gradient = gradient.double()
    diagonal = _diagonal(len(gradient), gradient.device)
    symmetric = (gradient + gradient.T) / 2
    return (symmetric - symmetric[~diagonal].mean()).masked_fill(diagonal, 0.0)


# --- map quality ---------------------------------------------------------------------------------


def trustworthiness(X: torch.Tensor, Y: torch.Tensor, k: int = 5) -> float:
    """Trustworthiness T(k) of the map Y of X (1: every map neighbour is a true neighbour)."""
    from sklearn.manifold import trustworthiness as sklearn_trustworthiness

    return float(sklearn_trustworthiness(X.double().numpy(), Y.double().numpy(), n_neighbors=k))


def nearest_neighbour_accuracy(Y: torch.Tensor, labels: torch.Tensor) -> float:
    """Leave-one-out 1-NN accuracy of the labels in the map Y."""
    distances = torch.cdist(Y.double(), Y.double()).fill_diagonal_(math.inf)
    return float((labels[distances.argmin(dim=1)] == labels).double().mean())


def map_figures(X: torch.Tensor, Y: torch.Tensor, labels: torch.Tensor, P: torch.Tensor) -> dict[str, float]:
    """KL (under P), trustworthiness T(5) and leave-one-out 1-NN accuracy of the map Y."""
    return {"kl": float(reference_kl(P.double(), reference_student_t_q(Y.double()))),
            "trustworthiness": trustworthiness(X, Y), "1nn": nearest_neighbour_accuracy(Y, labels)}


# --- shared judging -------------------------------------------------------------------------------


def _require_cases(cases: Any, count: int, function: str) -> list:
    """The collected list of one result per secret case, or a failed test when it is incomplete."""
    assert isinstance(cases, list) and len(cases) == count, (
        f"The results collected from {function} are incomplete ({describe(cases)}): run the notebook again.")
    return cases


def _judge_vectorised(calls: Any, function: str) -> None:
    """The operation counts for the two sizes of collect.COUNT_SIZES do not grow like a loop over points."""
    sizes = collect.COUNT_SIZES[function]
    assert isinstance(calls, list) and len(calls) == 2 and all(type(count) is int for count in calls), (
        f"The operation counts collected from {function} are malformed ({describe(calls)}).")
    small, large = calls
    assert large <= VECTORISED_GROWTH * small + 10, (
        f"{function} made {small} tensor operations for {sizes[0]} points but {large} for {sizes[1]} points: "
        "the work grows with a Python loop over the points. Compute all pairs at once with matrix products "
        "or broadcasting (see the hint in the notebook).")


def _judge_joint(M: torch.Tensor, name: str, what: str) -> None:
    """M is a joint distribution over pairs: non-negative, zero diagonal, symmetric, summing to 1."""
    scale = float(M.abs().max()) + 1e-30
    assert float(M.min()) >= -1e-6 * scale, f"{name} for {what} has negative entries; probabilities are >= 0."
    assert float(M.diagonal().abs().max()) <= 1e-6 * scale, (
        f"{name} for {what} has non-zero diagonal entries; a point is not its own neighbour, so the diagonal "
        "must be exactly 0 (leave k = i out of the normalising sum too).")
    assert agrees(M, M.T, f"{name} on the hidden inputs", rtol=1e-4, atol=1e-6 * scale, target="its transpose"), (
        f"{name} for {what} should be symmetric.")
    assert abs(float(M.double().sum()) - 1.0) < 1e-4, (
        f"{name} for {what} sums to {float(M.double().sum()):.6g}; the joint probabilities of all pairs sum to 1.")


# --- judges ----------------------------------------------------------------------------------------


@check("test_pairwise_distances", collect.collect_pairwise_distances)
def judge_pairwise_distances(out: dict, inputs: Inputs) -> None:
    """Shapes, values against ||x_i - x_j||^2, symmetry, zero diagonal, and no loop over points."""
    _distance_values(out.get("cases"), inputs)
    _judge_vectorised(out.get("calls"), "pairwise_squared_distances")


def _distance_values(cases: Any, inputs: Inputs) -> None:
    """The distances on every secret case are ||x_i - x_j||^2."""
    inputs_of_cases = collect.distance_inputs(inputs)
    cases = _require_cases(cases, len(inputs_of_cases), "pairwise_squared_distances")
    for X, D in zip(inputs_of_cases, cases):
        n = len(X)
        D = require_tensor(D, f"pairwise_squared_distances of an input of shape {tuple(X.shape)}", (n, n))
        expected = (X.double()[:, None, :] - X.double()[None, :, :]).pow(2).sum(dim=2)
        atol = 1e-5 * (1.0 + float(X.double().pow(2).sum(dim=1).max()))
        agreement = agrees(D, expected, "pairwise_squared_distances on the hidden inputs", rtol=1e-4, atol=atol,
                           target="||x_i - x_j||^2")
        assert agreement, (
            f"pairwise_squared_distances on an input of shape {tuple(X.shape)} differs from ||x_i - x_j||^2 by up "
            f"to {agreement.difference:.4g}. D[i, j] is the squared Euclidean distance (no square root) between rows "
            "i and j.")
        assert float(D.diagonal().abs().max()) <= atol, "The diagonal of the distances should be 0 (clamp rounding)."
        assert float(D.min()) >= -atol, "Squared distances cannot be negative: clamp rounding errors at 0."


@check("test_gauss_p", collect.collect_gauss_p)
def judge_gauss_p(out: dict, inputs: Inputs) -> None:
    """P is a symmetric joint distribution with zero diagonal and matches the formula."""
    _gauss_values(out.get("cases"), inputs)


def _gauss_values(cases: Any, inputs: Inputs) -> None:
    """P on every secret case is a symmetric joint distribution with zero diagonal matching the formula."""
    inputs_of_cases = collect.gauss_inputs(inputs)
    cases = _require_cases(cases, len(inputs_of_cases), "symmetric_gauss_neighbour_probability")
    for (X, sigma, what), P in zip(inputs_of_cases, cases):
        n = len(X)
        P = require_tensor(P, f"symmetric_gauss_neighbour_probability for {what}", (n, n))
        scale = float(P.abs().max()) + 1e-30
        assert agrees(P, P.T, "P on the hidden inputs", rtol=1e-4, atol=1e-6 * scale, target="its transpose"), (
            f"P for {what} is not symmetric. The joint probability is p_ij = (p_j|i + p_i|j) / (2N): "
            "average the conditional matrix with its transpose.")
        _judge_joint(P, "P", what)
        expected = reference_gauss_p(X.double(), sigma.double() if isinstance(sigma, torch.Tensor) else sigma)
        agreement = agrees(P, expected, "P on the hidden inputs", rtol=1e-3, atol=1e-4 * float(expected.max()),
                           target="the formula")
        assert agreement, (
            f"P for {what} differs from the formula by up to {agreement.difference:.3g} (largest entry {float(expected.max()):.3g}). "
            "Check the exponent -||x_i - x_j||^2 / (2 sigma_i^2) (sigma squared), that row i uses sigma_i, and "
            "that each row p_j|i is normalised over j != i before symmetrising.")


@check("test_find_sigmas", collect.collect_find_sigmas)
def judge_find_sigmas(out: dict, inputs: Inputs) -> None:
    """One positive sigma per point, each giving its point the target perplexity; no loop over points."""
    _sigma_values(out.get("cases"), inputs)
    _judge_vectorised(out.get("calls"), "find_sigmas")


def _sigma_values(cases: Any, inputs: Inputs) -> None:
    """One positive sigma per point on every secret case, each giving its point the target perplexity."""
    inputs_of_cases = collect.sigma_inputs(inputs)
    cases = _require_cases(cases, len(inputs_of_cases), "find_sigmas")
    for (X, perplexity), sigmas in zip(inputs_of_cases, cases):
        target = DEFAULT_PERPLEXITY if perplexity is None else perplexity
        how = "find_sigmas(X)" if perplexity is None else f"find_sigmas(X, perplexity={target:g})"
        sigmas = require_tensor(sigmas, f"{how} for {len(X)} points", (len(X),))
        assert (sigmas > 0).all(), f"{how} returned sigmas that are not positive."
        reached = perplexities(X, sigmas)
        error = (reached / target - 1).abs()
        error = torch.where(torch.isfinite(error), error, torch.full_like(error, math.inf))
        worst = int(error.argmax())
        missed = int((error > PERPLEXITY_TOLERANCE).sum())
        assert within(error, PERPLEXITY_TOLERANCE, "The perplexities your sigmas give the hidden points (relative)",
                      target="the target perplexity"), (
            f"With the sigmas of {how}, {missed} of {len(X)} points miss the perplexity {target:g} by more than "
            f"{PERPLEXITY_TOLERANCE:.0%} (point {worst}: sigma {float(sigmas[worst]):.4g} gives perplexity "
            f"{float(reached[worst]):.4g}). Each point needs its own sigma_i: bisect every sigma_i until "
            "2^H(P_i) equals the perplexity" + (" (the default perplexity is 30)." if perplexity is None else "."))


@check("test_student_t_q", collect.collect_student_t_q)
def judge_student_t_q(out: dict, inputs: Inputs) -> None:
    """Q is a symmetric joint distribution with zero diagonal, matches the formula and is differentiable."""
    _q_values(out.get("cases"), inputs)
    _judge_q_gradient(out.get("gradient"), inputs)


def _q_values(cases: Any, inputs: Inputs) -> None:
    """Q on every secret map is a symmetric joint distribution with zero diagonal matching the formula."""
    maps = collect.map_inputs(inputs)
    cases = _require_cases(cases, len(maps), "symmetric_student_t_neighbour_probability")
    for Y, Q in zip(maps, cases):
        n = len(Y)
        what = f"a map of {n} points"
        Q = require_tensor(Q, f"symmetric_student_t_neighbour_probability for {what}", (n, n))
        expected = reference_student_t_q(Y.double())
        assert abs(float(Q.double().sum()) - 1.0) < 1e-4, (
            f"Q for {what} sums to {float(Q.double().sum()):.6g}: normalise by the sum over all pairs k != l "
            "(not row by row), so that all q_ij together sum to 1.")
        _judge_joint(Q, "Q", what)
        agreement = agrees(Q, expected, "Q on the hidden maps", rtol=1e-4, atol=1e-6 * float(expected.max()),
                           target="the formula")
        assert agreement, (
            f"Q for {what} differs from the formula by up to {agreement.difference:.3g}. The Student-t kernel is "
            "(1 + ||y_i - y_j||^2)^-1 (not a Gaussian), and the normaliser is the sum of the kernel over all "
            "pairs k != l.")


def _judge_q_gradient(gradient: Any, inputs: Inputs) -> None:
    """Gradients flow from Q back to the map."""
    Y, _ = collect.map_gradient_inputs(inputs)
    assert isinstance(gradient, torch.Tensor) and tuple(gradient.shape) == tuple(Y.shape) \
        and gradient.is_floating_point() and torch.isfinite(gradient).all() and gradient.abs().sum() > 0, (
        "Gradients should flow from Q back to the map points: use torch operations only, no .detach(), .item() "
        "or NumPy, so that autograd can optimise the map.")


def _kl_value(value: Any, what: str) -> float:
    """The float of a collected KL value: a finite one-element float tensor, or a failed test."""
    assert isinstance(value, torch.Tensor) and value.numel() == 1 and value.is_floating_point(), (
        f"kl_divergence should return a scalar float tensor, got {describe(value)}.")
    assert torch.isfinite(value).all(), (
        f"kl_divergence returned {float(value)} for {what}. Terms with p_ij = 0 count as 0 "
        "(0 log 0 = 0), and the diagonal (p_ii = q_ii = 0) is left out.")
    return float(value)


@check("test_kl", collect.collect_kl)
def judge_kl(out: dict, inputs: Inputs) -> None:
    """The KL divergence matches its formula, is 0 for P == Q, finite with zeros in P; its gradient is right."""
    _kl_values(out.get("values"), inputs)
    _judge_kl_gradient(out.get("gradient"), inputs)


def _kl_values(values: Any, inputs: Inputs) -> None:
    """The KL divergence on every secret (P, Q) case matches its formula."""
    inputs_of_cases = collect.kl_inputs(inputs)
    values = _require_cases(values, len(inputs_of_cases), "kl_divergence")
    for (what, P, Q), value in zip(inputs_of_cases, values):
        value = _kl_value(value, what)
        expected = float(reference_kl(P.double(), Q.double()))
        assert agrees(value, expected, "kl_divergence on the hidden (P, Q)", rtol=1e-4, atol=1e-5,
                      target="the formula"), (
            f"kl_divergence(P, Q) for {what} returned {value:.6g}, expected {expected:.6g} = "
            "sum over i != j of p_ij log(p_ij / q_ij) (P, the data, weighs the log-ratio).")


def _judge_kl_gradient(gradient: Any, inputs: Inputs) -> None:
    """The autograd gradient of the KL with respect to Q is -p_ij / q_ij."""
    P, Q = collect.kl_gradient_inputs(inputs)
    assert isinstance(gradient, torch.Tensor) and tuple(gradient.shape) == tuple(Q.shape) \
        and gradient.is_floating_point(), (
        "kl_divergence should stay differentiable: autograd could not compute the gradient with respect to Q "
        "(and so to the map points). Use torch operations only.")
    assert torch.isfinite(gradient).all(), (
        "The gradient of kl_divergence with respect to Q contains NaN. Autograd also differentiates the "
        "entries you leave out: never take the log of the zero diagonal of Q (replace it before the log, or use "
        "torch.xlogy on the off-diagonal entries).")
    expected = moving_part(kl_gradient(P.double(), Q.double()))
    agreement = agrees(moving_part(gradient), expected, "The gradient of kl_divergence with respect to Q", rtol=1e-3,
                       atol=1e-4 * float(expected.abs().max()), target="-p_ij / q_ij")
    assert agreement, (
        f"The autograd gradient of your kl_divergence with respect to Q differs from dC/dq_ij = -p_ij / q_ij by "
        f"up to {agreement.difference:.3g} (on the pairs i != j; a constant shift does not count). It is this gradient that "
        "gives the map the t-SNE gradient 4 sum_j (p_ij - q_ij)(y_i - y_j)(1 + ||y_i - y_j||^2)^-1.")


def reference_map(key: str, n: int, title: str) -> list[tuple[torch.Tensor, torch.Tensor, str]]:
    """A reference solution's map of run `key` (on its own test images), or none when not kept."""
    points = reference_value(key, (n, 2), "its maps of other test images")
    return [] if points is None else [(points, collect.tsne_images(reference_inputs())[1], title)]


@check("test_tsne", collect.collect_tsne,
       figures=("check_adam_1nn", "check_adam_trustworthiness", "check_sgd_1nn", "check_sgd_trustworthiness"),
       trains=True, pictured=True)
def judge_tsne(out: dict, inputs: Inputs) -> None:
    """Maps of the right shape, deterministic per seed, using their arguments, and good for both optimisers."""
    X, labels = collect.tsne_images(inputs)
    n = len(X)
    maps = {key: require_tensor(out.get(key), f"the map returned by tsne (run '{key}')", (n, 2)).double()
            for key in collect.tsne_runs(inputs)}
    # the maps first: a student whose helpers fail a later check sees what they made of the digits
    for key, optimiser in (("sgd", "gradient descent"), ("adam", "Adam")):
        show(map_picture([(maps[key], labels, f"your map with {optimiser}, {n} test images, coloured by digit"),
                          *reference_map(key, n, f"a reference solution's map with {optimiser}, other images")]))
    assert agrees(maps["early_sgd"], maps["early_sgd_again"], "Two maps of tsne with the same seed", atol=1e-5,
                  target="each other"), (
        "Two runs of tsne with the same seed gave different maps: draw the initial map from a generator seeded "
        "with `seed` (torch.Generator().manual_seed(seed)).")
    assert not torch.allclose(maps["early_sgd"], maps["early_sgd_other_seed"], atol=1e-6), (
        "tsne gave the same map for two different seeds: the seed should choose the random initial map.")
    assert not torch.allclose(maps["early_sgd"], maps["early_sgd_other_sigma"], atol=1e-6), (
        "tsne gave the same map for sigma=2.0 and sigma=10.0: compute P with the sigma it is given.")
    assert not torch.allclose(maps["early_adam"], maps["early_adam_other_perplexity"], atol=1e-6), (
        "tsne gave the same map for perplexity=30 and perplexity=5: when sigma is None, compute the sigmas with "
        "find_sigmas(X, perplexity).")
    _judge_tsne_api(out)
    _judge_helpers(out.get("helpers"), inputs)
    runs = (("sgd", "gradient descent (learning rate 10, sigma 2.0)", reference_gauss_p(X.double(), 2.0)),
            ("adam", "Adam (learning rate 0.1, perplexity 30)",
             reference_gauss_p(X.double(), reference_find_sigmas(X.double(), 30.0))))
    for key, what, P in runs:
        early = map_figures(X, maps[f"early_{key}"], labels, P)
        final = map_figures(X, maps[key], labels, P)
        assert final["kl"] < KL_DROP * early["kl"], (
            f"With {what}, the KL divergence of your map went from {early['kl']:.3f} after "
            f"{collect.EARLY_ITERATIONS} iterations to {final['kl']:.3f} after {collect.TSNE_ITERATIONS}: it should "
            f"fall by at least {1 - KL_DROP:.0%} (below {KL_DROP * early['kl']:.3f}). Check the sign of the update, "
            "that the gradients are zeroed in every iteration, and that the optimizer updates the map points.")
        for figure in ("trustworthiness", "1nn"):
            name = "trustworthiness T(5)" if figure == "trustworthiness" else "leave-one-out 1-NN accuracy"
            measure(FIGURES[f"check_{key}_{figure}"], final[figure],
                    f"With {what}, {collect.TSNE_ITERATIONS} iterations on {n} test images, your map", name,
                    digits=3, label=f"{name} of the {key.upper() if key == 'sgd' else 'Adam'} map",
                    close="Compare your gradient and update with the formulas of the task, step by step.")


def _judge_helpers(helpers: Any, inputs: Inputs) -> None:
    """Every helper tsne used gives right results on its own test's secret cases: a map made from a wrong helper
    fails here, whatever the seed, instead of passing or failing the map's figures by chance."""
    assert isinstance(helpers, dict) and set(helpers) <= set(HELPER_CHECKS), (
        f"The results collected from the functions tsne uses are malformed ({describe(helpers)}).")
    for name, results in helpers.items():
        test, check = HELPER_CHECKS[name]
        try:
            check(results, inputs)
        except AssertionError as error:
            raise AssertionError(
                f"Your tsne builds on your {name}, which gives wrong results ({test}, its own test, says: {error}) "
                f"A map made from it cannot be right, so test_tsne passes once {name} passes {test}.") from None


def _judge_tsne_api(out: dict) -> None:
    """The initial map is drawn from N(0, I), perplexity None means 30, and the callback follows its description."""
    n, steps = collect.API_POINTS, collect.API_ITERATIONS
    initial = require_tensor(out.get("initial"), "the map of tsne with n_iter=0 (the initial map)", (n, 2)).double()
    mean, std = float(initial.mean()), float(initial.std())
    assert abs(mean) < 0.4 and 0.75 < std < 1.3, (
        f"With n_iter=0, tsne should return its initial map, drawn from N(0, I) (torch.randn); its values have mean "
        f"{mean:.2f} and standard deviation {std:.2f}.")
    default = require_tensor(out.get("default_perplexity"), "the map of tsne with sigma and perplexity None", (n, 2))
    thirty = require_tensor(out.get("perplexity_30"), "the map of tsne with perplexity=30", (n, 2))
    assert agrees(default, thirty, "The map of tsne with sigma and perplexity None", atol=1e-5,
                  target="the map with perplexity=30"), (
        "tsne with sigma=None and perplexity=None should use the perplexity 30 (the same map as perplexity=30.0).")
    calls = out.get("callback_calls")
    assert isinstance(calls, list) and len(calls) == steps, (
        f"tsne(..., n_iter={steps}, callback=f) should call f once after each of the {steps} updates, "
        f"got {len(calls) if isinstance(calls, list) else describe(calls)} calls.")
    returned = require_tensor(out.get("callback_returned"), "the map returned by tsne with a callback", (n, 2))
    for number, arguments in enumerate(calls, start=1):
        assert isinstance(arguments, list) and len(arguments) == 3, (
            f"The callback should receive three arguments (iteration, map, loss), got {describe(arguments)}.")
        iteration, current, loss = arguments
        assert type(iteration) is int and iteration == number, (
            f"Call {number} of the callback should receive the iteration number {number} first, got {describe(iteration)}.")
        require_tensor(current, f"the map given to the callback at iteration {number}", (n, 2))
        assert type(loss) is float, f"The callback's third argument should be the loss as a Python float, got {describe(loss)}."
    assert agrees(calls[-1][1], returned, "The map given to the last callback", atol=1e-6,
                  target="the map tsne returns"), (
        "The map given to the callback after the last update should be the map tsne returns.")


# Each helper tsne may build on: its own test and the check of its results on that test's secret cases.
HELPER_CHECKS = {"pairwise_squared_distances": ("test_pairwise_distances", _distance_values),
                 "symmetric_gauss_neighbour_probability": ("test_gauss_p", _gauss_values),
                 "find_sigmas": ("test_find_sigmas", _sigma_values),
                 "symmetric_student_t_neighbour_probability": ("test_student_t_q", _q_values),
                 "kl_divergence": ("test_kl", _kl_values)}
