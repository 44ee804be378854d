"""Collectors of notebook 4_tsne (t-SNE from scratch): call the student's functions, return plain data.

Every function runs with the student's own versions of the functions it builds on: the kernel holds no
reference implementation. All inputs come from the submission's secret seed; the judge derives the same
ones with the helpers below. The t-SNE runs are small (300 images, 300 iterations).
"""
from __future__ import annotations

import contextlib
import functools
import traceback
from typing import Any, Callable, Iterator

import torch
from torch.overrides import TorchFunctionMode

from grader.collect.common import CollectionFailed, Inputs, as_plain, call, grading_device, split

COUNT_SIZES = {"pairwise_squared_distances": (60, 240), "find_sigmas": (40, 160)}  # points per operation count
TSNE_POINTS, TSNE_ITERATIONS, EARLY_ITERATIONS = 300, 300, 20
API_POINTS, API_ITERATIONS = 100, 4   # short runs that check the initial map, the callback and the defaults
SGD = {"learning_rate": 10.0, "optimizer": "sgd", "sigma": 2.0}
ADAM = {"learning_rate": 0.1, "optimizer": "adam", "perplexity": 30.0}


# --- secret inputs, shared with the judge ---------------------------------------------------------

def secret_images(inputs: Inputs, count: int, stream: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A secret subset of `count` test images flattened to (count, 784), and their labels."""
    images, labels = split("test")
    index = inputs.subset(len(images), count, stream)
    return images[index].reshape(count, -1), labels[index]


def count_inputs(inputs: Inputs, function: str, features: int, stream: str) -> list[torch.Tensor]:
    """Random points of the two sizes whose operation counts are compared for `function`."""
    generator = inputs.generator(stream)
    return [torch.randn(n, features, generator=generator) for n in COUNT_SIZES[function]]


def distance_inputs(inputs: Inputs) -> list[torch.Tensor]:
    """Inputs of pairwise_squared_distances: a fixed triangle, one point, spread and close points, test images."""
    generator = inputs.generator("distance points")
    return [torch.tensor([[0.0, 0.0], [3.0, 4.0], [1.0, 1.0]]), torch.randn(1, 3, generator=generator),
            3.0 * torch.randn(30, 7, generator=generator), secret_images(inputs, 12, "distance images")[0],
            0.05 * torch.randn(20, 4, generator=generator)]


def gauss_inputs(inputs: Inputs) -> list[tuple[torch.Tensor, float | torch.Tensor, str]]:
    """(X, sigma, description) cases of symmetric_gauss_neighbour_probability: float and per-point sigmas."""
    generator = inputs.generator("gauss points")
    small = 2.0 * torch.randn(12, 5, generator=generator)
    small_sigmas = 0.5 + 2.5 * torch.rand(12, generator=generator)
    image_sigmas = 1.5 + 1.5 * torch.rand(60, generator=generator)
    images = secret_images(inputs, 60, "gauss images")[0]
    return [(small, 1.5, "a float sigma = 1.5"), (small, small_sigmas, "a tensor of 12 per-point sigmas"),
            (images, 10.0, "60 MNIST images and sigma = 10.0"),
            (images, image_sigmas, "60 MNIST images and per-point sigmas")]


def sigma_inputs(inputs: Inputs) -> list[tuple[torch.Tensor, float | None]]:
    """(X, perplexity) cases of find_sigmas; None stands for the default perplexity."""
    images = secret_images(inputs, 150, "sigma images")[0]
    points = torch.randn(80, 6, generator=inputs.generator("sigma points"))
    return [(images, None), (images, 10.0), (points, 20.0)]


def map_inputs(inputs: Inputs) -> list[torch.Tensor]:
    """Maps Y (N, 2) given to symmetric_student_t_neighbour_probability."""
    generator = inputs.generator("maps")
    return [torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 3.0]]), 2.0 * torch.randn(8, 2, generator=generator),
            5.0 * torch.randn(40, 2, generator=generator)]


def map_gradient_inputs(inputs: Inputs) -> tuple[torch.Tensor, torch.Tensor]:
    """A map (20, 2) and the weights (20, 20) of the weighted sum of Q whose gradient is collected."""
    generator = inputs.generator("map gradient")
    return 2.0 * torch.randn(20, 2, generator=generator), torch.rand(20, 20, generator=generator)


def random_joint(generator: torch.Generator, n: int, spread: float) -> torch.Tensor:
    """A random symmetric (n, n) distribution over pairs with a zero diagonal (no t-SNE formula)."""
    weights = torch.exp(spread * torch.randn(n, n, generator=generator))
    weights = (weights + weights.T) * (1 - torch.eye(n))
    return weights / weights.sum()


def kl_inputs(inputs: Inputs) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(description, P, Q) cases of kl_divergence: generic, equal, and a P with many zeros."""
    generator = inputs.generator("kl values")
    P, Q = random_joint(generator, 20, 2.0), random_joint(generator, 20, 1.0)
    mask = torch.rand(20, 20, generator=generator) < 0.5
    sparse = P * (mask & mask.T)
    return [("random P and Q", P, Q), ("P equal to Q", Q.clone(), Q.clone()),
            ("a P with many zeros", sparse / sparse.sum(), Q)]


def kl_gradient_inputs(inputs: Inputs) -> tuple[torch.Tensor, torch.Tensor]:
    """(P, Q) at which the gradient of kl_divergence with respect to Q is collected."""
    generator = inputs.generator("kl gradient")
    return random_joint(generator, 25, 1.5), random_joint(generator, 25, 1.0)


def tsne_images(inputs: Inputs) -> tuple[torch.Tensor, torch.Tensor]:
    """The secret 300 test images (flattened) and labels that tsne maps."""
    return secret_images(inputs, TSNE_POINTS, "tsne images")


def tsne_seed(inputs: Inputs) -> int:
    """The seed of the main tsne runs (another run uses this seed + 1)."""
    return inputs.torch_seed("tsne seed")


# --- calling student code -------------------------------------------------------------------------


def call_building_on(function: Callable, *args, **kwargs) -> Any:
    """`call` for a function that calls the student's other functions: a stub among them is named."""
    try:
        return call(function, *args, **kwargs)
    except CollectionFailed as failure:
        stub = failure.__context__
        frames = traceback.extract_tb(stub.__traceback__) if isinstance(stub, NotImplementedError) else []
        inner = frames[-1].name if frames else ""
        name = getattr(function, "__name__", "This function")
        if not inner or inner == name:
            raise
        raise CollectionFailed(f"{name} calls your {inner}, which is not implemented yet: {name} is graded with "
                               f"your own {inner}, so complete it (and pass its tests) first.") from None


class CallCounter(TorchFunctionMode):
    """Counts the torch functions and tensor methods called while it is active."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.calls += 1
        return func(*args, **(kwargs or {}))


def counted_calls(function: Callable, *args, **kwargs) -> int:
    """How many torch operations one call of `function` makes."""
    counter = CallCounter()
    with counter:
        call_building_on(function, *args, **kwargs)
    return counter.calls


# --- collectors -----------------------------------------------------------------------------------


def collect_pairwise_distances(inputs: Inputs, pairwise_squared_distances: Callable) -> dict:
    """Distances of the secret inputs, and the operation counts for 60 and 240 points."""
    cases = [as_plain(call(pairwise_squared_distances, X.clone())) for X in distance_inputs(inputs)]
    calls = [counted_calls(pairwise_squared_distances, X)
             for X in count_inputs(inputs, "pairwise_squared_distances", 4, "distance counts")]
    return {"cases": cases, "calls": calls}


def collect_gauss_p(inputs: Inputs, symmetric_gauss_neighbour_probability: Callable) -> dict:
    """P for float and per-point sigmas on random points and on test images."""
    cases = []
    for X, sigma, _ in gauss_inputs(inputs):
        argument = sigma.clone() if isinstance(sigma, torch.Tensor) else sigma
        cases.append(as_plain(call_building_on(symmetric_gauss_neighbour_probability, X.clone(), argument)))
    return {"cases": cases}


def collect_find_sigmas(inputs: Inputs, find_sigmas: Callable) -> dict:
    """Sigmas for test images (default and given perplexities) and random points; operation counts."""
    cases = []
    for X, perplexity in sigma_inputs(inputs):
        if perplexity is None:
            cases.append(as_plain(call_building_on(find_sigmas, X.clone())))
        else:
            cases.append(as_plain(call_building_on(find_sigmas, X.clone(), perplexity=perplexity)))
    calls = [counted_calls(find_sigmas, X, perplexity=20.0)
             for X in count_inputs(inputs, "find_sigmas", 6, "sigma counts")]
    return {"cases": cases, "calls": calls}


def collect_student_t_q(inputs: Inputs, symmetric_student_t_neighbour_probability: Callable) -> dict:
    """Q of the secret maps, and the gradient of a weighted sum of Q with respect to the map."""
    function = symmetric_student_t_neighbour_probability
    cases = [as_plain(call_building_on(function, Y.clone())) for Y in map_inputs(inputs)]
    Y, weights = map_gradient_inputs(inputs)
    Y = Y.clone().requires_grad_()
    Q = call_building_on(function, Y)
    gradient = None
    if isinstance(Q, torch.Tensor) and tuple(Q.shape) == (20, 20) and Q.requires_grad:
        gradient = as_plain(torch.autograd.grad((Q * weights).sum(), Y, allow_unused=True)[0])
    return {"cases": cases, "gradient": gradient}


def collect_kl(inputs: Inputs, kl_divergence: Callable) -> dict:
    """KL values for the secret (P, Q) pairs, and the autograd gradient of the KL with respect to Q."""
    values = [as_plain(call(kl_divergence, P.clone(), Q.clone())) for _, P, Q in kl_inputs(inputs)]
    P, Q = kl_gradient_inputs(inputs)
    Q = Q.clone().requires_grad_()
    loss = call(kl_divergence, P.clone(), Q.clone())  # a non-leaf copy, as Q is inside tsne
    gradient = None
    if isinstance(loss, torch.Tensor) and loss.numel() == 1 and loss.requires_grad:
        gradient = as_plain(torch.autograd.grad(loss.sum(), Q, allow_unused=True)[0])
    return {"values": values, "gradient": gradient}


def tsne_runs(inputs: Inputs) -> dict[str, tuple[int, dict, int]]:
    """The collected runs of tsne: (iterations, settings, seed) by name."""
    seed = tsne_seed(inputs)
    return {
        "early_sgd": (EARLY_ITERATIONS, SGD, seed),
        "early_sgd_again": (EARLY_ITERATIONS, SGD, seed),
        "early_sgd_other_seed": (EARLY_ITERATIONS, SGD, seed + 1),
        "early_sgd_other_sigma": (EARLY_ITERATIONS, dict(SGD, sigma=10.0), seed),
        "early_adam": (EARLY_ITERATIONS, ADAM, seed),
        "early_adam_other_perplexity": (EARLY_ITERATIONS, dict(ADAM, perplexity=5.0), seed),
        "sgd": (TSNE_ITERATIONS, SGD, seed),
        "adam": (TSNE_ITERATIONS, ADAM, seed),
    }


# The functions tsne builds on, by their names in the notebook, with the collector of each one's own hidden test
# and the key of that collection holding its results on the secret cases.
HELPERS = {"pairwise_squared_distances": (collect_pairwise_distances, "cases"),
           "symmetric_gauss_neighbour_probability": (collect_gauss_p, "cases"),
           "find_sigmas": (collect_find_sigmas, "cases"),
           "symmetric_student_t_neighbour_probability": (collect_student_t_q, "cases"),
           "kl_divergence": (collect_kl, "values")}


@contextlib.contextmanager
def recording_helpers(function: Callable, used: set[str]) -> Iterator[None]:
    """While inside, note in `used` which of the notebook's t-SNE helpers `function` calls (through its globals)."""
    space = getattr(function, "__globals__", {})
    saved = {name: space[name] for name in HELPERS if callable(space.get(name))}

    def recorded(name: str, helper: Callable) -> Callable:
        @functools.wraps(helper)
        def wrapper(*args, **kwargs):
            used.add(name)
            return helper(*args, **kwargs)
        return wrapper

    space.update({name: recorded(name, helper) for name, helper in saved.items()})
    try:
        yield
    finally:
        space.update(saved)


def helper_results(function: Callable, used: set[str], inputs: Inputs) -> dict:
    """The results of each helper `function` used on that helper's own secret cases (what its own test judges)."""
    space = getattr(function, "__globals__", {})
    return {name: collector(inputs, space[name])[key] for name, (collector, key) in HELPERS.items() if name in used}


def collect_tsne(inputs: Inputs, tsne: Callable) -> dict:
    """Maps of the secret test images, made with the student's own helpers: short and full runs, and the API;
    and the results of the helpers tsne used, on their own tests' cases."""
    X = tsne_images(inputs)[0].to(grading_device())
    out, used = {}, set()
    with recording_helpers(tsne, used):
        for key, (n_iter, settings, seed) in tsne_runs(inputs).items():
            arguments = {name: value for name, value in settings.items() if name in ("sigma", "perplexity")}
            out[key] = as_plain(call_building_on(tsne, X.clone(), n_iter, settings["learning_rate"],
                                                 optimizer=settings["optimizer"], seed=seed, **arguments))
    few, seed = X[:API_POINTS].clone(), tsne_seed(inputs)
    out["initial"] = as_plain(call_building_on(tsne, few.clone(), 0, SGD["learning_rate"], sigma=SGD["sigma"], seed=seed))
    out["default_perplexity"] = as_plain(call_building_on(tsne, few.clone(), API_ITERATIONS, ADAM["learning_rate"],
                                                          optimizer="adam", seed=seed))
    out["perplexity_30"] = as_plain(call_building_on(tsne, few.clone(), API_ITERATIONS, ADAM["learning_rate"],
                                                     optimizer="adam", perplexity=30.0, seed=seed))
    calls = []
    returned = call_building_on(tsne, few.clone(), API_ITERATIONS, SGD["learning_rate"], sigma=SGD["sigma"], seed=seed,
                                callback=lambda *arguments: calls.append([as_plain(a) if isinstance(a, torch.Tensor)
                                                                          else a for a in arguments]))
    out["callback_returned"] = as_plain(returned)
    out["callback_calls"] = [[a if type(a) in (int, float, bool) or isinstance(a, torch.Tensor) else type(a).__name__
                              for a in arguments] for arguments in calls[:API_ITERATIONS + 5]]
    out["helpers"] = helper_results(tsne, used, inputs)
    return out
