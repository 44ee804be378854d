"""Hidden checks for notebook 4_tsne (t-SNE written from scratch with autograd).

Every check judges one student function. While it runs, the other functions of the notebook's API
are replaced in the student's namespace by the reference versions below, so a mistake in one
function costs only that function's grade cell (the test of `tsne` judges the optimisation loop,
not the P, Q or KL it calls). The originals are put back afterwards, whatever happens.

The checks run on one CPU thread (the t-SNE runs are small: 300 images, 300 iterations): many
small tensor operations are faster that way on a busy machine, and the results do not depend on the
thread count.
"""
from __future__ import annotations

import contextlib
import math
from typing import Any, Callable, Iterator

import torch
from torch.overrides import TorchFunctionMode

from grader.checks.common import as_plain, grading_device, hidden_check, require_tensor, single_thread, split
from grader.reference import TSNE as FIGURES

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


def reference_find_sigmas(X: torch.Tensor, perplexity: float = 30.0, steps: int = 64) -> torch.Tensor:
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


def analytic_gradient(P: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """The t-SNE gradient 4 sum_j (p_ij - q_ij)(y_i - y_j) / (1 + ||y_i - y_j||^2), row by row."""
    kernel = (1.0 / (1.0 + reference_distances(Y))).masked_fill(_diagonal(len(Y), Y.device), 0.0)
    weights = 4 * (P - kernel / kernel.sum()) * kernel
    return weights.sum(dim=1, keepdim=True) * Y - weights @ Y


REFERENCE_API = {
    "pairwise_squared_distances": reference_distances,
    "symmetric_gauss_neighbour_probability": reference_gauss_p,
    "find_sigmas": reference_find_sigmas,
    "symmetric_student_t_neighbour_probability": reference_student_t_q,
    "kl_divergence": reference_kl,
}


# --- map quality ---------------------------------------------------------------------------------


def trustworthiness(X: torch.Tensor, Y: torch.Tensor, k: int = 5) -> float:
    """Trustworthiness T(k) of the map Y of X (1: every map neighbour is a true neighbour)."""
    from sklearn.manifold import trustworthiness as sklearn_trustworthiness

    return float(sklearn_trustworthiness(X.double().numpy(), Y.double().numpy(), n_neighbors=k))


def nearest_neighbour_accuracy(Y: torch.Tensor, labels: torch.Tensor) -> float:
    """Leave-one-out 1-NN accuracy of the labels in the map Y."""
    distances = torch.cdist(Y.double(), Y.double()).fill_diagonal_(math.inf)
    return float((labels[distances.argmin(dim=1)] == labels).double().mean())


# --- running student code ------------------------------------------------------------------------


@contextlib.contextmanager
def reference_helpers(function: Callable, keep: tuple[str, ...] = ()) -> Iterator[None]:
    """While inside, `function` finds the reference versions of the API functions not named in `keep`."""
    namespace = getattr(function, "__globals__", None)
    if not isinstance(namespace, dict):
        yield
        return
    missing = object()
    saved = {name: namespace.get(name, missing) for name in REFERENCE_API if name not in keep}
    namespace.update({name: REFERENCE_API[name] for name in saved})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is missing:
                namespace.pop(name, None)
            else:
                namespace[name] = value


class _CallCounter(TorchFunctionMode):
    """Counts the torch functions and tensor methods called while it is active."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.calls += 1
        return func(*args, **(kwargs or {}))


def run(function: Callable, *args, **kwargs) -> Any:
    """Call a student function, turning anything but an AssertionError into a failed check with its reason."""
    name = getattr(function, "__name__", "your function")
    try:
        return function(*args, **kwargs)
    except AssertionError:
        raise
    except NotImplementedError:
        raise AssertionError(f"{name} is not implemented yet.") from None
    except Exception as error:  # report the student's exception as a failed check
        raise AssertionError(f"{name} raised {type(error).__name__}: {str(error)[:300]}") from None


def counted_calls(function: Callable, *args, **kwargs) -> int:
    """How many torch operations one call of `function` makes."""
    counter = _CallCounter()
    with counter:
        run(function, *args, **kwargs)
    return counter.calls


def _random(generator: torch.Generator, *shape: int, scale: float = 1.0) -> torch.Tensor:
    return scale * torch.randn(*shape, generator=generator)


def _images(n: int, start: int = 0) -> torch.Tensor:
    """n test images flattened to (n, 784)."""
    images, _ = split("test")
    return images[start:start + n].reshape(n, -1)


def _close(value: torch.Tensor, expected: torch.Tensor, rtol: float, atol: float) -> tuple[bool, float]:
    """Whether value matches expected, and the largest absolute difference."""
    difference = (value.double() - expected.double()).abs()
    return bool((difference <= atol + rtol * expected.double().abs()).all()), float(difference.max())


VECTORISED_GROWTH = 2.0  # a loop over points makes the operation count grow with N; vectorised code does not


def _judge_vectorised(small: int, large: int, sizes: tuple[int, int], function: str) -> None:
    assert large <= VECTORISED_GROWTH * small + 10, (
        f"{function} made {small} tensor operations for {sizes[0]} points but {large} for {sizes[1]} points: "
        "the work grows with a Python loop over the points. Compute all pairs at once with matrix products "
        "or broadcasting (see the hint in the notebook).")


# --- pairwise_squared_distances ------------------------------------------------------------------


def collect_pairwise_distances(pairwise_squared_distances: Callable) -> dict:
    """Distances of a few inputs, and the operation counts for 60 and 240 points."""
    generator = torch.Generator().manual_seed(40)
    inputs = [torch.tensor([[0.0, 0.0], [3.0, 4.0], [1.0, 1.0]]), _random(generator, 1, 3),
              _random(generator, 30, 7, scale=3.0), _images(12)]
    out = {"cases": []}
    with reference_helpers(pairwise_squared_distances, keep=("pairwise_squared_distances",)):
        for X in inputs:
            out["cases"].append({"X": X, "D": as_plain(run(pairwise_squared_distances, X.clone()))})
        out["calls"] = [counted_calls(pairwise_squared_distances, _random(generator, n, 4)) for n in (60, 240)]
    return out


def judge_pairwise_distances(out: dict) -> None:
    """Shapes, values against ||x_i - x_j||^2, symmetry, zero diagonal, and no loop over points."""
    for case in out["cases"]:
        X = case["X"]
        n = len(X)
        D = require_tensor(case["D"], f"pairwise_squared_distances of an input of shape {tuple(X.shape)}", (n, n))
        expected = (X.double()[:, None, :] - X.double()[None, :, :]).pow(2).sum(dim=2)
        atol = 1e-5 * (1.0 + float(X.double().pow(2).sum(dim=1).max()))
        ok, worst = _close(D, expected, rtol=1e-4, atol=atol)
        assert ok, (
            f"pairwise_squared_distances on an input of shape {tuple(X.shape)} differs from ||x_i - x_j||^2 by up "
            f"to {worst:.4g}. D[i, j] is the squared Euclidean distance (no square root) between rows i and j.")
        assert float(D.diagonal().abs().max()) <= atol, "The diagonal of the distances should be 0 (clamp rounding)."
        assert float(D.min()) >= -atol, "Squared distances cannot be negative: clamp rounding errors at 0."
    _judge_vectorised(*out["calls"], (60, 240), "pairwise_squared_distances")


@hidden_check
def check_pairwise_distances(pairwise_squared_distances: Callable) -> None:
    """Hidden check of pairwise_squared_distances."""
    with single_thread():
        judge_pairwise_distances(collect_pairwise_distances(pairwise_squared_distances))


# --- symmetric_gauss_neighbour_probability -------------------------------------------------------


def _gauss_inputs() -> list[tuple[torch.Tensor, Any, str]]:
    """(X, sigma, description) cases: fixed float sigmas and per-point sigma tensors."""
    generator = torch.Generator().manual_seed(41)
    small = _random(generator, 12, 5, scale=2.0)
    images = _images(60, start=100)
    return [
        (small, 1.5, "a float sigma = 1.5"),
        (small, 0.5 + 2.5 * torch.rand(12, generator=generator), "a tensor of 12 per-point sigmas"),
        (images, 10.0, "60 MNIST images and sigma = 10.0"),
        (images, 1.5 + 1.5 * torch.rand(60, generator=generator), "60 MNIST images and per-point sigmas"),
    ]


def collect_gauss_p(symmetric_gauss_neighbour_probability: Callable) -> dict:
    """P for float and per-point sigmas on random points and on MNIST images."""
    out = {"cases": []}
    with reference_helpers(symmetric_gauss_neighbour_probability, keep=("symmetric_gauss_neighbour_probability",)):
        for X, sigma, what in _gauss_inputs():
            argument = sigma.clone() if isinstance(sigma, torch.Tensor) else sigma
            P = run(symmetric_gauss_neighbour_probability, X.clone(), argument)
            out["cases"].append({"X": X, "sigma": sigma, "what": what, "P": as_plain(P)})
    return out


def _judge_joint(M: torch.Tensor, name: str, what: str) -> None:
    """M is a joint distribution over pairs: non-negative, zero diagonal, symmetric, summing to 1."""
    scale = float(M.abs().max()) + 1e-30
    assert float(M.min()) >= -1e-6 * scale, f"{name} for {what} has negative entries; probabilities are >= 0."
    assert float(M.diagonal().abs().max()) <= 1e-6 * scale, (
        f"{name} for {what} has non-zero diagonal entries; a point is not its own neighbour, so the diagonal "
        "must be exactly 0 (leave k = i out of the normalising sum too).")
    assert torch.allclose(M, M.T, rtol=1e-4, atol=1e-6 * scale), f"{name} for {what} should be symmetric."
    assert abs(float(M.double().sum()) - 1.0) < 1e-4, (
        f"{name} for {what} sums to {float(M.double().sum()):.6g}; the joint probabilities of all pairs sum to 1.")


def judge_gauss_p(out: dict) -> None:
    """P is a symmetric joint distribution with zero diagonal and matches the formula."""
    for case in out["cases"]:
        n, what = len(case["X"]), case["what"]
        P = require_tensor(case["P"], f"symmetric_gauss_neighbour_probability for {what}", (n, n))
        scale = float(P.abs().max()) + 1e-30
        assert torch.allclose(P, P.T, rtol=1e-4, atol=1e-6 * scale), (
            f"P for {what} is not symmetric. The joint probability is p_ij = (p_j|i + p_i|j) / (2N): "
            "average the conditional matrix with its transpose.")
        _judge_joint(P, "P", what)
        expected = reference_gauss_p(case["X"].double(), case["sigma"].double()
                                     if isinstance(case["sigma"], torch.Tensor) else case["sigma"])
        ok, worst = _close(P, expected, rtol=1e-3, atol=1e-4 * float(expected.max()))
        assert ok, (
            f"P for {what} differs from the formula by up to {worst:.3g} (largest entry {float(expected.max()):.3g}). "
            "Check the exponent -||x_i - x_j||^2 / (2 sigma_i^2) (sigma squared), that row i uses sigma_i, and "
            "that each row p_j|i is normalised over j != i before symmetrising.")


@hidden_check
def check_gauss_p(symmetric_gauss_neighbour_probability: Callable) -> None:
    """Hidden check of symmetric_gauss_neighbour_probability."""
    with single_thread():
        judge_gauss_p(collect_gauss_p(symmetric_gauss_neighbour_probability))


# --- find_sigmas ----------------------------------------------------------------------------------

PERPLEXITY_TOLERANCE = 0.01  # relative; the notebook asks for a much tighter bisection


def collect_find_sigmas(find_sigmas: Callable) -> dict:
    """Sigmas for MNIST images (default and given perplexities) and random points; operation counts."""
    generator = torch.Generator().manual_seed(42)
    images = _images(150, start=200)
    cases = [(images, None), (images, 10.0), (_random(generator, 80, 6), 20.0)]
    out = {"cases": []}
    with reference_helpers(find_sigmas, keep=("find_sigmas",)):
        for X, perplexity in cases:
            sigmas = run(find_sigmas, X.clone()) if perplexity is None else run(find_sigmas, X.clone(),
                                                                                  perplexity=perplexity)
            out["cases"].append({"X": X, "perplexity": 30.0 if perplexity is None else perplexity,
                                 "default": perplexity is None, "sigmas": as_plain(sigmas)})
        out["calls"] = [counted_calls(find_sigmas, _random(generator, n, 6), perplexity=20.0) for n in (40, 160)]
    return out


def judge_find_sigmas(out: dict) -> None:
    """One positive sigma per point, each giving its point the target perplexity."""
    for case in out["cases"]:
        X, target = case["X"], case["perplexity"]
        call = "find_sigmas(X)" if case["default"] else f"find_sigmas(X, perplexity={target:g})"
        sigmas = require_tensor(case["sigmas"], f"{call} for {len(X)} points", (len(X),))
        assert (sigmas > 0).all(), f"{call} returned sigmas that are not positive."
        reached = perplexities(X, sigmas)
        error = (reached / target - 1).abs()
        worst = int(error.argmax())
        missed = int((error > PERPLEXITY_TOLERANCE).sum())
        assert missed == 0, (
            f"With the sigmas of {call}, {missed} of {len(X)} points miss the perplexity {target:g} by more than "
            f"{PERPLEXITY_TOLERANCE:.0%} (point {worst}: sigma {float(sigmas[worst]):.4g} gives perplexity "
            f"{float(reached[worst]):.4g}). Each point needs its own sigma_i: bisect every sigma_i until "
            "2^H(P_i) equals the perplexity" + (" (the default perplexity is 30)." if case["default"] else "."))
    _judge_vectorised(*out["calls"], (40, 160), "find_sigmas")


@hidden_check
def check_find_sigmas(find_sigmas: Callable) -> None:
    """Hidden check of find_sigmas."""
    with single_thread():
        judge_find_sigmas(collect_find_sigmas(find_sigmas))


# --- symmetric_student_t_neighbour_probability ---------------------------------------------------


def collect_student_t_q(symmetric_student_t_neighbour_probability: Callable) -> dict:
    """Q of a few maps, and the gradient of a weighted sum of Q with respect to the map."""
    generator = torch.Generator().manual_seed(43)
    maps = [torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 3.0]]), _random(generator, 8, 2, scale=2.0),
            _random(generator, 40, 2, scale=5.0)]
    out = {"cases": []}
    function = symmetric_student_t_neighbour_probability
    with reference_helpers(function, keep=("symmetric_student_t_neighbour_probability",)):
        for Y in maps:
            out["cases"].append({"Y": Y, "Q": as_plain(run(function, Y.clone()))})
        Y = _random(generator, 20, 2, scale=2.0).requires_grad_()
        weights = torch.rand(20, 20, generator=generator)
        Q = run(function, Y)
        gradient = None
        if isinstance(Q, torch.Tensor) and Q.shape == (20, 20) and Q.requires_grad:
            gradient = as_plain(torch.autograd.grad((Q * weights).sum(), Y, allow_unused=True)[0])
        out["gradient"] = gradient
    return out


def judge_student_t_q(out: dict) -> None:
    """Q is a symmetric joint distribution with zero diagonal, matches the formula and is differentiable."""
    for case in out["cases"]:
        n = len(case["Y"])
        what = f"a map of {n} points"
        Q = require_tensor(case["Q"], f"symmetric_student_t_neighbour_probability for {what}", (n, n))
        expected = reference_student_t_q(case["Y"].double())
        assert abs(float(Q.double().sum()) - 1.0) < 1e-4, (
            f"Q for {what} sums to {float(Q.double().sum()):.6g}: normalise by the sum over all pairs k != l "
            "(not row by row), so that all q_ij together sum to 1.")
        _judge_joint(Q, "Q", what)
        ok, worst = _close(Q, expected, rtol=1e-4, atol=1e-6 * float(expected.max()))
        assert ok, (
            f"Q for {what} differs from the formula by up to {worst:.3g}. The Student-t kernel is "
            "(1 + ||y_i - y_j||^2)^-1 (not a Gaussian), and the normaliser is the sum of the kernel over all "
            "pairs k != l.")
    gradient = out["gradient"]
    assert isinstance(gradient, torch.Tensor) and torch.isfinite(gradient).all() and gradient.abs().sum() > 0, (
        "Gradients should flow from Q back to the map points: use torch operations only, no .detach(), .item() "
        "or NumPy, so that autograd can optimise the map.")


@hidden_check
def check_student_t_q(symmetric_student_t_neighbour_probability: Callable) -> None:
    """Hidden check of symmetric_student_t_neighbour_probability."""
    with single_thread():
        judge_student_t_q(collect_student_t_q(symmetric_student_t_neighbour_probability))


# --- kl_divergence --------------------------------------------------------------------------------


def _kl_inputs() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """(P, Q) pairs: generic, equal, and a P with many zeros."""
    generator = torch.Generator().manual_seed(44)
    P = reference_gauss_p(_random(generator, 20, 4), 1.0)
    Q = reference_student_t_q(_random(generator, 20, 2, scale=2.0))
    mask = torch.rand(20, 20, generator=generator) < 0.5
    sparse = P * (mask & mask.T)
    return {"random P and Q": (P, Q), "P equal to Q": (Q.clone(), Q.clone()),
            "a P with many zeros": (sparse / sparse.sum(), Q)}


def collect_kl(kl_divergence: Callable) -> dict:
    """KL values for fixed (P, Q) pairs, and the autograd gradient with respect to the map."""
    out = {"values": {}}
    with reference_helpers(kl_divergence, keep=("kl_divergence",)):
        for name, (P, Q) in _kl_inputs().items():
            out["values"][name] = {"P": P, "Q": Q, "value": as_plain(run(kl_divergence, P.clone(), Q.clone()))}
        generator = torch.Generator().manual_seed(45)
        P = reference_gauss_p(_random(generator, 25, 3), 1.2)
        Y = _random(generator, 25, 2, scale=2.0).requires_grad_()
        loss = run(kl_divergence, P, reference_student_t_q(Y))
        gradient = None
        if isinstance(loss, torch.Tensor) and loss.numel() == 1 and loss.requires_grad:
            gradient = as_plain(torch.autograd.grad(loss.sum(), Y, allow_unused=True)[0])
        out["gradient"] = {"P": P, "Y": Y.detach().clone(), "gradient": gradient}
    return out


def judge_kl(out: dict) -> None:
    """The KL divergence matches its formula, is 0 for P == Q, finite with zeros in P; its gradient is t-SNE's."""
    for name, case in out["values"].items():
        value = case["value"]
        assert isinstance(value, torch.Tensor) and value.numel() == 1, (
            f"kl_divergence should return a scalar tensor, got {value}.")
        assert torch.isfinite(value).all(), (
            f"kl_divergence returned {float(value)} for {name}. Terms with p_ij = 0 count as 0 "
            "(0 log 0 = 0), and the diagonal (p_ii = q_ii = 0) is left out.")
        expected = float(reference_kl(case["P"].double(), case["Q"].double()))
        assert abs(float(value) - expected) <= 1e-4 * abs(expected) + 1e-5, (
            f"kl_divergence(P, Q) for {name} returned {float(value):.6g}, expected {expected:.6g} = "
            "sum over i != j of p_ij log(p_ij / q_ij) (P, the data, weighs the log-ratio).")
    case = out["gradient"]
    gradient = case["gradient"]
    assert isinstance(gradient, torch.Tensor) and tuple(gradient.shape) == tuple(case["Y"].shape), (
        "kl_divergence should stay differentiable: autograd could not compute the gradient with respect to the "
        "map points. Use torch operations only.")
    assert torch.isfinite(gradient).all(), (
        "The gradient of kl_divergence with respect to the map contains NaN. Autograd also differentiates the "
        "entries you leave out: never take the log of the zero diagonal of Q (replace it before the log, or use "
        "torch.xlogy on the off-diagonal entries).")
    expected = analytic_gradient(case["P"].double(), case["Y"].double())
    ok, worst = _close(gradient, expected, rtol=1e-3, atol=1e-4 * float(expected.abs().max()))
    assert ok, (
        f"The autograd gradient of your kl_divergence differs from the t-SNE gradient "
        f"4 sum_j (p_ij - q_ij)(y_i - y_j)(1 + ||y_i - y_j||^2)^-1 by up to {worst:.3g}.")


@hidden_check
def check_kl(kl_divergence: Callable) -> None:
    """Hidden check of kl_divergence and of its gradient."""
    with single_thread():
        judge_kl(collect_kl(kl_divergence))


# --- tsne -----------------------------------------------------------------------------------------

CHECK_POINTS, CHECK_ITERATIONS, EARLY_ITERATIONS, SEED = 300, 300, 20, 3
SGD = {"learning_rate": 10.0, "optimizer": "sgd", "sigma": 2.0}
ADAM = {"learning_rate": 0.1, "optimizer": "adam", "perplexity": 30.0}


def _tsne(tsne: Callable, X: torch.Tensor, n_iter: int, settings: dict, seed: int = SEED) -> Any:
    return as_plain(run(tsne, X, n_iter, settings["learning_rate"], optimizer=settings["optimizer"],
                        seed=seed, **{k: v for k, v in settings.items() if k in ("sigma", "perplexity")}))


def collect_tsne(tsne: Callable) -> dict:
    """Maps of 300 test images: short runs for determinism and arguments, full runs for both optimisers."""
    images, labels = split("test")
    X = images[:CHECK_POINTS].reshape(CHECK_POINTS, -1)
    device = grading_device()
    data = X.to(device)
    out = {"X": X, "labels": labels[:CHECK_POINTS], "device": str(device)}
    with reference_helpers(tsne):
        out["early_sgd"] = _tsne(tsne, data, EARLY_ITERATIONS, SGD)
        out["early_sgd_again"] = _tsne(tsne, data, EARLY_ITERATIONS, SGD)
        out["early_sgd_other_seed"] = _tsne(tsne, data, EARLY_ITERATIONS, SGD, seed=SEED + 1)
        out["early_sgd_other_sigma"] = _tsne(tsne, data, EARLY_ITERATIONS, dict(SGD, sigma=10.0))
        out["early_adam"] = _tsne(tsne, data, EARLY_ITERATIONS, ADAM)
        out["early_adam_other_perplexity"] = _tsne(tsne, data, EARLY_ITERATIONS, dict(ADAM, perplexity=5.0))
        out["sgd"] = _tsne(tsne, data, CHECK_ITERATIONS, SGD)
        out["adam"] = _tsne(tsne, data, CHECK_ITERATIONS, ADAM)
    return out


def map_figures(X: torch.Tensor, Y: torch.Tensor, labels: torch.Tensor, P: torch.Tensor) -> dict[str, float]:
    """KL (under P), trustworthiness T(5) and leave-one-out 1-NN accuracy of the map Y."""
    return {"kl": float(reference_kl(P.double(), reference_student_t_q(Y.double()))),
            "trustworthiness": trustworthiness(X, Y), "1nn": nearest_neighbour_accuracy(Y, labels)}


def judge_tsne(out: dict) -> None:
    """Maps of the right shape, deterministic per seed, using their arguments, and good for both optimisers."""
    n = len(out["X"])
    for key in ("early_sgd", "early_sgd_again", "early_sgd_other_seed", "early_sgd_other_sigma", "early_adam",
                "early_adam_other_perplexity", "sgd", "adam"):
        require_tensor(out[key], f"the map returned by tsne (run '{key}')", (n, 2))
    assert torch.allclose(out["early_sgd"], out["early_sgd_again"], atol=1e-5), (
        "Two runs of tsne with the same seed gave different maps: draw the initial map from a generator seeded "
        "with `seed` (torch.Generator().manual_seed(seed)).")
    assert not torch.allclose(out["early_sgd"], out["early_sgd_other_seed"], atol=1e-6), (
        "tsne gave the same map for seeds 3 and 4: the seed should choose the random initial map.")
    assert not torch.allclose(out["early_sgd"], out["early_sgd_other_sigma"], atol=1e-6), (
        "tsne gave the same map for sigma=2.0 and sigma=10.0: compute P with the sigma it is given.")
    assert not torch.allclose(out["early_adam"], out["early_adam_other_perplexity"], atol=1e-6), (
        "tsne gave the same map for perplexity=30 and perplexity=5: when sigma is None, compute the sigmas with "
        "find_sigmas(X, perplexity).")
    X, labels = out["X"], out["labels"]
    runs = (("sgd", "gradient descent (learning rate 10, sigma 2.0)", reference_gauss_p(X.double(), 2.0)),
            ("adam", "Adam (learning rate 0.1, perplexity 30)",
             reference_gauss_p(X.double(), reference_find_sigmas(X.double(), 30.0))))
    for key, what, P in runs:
        early = map_figures(X, out[f"early_{key}"], labels, P)
        final = map_figures(X, out[key], labels, P)
        assert final["kl"] < 0.9 * early["kl"], (
            f"With {what}, the KL divergence of your map went from {early['kl']:.3f} after {EARLY_ITERATIONS} "
            f"iterations to {final['kl']:.3f} after {CHECK_ITERATIONS}: it should keep decreasing. Check the "
            "sign of the update, that the gradients are zeroed in every iteration, and that the optimizer updates "
            "the map points.")
        for figure in ("trustworthiness", "1nn"):
            reference = FIGURES[f"check_{key}_{figure}"]
            name = "trustworthiness T(5)" if figure == "trustworthiness" else "leave-one-out 1-NN accuracy"
            assert final[figure] > reference.threshold, (
                f"With {what}, {CHECK_ITERATIONS} iterations on {n} test images, your map reaches a {name} of "
                f"{final[figure]:.3f}; it should be above {reference.threshold} (a reference solution reaches "
                f"about {reference.reference}).")


@hidden_check
def check_tsne(tsne: Callable) -> None:
    """Hidden check of tsne, run with the reference versions of the functions it builds on."""
    with single_thread():
        judge_tsne(collect_tsne(tsne))
