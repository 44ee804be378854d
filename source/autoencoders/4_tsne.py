# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 4. t-SNE from scratch
#
# t-SNE draws a map of high-dimensional points: every image $x_i$ gets a point $y_i$ in the plane,
# placed so that images that are close in pixel space stay close in the map. It compares two sets of
# *neighbour probabilities*:
#
# * $P$, computed once from the data with a Gaussian kernel: $p_{ij}$ is large when $x_i$ and $x_j$
#   are close;
# * $Q$, computed from the map with a heavy-tailed Student-t kernel: $q_{ij}$ is large when $y_i$ and
#   $y_j$ are close;
#
# and moves the map points so that $Q$ becomes like $P$, by minimising the KL divergence
# $\mathrm{KL}(P\,\|\,Q)$. You will write every piece with PyTorch tensors and let autograd compute
# the gradient.
#
# In this notebook you will
# 1. compute all pairwise squared distances at once (`pairwise_squared_distances`),
# 2. turn them into the joint probabilities $P$ for a fixed bandwidth $\sigma$
#    (`symmetric_gauss_neighbour_probability`),
# 3. compute the map's joint probabilities $Q$ (`symmetric_student_t_neighbour_probability`),
# 4. write the loss (`kl_divergence`),
# 5. give every point its own bandwidth from a *perplexity* (`find_sigmas`),
# 6. put them together in `tsne`,
# 7. map 1,000 MNIST digits with gradient descent,
# 8. replace gradient descent by Adam,
# 9. map them again with a bandwidth per point, and
# 10. compare your t-SNE with scikit-learn's.
#
# **How grading works.** Each function has a test cell: visible checks run here, more are hidden and
# run when your notebook is graded. The hidden tests call your functions on small inputs (a few
# dozen points) and run your `tsne` on 300 images for 300 iterations. Every function is graded with
# your own versions of the functions it calls (`tsne` with your $P$, `find_sigmas`, $Q$ and KL), so
# make those pass their tests first: a mistake in one function can also cost the points of the
# functions that build on it. Only the notebook is submitted; no files need to be saved.
#
# **`skip_training`.** The experiments (1,000 iterations on 1,000 images: {{TIME.tsne_perplexity}} each for
# the reference solution on one thread of our test machine's processor, {{TIME.machine}}) run only while
# `skip_training = False`. During grading it is always `True`, so grading never runs them.

# %%
skip_training = False

# %% kind="guard" grade_id="skip_training_guard" points=0
# This cell is locked. While your notebook is graded it sets skip_training = True, so grading never
# runs the long t-SNE experiments.
### BEGIN HIDDEN TESTS
skip_training = True
### END HIDDEN TESTS

# %%
import math
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

from aelib.data import load_mnist
from aelib.training import pick_device

device = pick_device(skip_training)
print("Using", device)

# %% [markdown]
# ## Data
#
# We map the first 1,000 training images. Each image becomes a row of 784 pixel values in $[0, 1]$,
# so `X` has shape `(1000, 784)`; `labels` are only used to colour the maps and to judge them, never
# by t-SNE itself.

# %%
x_train, y_train = load_mnist("train")
n_points = 1000
X = x_train[:n_points].reshape(n_points, -1)
labels = y_train[:n_points]
print("X:", tuple(X.shape), " labels:", tuple(labels.shape))

# %% [markdown]
# ## 1. Pairwise squared distances
#
# Write `pairwise_squared_distances(X)`: for `X` of shape `(N, D)` it returns the `(N, N)` matrix
# with entries $D_{ij} = \|x_i - x_j\|^2$.
#
# Do it without a Python loop over the points. Expanding the square,
# $\|x_i - x_j\|^2 = \|x_i\|^2 + \|x_j\|^2 - 2\, x_i^\top x_j$, turns the whole matrix into one matrix
# product `X @ X.T` plus broadcasting (`torch.cdist` works too; square its result). Rounding can leave
# tiny negative numbers: clamp them at 0, and make the diagonal exactly 0. Use torch operations only:
# the same function will compute distances between map points, and gradients must flow through it.
#
# **Good:** the result matches $\|x_i - x_j\|^2$ to about $10^{-4}$ relative error, and the number of
# tensor operations does not grow with $N$ (the hidden test compares 60 and 240 points).

# %% kind="solution" grade_id="pairwise_squared_distances"
def pairwise_squared_distances(X):
    """Squared Euclidean distances (N, N) between the rows of X (N, D).

    Args:
        X: float tensor (N, D), one point per row (data points or map points), on any device.

    Returns:
        A tensor (N, N) with the dtype and device of X whose entry (i, j) is ||x_i - x_j||^2: never
        negative, exactly 0 on the diagonal, and differentiable with respect to X.
    """
    ### BEGIN SOLUTION
    squared_norms = (X * X).sum(dim=1)
    distances = squared_norms[:, None] + squared_norms[None, :] - 2 * X @ X.T
    diagonal = torch.eye(len(X), dtype=torch.bool, device=X.device)
    return distances.clamp_min(0.0).masked_fill(diagonal, 0.0)
    ### END SOLUTION


# %% kind="tests" grade_id="test_pairwise_distances" points=1
D = pairwise_squared_distances(torch.tensor([[0.0, 0.0], [3.0, 4.0], [1.0, 0.0]]))
assert tuple(D.shape) == (3, 3), f"expected shape (3, 3), got {tuple(D.shape)}"
assert torch.allclose(D, torch.tensor([[0.0, 25.0, 1.0], [25.0, 0.0, 20.0], [1.0, 20.0, 0.0]])), f"got {D}"
print("Visible tests passed.")
### BEGIN HIDDEN TESTS
import grader.collect.tsne
import grader.collect.common
grader.collect.common.store("test_pairwise_distances", grader.collect.tsne.collect_pairwise_distances, pairwise_squared_distances)
### END HIDDEN TESTS

# %% [markdown]
# ## 2. Neighbour probabilities in the data: $P$
#
# For each point $x_i$, t-SNE turns distances into a probability of picking $x_j$ as its neighbour,
# with a Gaussian kernel of bandwidth $\sigma_i$:
#
# $$p_{j|i} = \frac{\exp\!\left(-\|x_i - x_j\|^2 / (2\sigma_i^2)\right)}
#                  {\sum_{k \neq i} \exp\!\left(-\|x_i - x_k\|^2 / (2\sigma_i^2)\right)},
#   \qquad p_{i|i} = 0.$$
#
# Row $i$ of this matrix sums to 1. The joint probabilities are its symmetrised version
#
# $$p_{ij} = \frac{p_{j|i} + p_{i|j}}{2N},$$
#
# a symmetric `(N, N)` matrix with a zero diagonal whose entries all together sum to 1.
#
# Write `symmetric_gauss_neighbour_probability(X, sigma)`. `sigma` is either one number used for
# every point (a float) or a tensor of `N` per-point bandwidths, $\sigma_i$ being used in row $i$
# (reshape it to a column `(N, 1)` so it broadcasts over rows).
#
# *Tip:* with many dimensions the exponents are very negative, and `exp` can underflow to 0 for a
# whole row. `torch.softmax(logits, dim=1)` computes $p_{j|i}$ safely; set the diagonal logits to
# `-math.inf` so that $p_{i|i} = 0$.

# %% kind="solution" grade_id="symmetric_gauss_neighbour_probability"
def symmetric_gauss_neighbour_probability(X, sigma):
    """Joint probabilities P (N, N) of X (N, D) for one bandwidth or a tensor of N bandwidths.

    Args:
        X: float tensor (N, D) of data points, one per row.
        sigma: the Gaussian bandwidth, either one positive float shared by every point or a tensor (N,)
            of positive per-point values, sigma[i] being used for the conditional distribution of row i.

    Returns:
        A float tensor (N, N): the symmetrised neighbour probabilities p_ij = (p_j|i + p_i|j) / (2N),
        a symmetric matrix with a zero diagonal whose entries add up to 1.
    """
    ### BEGIN SOLUTION
    distances = pairwise_squared_distances(X)
    sigma = torch.as_tensor(sigma, dtype=distances.dtype, device=distances.device)
    if sigma.dim() > 0:
        sigma = sigma.reshape(-1, 1)
    logits = -distances / (2 * sigma**2)
    diagonal = torch.eye(len(X), dtype=torch.bool, device=X.device)
    conditional = torch.softmax(logits.masked_fill(diagonal, -math.inf), dim=1)
    return (conditional + conditional.T) / (2 * len(X))
    ### END SOLUTION


# %% kind="tests" grade_id="test_gauss_p" points=2
P = symmetric_gauss_neighbour_probability(torch.rand(6, 3), 0.5)
assert tuple(P.shape) == (6, 6), f"expected shape (6, 6), got {tuple(P.shape)}"
assert abs(float(P.sum()) - 1) < 1e-5, f"P should sum to 1, got {float(P.sum())}"
assert torch.allclose(P, P.T), "P should be symmetric"
assert float(P.diagonal().abs().max()) == 0, "the diagonal of P should be 0"
P = symmetric_gauss_neighbour_probability(torch.rand(6, 3), torch.linspace(0.5, 2.0, 6))
assert tuple(P.shape) == (6, 6) and abs(float(P.sum()) - 1) < 1e-5, "per-point sigmas: P should be (6, 6) and sum to 1"
print("Visible tests passed.")
### BEGIN HIDDEN TESTS
import grader.collect.tsne
import grader.collect.common
grader.collect.common.store("test_gauss_p", grader.collect.tsne.collect_gauss_p, symmetric_gauss_neighbour_probability)
### END HIDDEN TESTS

# %% [markdown]
# ## 3. Neighbour probabilities in the map: $Q$
#
# In the map, t-SNE uses a Student-t kernel with one degree of freedom, normalised over **all pairs**
# at once (not row by row):
#
# $$q_{ij} = \frac{\left(1 + \|y_i - y_j\|^2\right)^{-1}}{\sum_{k \neq l} \left(1 + \|y_k - y_l\|^2\right)^{-1}},
#   \qquad q_{ii} = 0.$$
#
# Its heavy tail lets moderately distant points sit far apart in the map, which keeps clusters from
# piling up in the middle (the "crowding problem").
#
# Write `symmetric_student_t_neighbour_probability(Y)` for a map `Y` of shape `(N, 2)`. It returns
# the `(N, N)` matrix $Q$: symmetric, zero diagonal, summing to 1. Keep it differentiable (torch
# operations only); `tsne` will backpropagate through it.

# %% kind="solution" grade_id="symmetric_student_t_neighbour_probability"
def symmetric_student_t_neighbour_probability(Y):
    """Joint probabilities Q (N, N) of the map points Y (N, 2) under the Student-t kernel.

    Args:
        Y: float tensor (N, 2) of map points, possibly requiring gradients.

    Returns:
        A float tensor (N, N): q_ij proportional to 1 / (1 + ||y_i - y_j||^2), normalised over all pairs
        i != j, so the matrix is symmetric, has a zero diagonal and adds up to 1. It is differentiable
        with respect to Y.
    """
    ### BEGIN SOLUTION
    kernel = 1.0 / (1.0 + pairwise_squared_distances(Y))
    diagonal = torch.eye(len(Y), dtype=torch.bool, device=Y.device)
    kernel = kernel.masked_fill(diagonal, 0.0)
    return kernel / kernel.sum()
    ### END SOLUTION


# %% kind="tests" grade_id="test_student_t_q" points=2
Y = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
Q = symmetric_student_t_neighbour_probability(Y)
assert tuple(Q.shape) == (3, 3), f"expected shape (3, 3), got {tuple(Q.shape)}"
assert abs(float(Q.sum()) - 1) < 1e-6, f"Q should sum to 1 over all pairs, got {float(Q.sum())}"
assert torch.allclose(Q, Q.T) and float(Q.diagonal().abs().max()) == 0, "Q should be symmetric with a zero diagonal"
kernel = 1 / (1 + pairwise_squared_distances(Y))
assert torch.isclose(Q[0, 1] / Q[0, 2], kernel[0, 1] / kernel[0, 2]), "q_ij should be proportional to (1 + ||y_i - y_j||^2)^-1"
print("Visible tests passed.")
### BEGIN HIDDEN TESTS
import grader.collect.tsne
import grader.collect.common
grader.collect.common.store("test_student_t_q", grader.collect.tsne.collect_student_t_q, symmetric_student_t_neighbour_probability)
### END HIDDEN TESTS

# %% [markdown]
# ## 4. The loss: $\mathrm{KL}(P \,\|\, Q)$
#
# $$C = \mathrm{KL}(P\,\|\,Q) = \sum_{i \neq j} p_{ij} \log \frac{p_{ij}}{q_{ij}},$$
#
# where a term with $p_{ij} = 0$ counts as 0. Write `kl_divergence(P, Q)`; it returns a scalar
# tensor.
#
# *Watch out for NaN.* The diagonal of both matrices is 0, and $0 \cdot \log(0/0)$ is NaN in floating
# point. Leave the diagonal out. Autograd differentiates every entry you compute, even the ones you
# later multiply by 0 or mask out, so never take the log of a zero: for example replace the diagonal
# of $Q$ by 1 before the log (`masked_fill`), and use `torch.xlogy(p, p)` for $p \log p$, which is 0
# where $p = 0$.
#
# **Good:** the gradient autograd computes from your loss equals the known t-SNE gradient
#
# $$\frac{\partial C}{\partial y_i} = 4 \sum_j (p_{ij} - q_{ij})(y_i - y_j)\left(1 + \|y_i - y_j\|^2\right)^{-1},$$
#
# which the hidden test checks.

# %% kind="solution" grade_id="kl_divergence"
def kl_divergence(P, Q):
    """KL(P || Q) summed over the pairs i != j, with 0 log 0 = 0.

    Args:
        P: tensor (N, N) of target joint probabilities (zero diagonal, entries adding up to 1).
        Q: tensor (N, N) of joint probabilities of the map (zero diagonal, entries adding up to 1),
            possibly part of an autograd graph.

    Returns:
        A scalar tensor: the sum over i != j of p_ij * log(p_ij / q_ij). Pairs with p_ij = 0 count as 0,
        and the gradient with respect to Q contains no NaN.
    """
    ### BEGIN SOLUTION
    diagonal = torch.eye(len(P), dtype=torch.bool, device=P.device)
    terms = torch.xlogy(P, P) - torch.xlogy(P, Q.masked_fill(diagonal, 1.0))
    return terms.masked_fill(diagonal, 0.0).sum()
    ### END SOLUTION


# %% kind="tests" grade_id="test_kl" points=2
P = torch.tensor([[0.0, 0.3, 0.1], [0.3, 0.0, 0.1], [0.1, 0.1, 0.0]])
Q = torch.tensor([[0.0, 0.1, 0.2], [0.1, 0.0, 0.2], [0.2, 0.2, 0.0]], requires_grad=True)
loss = kl_divergence(P, Q)
assert loss.numel() == 1, f"kl_divergence should return a scalar, got shape {tuple(loss.shape)}"
expected = 2 * (0.3 * math.log(3) + 2 * 0.1 * math.log(0.5))
assert abs(loss.item() - expected) < 1e-5, f"expected {expected:.5f}, got {loss.item():.5f}"
assert abs(float(kl_divergence(P, P))) < 1e-6, "KL(P || P) should be 0"
loss.backward()
assert torch.isfinite(Q.grad).all(), f"the gradient with respect to Q contains NaN:\n{Q.grad}"
print("Visible tests passed.")
### BEGIN HIDDEN TESTS
import grader.collect.tsne
import grader.collect.common
grader.collect.common.store("test_kl", grader.collect.tsne.collect_kl, kl_divergence)
### END HIDDEN TESTS

# %% [markdown]
# ## 5. A bandwidth per point: perplexity
#
# One $\sigma$ cannot suit every point: in dense regions a narrow kernel already covers many
# neighbours, in sparse regions it covers none. t-SNE therefore chooses each $\sigma_i$ so that the
# conditional distribution $P_i = (p_{j|i})_j$ has a given **perplexity**
#
# $$\mathrm{Perp}(P_i) = 2^{H(P_i)}, \qquad H(P_i) = -\sum_{j \neq i} p_{j|i} \log_2 p_{j|i},$$
#
# which you can read as the effective number of neighbours of $x_i$ (typical values: 5 to 50).
# $H(P_i)$ grows with $\sigma_i$, so each $\sigma_i$ can be found by **bisection**: keep a lower and
# an upper bound for every point, try the midpoint, and replace the upper bound where the perplexity
# is too large and the lower bound where it is too small.
#
# Write `find_sigmas(X, perplexity=30.0)`, returning a tensor of `N` positive sigmas:
#
# * bisect all points at once, with tensors of bounds (no Python loop over points);
# * bisect $\log \sigma_i$ rather than $\sigma_i$: the right values can lie anywhere between $10^{-3}$ and
#   $10^{3}$ depending on the data, and a bracket such as $\log \sigma_i \in [-20, 20]$ suits any of them;
# * compute $p_{j|i}$ with a softmax as in part 2 (it does not underflow), and
#   $H$ with `torch.xlogy` or from `torch.log_softmax` (natural logs are fine if you compare with
#   $\ln(\mathrm{perplexity})$, since $2^{H_2} = e^{H_e}$);
# * **tolerance:** stop when every point's entropy is within $10^{-5}$ of the target (in the units you
#   use), or after 100 steps.
#
# **Good:** for every point, the perplexity its $\sigma_i$ gives is within 1% of the target (the
# hidden test checks 150 MNIST images at perplexities 30 and 10, and random points at 20). On our
# 1,000 images at perplexity 30 the sigmas range from about 1.0 to 2.7, median 1.77.

# %% kind="solution" grade_id="find_sigmas"
def find_sigmas(X, perplexity=30.0):
    """Per-point bandwidths (N,) giving each conditional distribution p_j|i the requested perplexity.

    Args:
        X: float tensor (N, D) of data points, one per row.
        perplexity: the wanted perplexity of every row, roughly its effective number of neighbours, a
            float (typically 5 to 50).

    Returns:
        A tensor (N,) of positive bandwidths sigma_i with the dtype and device of X, found by bisection
        so that the perplexity of every row of p_j|i matches the requested value closely.
    """
    ### BEGIN SOLUTION
    distances = pairwise_squared_distances(X).double()
    diagonal = torch.eye(len(X), dtype=torch.bool, device=X.device)
    target = math.log(perplexity)
    low = torch.full((len(X),), -20.0, dtype=torch.float64, device=X.device)
    high = torch.full_like(low, 20.0)
    for _ in range(100):
        log_sigma = (low + high) / 2
        logits = -distances / (2 * torch.exp(2 * log_sigma)[:, None])
        log_p = torch.log_softmax(logits.masked_fill(diagonal, -math.inf), dim=1)
        entropy = -(log_p.exp() * log_p.masked_fill(diagonal, 0.0)).sum(dim=1)
        too_wide = entropy > target
        high = torch.where(too_wide, log_sigma, high)
        low = torch.where(too_wide, low, log_sigma)
        if float((entropy - target).abs().max()) < 1e-5:
            break
    return ((low + high) / 2).exp().to(X.dtype)
    ### END SOLUTION


# %% kind="tests" grade_id="test_find_sigmas" points=2
sigmas = find_sigmas(X[:50], perplexity=10.0)
assert tuple(sigmas.shape) == (50,), f"find_sigmas should return one sigma per point, shape (50,), got {tuple(sigmas.shape)}"
assert (sigmas > 0).all(), "sigmas should be positive"
assert tuple(find_sigmas(X[:40]).shape) == (40,), "find_sigmas(X) should use perplexity 30 by default"
print("Visible tests passed.")
### BEGIN HIDDEN TESTS
import grader.collect.tsne
import grader.collect.common
grader.collect.common.store("test_find_sigmas", grader.collect.tsne.collect_find_sigmas, find_sigmas)
### END HIDDEN TESTS

# %% [markdown]
# ## 6. t-SNE
#
# Write `tsne(X, n_iter, learning_rate, optimizer="sgd", sigma=None, perplexity=None, seed=0,
# callback=None)`. It returns the map, a tensor of shape `(N, 2)`.
#
# 1. **P.** With a `sigma` (a float or `N` per-point values), $P$ = `symmetric_gauss_neighbour_probability(X, sigma)`.
#    With `sigma=None`, first compute per-point bandwidths with `find_sigmas(X, perplexity)` (part 5;
#    use perplexity 30 when it is None too). $P$ does not change during the optimisation: compute it
#    once, before the loop.
# 2. **Start.** Draw the initial map from a standard normal distribution with a generator seeded by
#    `seed`, so the same seed always gives the same map:
#    `torch.randn(N, 2, generator=torch.Generator().manual_seed(seed), dtype=X.dtype)`, then move it to
#    `X.device` and let it require gradients. Everything else must happen on `X.device` too, so the
#    same code runs on a GPU when `X` is there (never write `"cpu"`).
# 3. **Loop** `n_iter` times: compute $Q$ from the map, the loss `kl_divergence(P, Q)`, its gradient
#    with `loss.backward()`, and update the map:
#    * `optimizer="sgd"`: plain gradient descent, $y \leftarrow y - \text{learning rate} \cdot \nabla_y C$
#      (`torch.optim.SGD([Y], lr=learning_rate)` without momentum does exactly this);
#    * `optimizer="adam"`: `torch.optim.Adam([Y], lr=learning_rate)`.
#
#    Remember to zero the gradients every iteration.
# 4. **Callback.** If `callback` is given, call it after each update with three arguments: the
#    iteration number (counting from 1), the current map detached from the graph (`Y.detach()`) and
#    the loss as a Python float (`loss.item()`). The experiments below use it to collect snapshots of
#    the map and the loss curve. `Y.detach()` shares its memory with the map that the optimiser keeps
#    changing in place: a callback that keeps a snapshot must copy it (`Y.clone()`, as `run_tsne` below
#    does), or every snapshot it kept ends up showing the final map.
# 5. Return the final map, detached from the graph.
#
# **Good:** the hidden test runs your `tsne`, with your own helper functions, on 300 test images
# chosen at random, for 300 iterations from a seed it chooses. A map is only as right as the functions
# it is made from, so the test first checks every helper your `tsne` calls on that helper's own hidden
# inputs: while one of them fails its own test, `test_tsne` fails too, with the helper's message.
# With gradient descent (learning rate 10, `sigma=2.0`) the map should reach a trustworthiness
# $T(5)$ above {{TSNE.check_sgd_trustworthiness.threshold:.2f}} and a leave-one-out 1-NN accuracy above {{TSNE.check_sgd_1nn.threshold:.2f}} (a reference solution: about {{TSNE.check_sgd_trustworthiness.reference:.2f}}
# and {{TSNE.check_sgd_1nn.reference:.2f}}); with Adam (learning rate 0.1, `perplexity=30`) above {{TSNE.check_adam_trustworthiness.threshold:.2f}} and {{TSNE.check_adam_1nn.threshold:.2f}} (reference: about
# {{TSNE.check_adam_trustworthiness.reference:.2f}} and {{TSNE.check_adam_1nn.reference:.2f}}). It also checks that the KL divergence falls by at least 10 % between iteration 20 and the
# last one, that the same seed gives the same map, and that `seed`, `sigma` and `perplexity` change the result. (Trustworthiness and 1-NN accuracy are
# explained before part 7.)

# %% kind="solution" grade_id="tsne"
def tsne(X, n_iter, learning_rate, optimizer="sgd", sigma=None, perplexity=None, seed=0, callback=None):
    """Map the rows of X (N, D) to the plane by minimising KL(P || Q); returns the map (N, 2).

    Args:
        X: float tensor (N, D) of data points, on any device (all the work happens on X.device).
        n_iter: number of optimisation steps, an int.
        learning_rate: step size of the optimiser, a float.
        optimizer: "sgd" for plain gradient descent or "adam" for Adam.
        sigma: None, one float bandwidth for every point, or a tensor (N,) of per-point bandwidths.
            With None the bandwidths come from find_sigmas.
        perplexity: the perplexity given to find_sigmas when sigma is None, a float; None means 30.
        seed: seed of the generator that draws the initial map from N(0, I), an int.
        callback: None, or a function called after every update with the iteration number (from 1),
            the current map (N, 2) detached from the graph, and the loss as a Python float.

    Returns:
        The final map, a tensor (N, 2) with the dtype and device of X, detached from the graph.
    """
    ### BEGIN SOLUTION
    if sigma is None:
        sigma = find_sigmas(X, 30.0 if perplexity is None else perplexity)
    P = symmetric_gauss_neighbour_probability(X, sigma)
    generator = torch.Generator().manual_seed(seed)
    Y = torch.randn(len(X), 2, generator=generator, dtype=X.dtype).to(X.device).requires_grad_()
    if optimizer == "sgd":
        step = torch.optim.SGD([Y], lr=learning_rate)
    elif optimizer == "adam":
        step = torch.optim.Adam([Y], lr=learning_rate)
    else:
        raise ValueError(f"optimizer should be 'sgd' or 'adam', not {optimizer!r}")
    for iteration in range(1, n_iter + 1):
        loss = kl_divergence(P, symmetric_student_t_neighbour_probability(Y))
        step.zero_grad()
        loss.backward()
        step.step()
        if callback is not None:
            callback(iteration, Y.detach(), loss.item())
    return Y.detach()
    ### END SOLUTION


# %% kind="tests" grade_id="test_tsne" points=3
small = X[:40]
first = tsne(small, 5, 10.0, sigma=3.0, seed=1)
assert tuple(first.shape) == (40, 2), f"tsne should return a map of shape (40, 2), got {tuple(first.shape)}"
losses = []
adam = tsne(small, 30, 0.1, optimizer="adam", sigma=3.0, seed=1, callback=lambda iteration, Y, loss: losses.append(loss))
assert torch.isfinite(adam).all(), "the map contains NaN or infinite values"
assert torch.equal(adam, tsne(small, 30, 0.1, optimizer="adam", sigma=3.0, seed=1)), "the same seed should give the same map"
assert len(losses) == 30 and losses[-1] < losses[0], "with Adam the loss should go down over 30 iterations"
print("Visible tests passed.")
### BEGIN HIDDEN TESTS
import grader.collect.tsne
import grader.collect.common
grader.collect.common.store("test_tsne", grader.collect.tsne.collect_tsne, tsne)
### END HIDDEN TESTS

# %% [markdown]
# ## Judging a map
#
# Two numbers say how good a map is, besides the loss:
#
# * **Trustworthiness** $T(k)$ (`sklearn.manifold.trustworthiness`) is 1 when the $k$ nearest
#   neighbours of every point in the map are also among its nearest neighbours in the data, and
#   falls towards 0.5 for a random map. We use $k = 5$.
# * **Leave-one-out 1-NN accuracy**: predict each point's label from its nearest other point in the
#   map. It is about 0.1 for a random map of ten digit classes.
#
# Different $P$ give different loss values, so compare KL values only between runs with the same
# $P$. The helpers below collect the figures of each run in `results` and draw the maps.
#
# On a CPU, the next cell lets torch use a single thread: t-SNE on 1,000 points is a long series of
# small tensor operations, which one thread runs faster than several threads that wait for each
# other, above all on a shared machine. Remove the line if you have a large idle CPU.

# %%
from sklearn.manifold import trustworthiness

if device.type == "cpu":
    torch.set_num_threads(1)

results = {}


def nearest_neighbour_accuracy(Y, labels):
    """Leave-one-out 1-NN accuracy of labels in the map Y."""
    distances = torch.cdist(Y.double(), Y.double()).fill_diagonal_(math.inf)
    return float((labels[distances.argmin(dim=1)] == labels).double().mean())


def record(name, Y, P, seconds):
    """Store and print the KL (under P), T(5), 1-NN accuracy and run time of the map Y of X."""
    Y = Y.detach().cpu()
    results[name] = {
        "KL": float(kl_divergence(P.cpu().double(), symmetric_student_t_neighbour_probability(Y.double()))),
        "T(5)": float(trustworthiness(X.numpy(), Y.numpy(), n_neighbors=5)),
        "1-NN": nearest_neighbour_accuracy(Y, labels),
        "seconds": seconds,
    }
    print(name + ": " + ", ".join(f"{key} {value:.4f}" for key, value in results[name].items()))


def draw_map(ax, Y, title):
    """Scatter the map Y coloured by digit label."""
    Y = Y.detach().cpu()
    ax.scatter(Y[:, 0], Y[:, 1], c=labels, cmap="tab10", s=3, vmin=-0.5, vmax=9.5)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def run_tsne(snapshot_every=200, **settings):
    """Run tsne on X (1000 iterations) and keep snapshots of the map and the loss curve."""
    snapshots, losses = {}, []

    def callback(iteration, Y, loss):
        losses.append(loss)
        if iteration == 1 or iteration % snapshot_every == 0:
            snapshots[iteration] = Y.cpu().clone()

    start = time.perf_counter()
    Y = tsne(X.to(device), 1000, callback=callback, **settings)
    seconds = time.perf_counter() - start
    return Y.cpu(), snapshots, losses, seconds


def draw_snapshots(snapshots, title):
    """A row of snapshots of the map during the optimisation."""
    fig, axes = plt.subplots(1, len(snapshots), figsize=(2.2 * len(snapshots), 2.4))
    for ax, (iteration, Y) in zip(axes, snapshots.items()):
        draw_map(ax, Y, f"iteration {iteration}")
    fig.suptitle(title)
    plt.show()


# %% [markdown]
# ## 7. Gradient descent with a fixed $\sigma = 10$
#
# Run your `tsne` on the 1,000 images with plain gradient descent, learning rate 10 and $\sigma = 10$
# for every point, for 1,000 iterations, and look at snapshots of the map and at the loss curve.
#
# **What to expect.** This run ({{TIME.tsne_sgd}} for the reference solution) is far from converged after
# 1,000 iterations, and that is expected: a reference run ends with a KL of about 0.005, $T(5) \approx {{TSNE.notebook_sgd_trustworthiness.reference:.2f}}$ and a 1-NN accuracy of about {{TSNE.notebook_sgd_1nn.reference:.2f}},
# only a little better than a random map. Two things hold it back. First, $\sigma = 10$ is much wider
# than the distances between neighbouring digits (part 5 finds bandwidths around 1.8), so $P$ is
# almost uniform and says little about who is whose neighbour; that is also why its KL is so small.
# Second, plain gradient descent with learning rate 10 takes small steps: with a well-chosen $P$
# (perplexity 30) the same optimiser reaches only KL 2.2 and 1-NN 0.69 in 1,000 iterations (published
# figures for this setting on 50 PCA components of the images: KL about 2.0 and 1-NN about 0.74),
# while the methods below get much further.

# %% timed="tsne_sgd"
fixed_P = symmetric_gauss_neighbour_probability(X, 10.0)
if not skip_training:
    sgd_map, sgd_snapshots, sgd_losses, seconds = run_tsne(optimizer="sgd", learning_rate=10.0, sigma=10.0)
    record("gradient descent, sigma 10", sgd_map, fixed_P, seconds)
    draw_snapshots(sgd_snapshots, "gradient descent, learning rate 10, sigma = 10")
    plt.plot(range(1, len(sgd_losses) + 1), sgd_losses)
    plt.xlabel("iteration")
    plt.ylabel("KL(P || Q)")
    plt.title("gradient descent, learning rate 10")
    plt.show()

# %% [markdown]
# ## 8. Adam instead of gradient descent
#
# Run the same problem with Adam and learning rate 0.1. Adam scales each coordinate's step by a
# running estimate of its gradient's size, so points move at a useful speed from the first
# iterations. Compare the two loss curves and maps.
#
# **What to expect:** a reference run reaches KL 0.003, $T(5) \approx {{TSNE.notebook_adam_trustworthiness.reference:.2f}}$ and 1-NN about {{TSNE.notebook_adam_1nn.reference:.2f}}: a
# lower loss than gradient descent and a visibly more structured map, though the nearly uniform $P$
# of $\sigma = 10$ still limits it.

# %% timed="tsne_adam"
if not skip_training:
    adam_map, adam_snapshots, adam_losses, seconds = run_tsne(optimizer="adam", learning_rate=0.1, sigma=10.0)
    record("Adam, sigma 10", adam_map, fixed_P, seconds)
    draw_snapshots(adam_snapshots, "Adam, learning rate 0.1, sigma = 10")
    plt.plot(range(1, len(sgd_losses) + 1), sgd_losses, label="gradient descent, lr 10")
    plt.plot(range(1, len(adam_losses) + 1), adam_losses, label="Adam, lr 0.1")
    plt.yscale("log")
    plt.xlabel("iteration")
    plt.ylabel("KL(P || Q)")
    plt.legend()
    plt.show()

# %% [markdown]
# ## 9. A bandwidth per point in practice
#
# Compare the per-point bandwidths of part 5 with the fixed $\sigma = 10$, then run t-SNE with
# perplexity 30 and Adam (learning rate 0.1).
#
# **What to expect:** a reference run reaches KL about 1.2 (under the perplexity-30 $P$),
# $T(5) \approx {{TSNE.notebook_perplexity_trustworthiness.reference:.2f}}$ and a 1-NN accuracy of about {{TSNE.notebook_perplexity_1nn.reference:.2f}}: the digits now form separate clusters.
# **Good:** $T(5)$ above {{TSNE.notebook_perplexity_trustworthiness.threshold:g}} and 1-NN accuracy above {{TSNE.notebook_perplexity_1nn.threshold:g}}.

# %% timed="tsne_perplexity"
sigmas = find_sigmas(X, 30.0)
perplexity_P = symmetric_gauss_neighbour_probability(X, sigmas)
print(f"perplexity 30: sigmas from {float(sigmas.min()):.2f} to {float(sigmas.max()):.2f}, "
      f"median {float(sigmas.median()):.2f}")
plt.hist(sigmas.numpy(), bins=40)
plt.axvline(10.0, color="k", linestyle="--", label="fixed sigma = 10")
plt.xlabel("sigma_i")
plt.legend()
plt.show()

if not skip_training:
    perplexity_map, perplexity_snapshots, perplexity_losses, seconds = run_tsne(
        optimizer="adam", learning_rate=0.1, perplexity=30.0)
    record("Adam, perplexity 30", perplexity_map, perplexity_P, seconds)
    draw_snapshots(perplexity_snapshots, "Adam, learning rate 0.1, perplexity 30")
    fig, axes = plt.subplots(1, 3, figsize=(12, 4))
    draw_map(axes[0], sgd_map, "gradient descent, sigma 10")
    draw_map(axes[1], adam_map, "Adam, sigma 10")
    draw_map(axes[2], perplexity_map, "Adam, perplexity 30")
    plt.show()

# %% [markdown]
# ## 10. Compare with scikit-learn
#
# `sklearn.manifold.TSNE` (perplexity 30, PCA initialisation, Barnes-Hut approximation of the
# gradient) adds tricks to the plain method: *early exaggeration* (all $p_{ij}$ multiplied by 12 for
# the first 250 iterations, which pulls clusters together early), momentum, and per-coordinate
# gains. Run it on the same 1,000 images and compare KL (under the same perplexity-30 $P$),
# trustworthiness, 1-NN accuracy and time.
#
# **What to expect:** a reference run (the cell below) takes {{TIME.tsne_sklearn}} and reaches KL 0.88, $T(5) \approx {{TSNE.notebook_sklearn_trustworthiness.reference:.2f}}$ and
# 1-NN about {{TSNE.notebook_sklearn_1nn.reference:.2f}}. Your Adam run should be close in 1-NN accuracy and trustworthiness, with a higher
# KL, and take longer: each of its iterations computes all $N^2$ pairs (a reference run of the cell:
# {{TIME.tsne_adam}} on one CPU thread, well under a second on a GPU). (The exact method, `method="exact"`, reaches KL 0.875 in about 11 s; `benchmarks/bench_tsne.py`
# in the course repository times it beside a vectorised implementation like yours.)

# %% timed="tsne_sklearn"
if not skip_training:
    from sklearn.manifold import TSNE

    start = time.perf_counter()
    sklearn_map = TSNE(n_components=2, perplexity=30.0, init="pca", random_state=0).fit_transform(X.numpy())
    record("scikit-learn TSNE", torch.as_tensor(sklearn_map, dtype=torch.float32), perplexity_P,
           time.perf_counter() - start)
    fig, axes = plt.subplots(1, 2, figsize=(8, 4))
    draw_map(axes[0], perplexity_map, "yours: Adam, perplexity 30")
    draw_map(axes[1], torch.as_tensor(sklearn_map), "scikit-learn TSNE")
    plt.show()

print(f"{'run':28s} {'KL':>7s} {'T(5)':>6s} {'1-NN':>6s} {'seconds':>8s}")
for name, figures in results.items():
    print(f"{name:28s} {figures['KL']:7.4f} {figures['T(5)']:6.3f} {figures['1-NN']:6.3f} {figures['seconds']:8.1f}")

# %% [markdown]
# **Questions.**
# 1. Why is the KL of the $\sigma = 10$ runs so much smaller than that of the perplexity-30 run,
#    although their maps are worse?
# 2. Gradient descent needs a learning rate that suits the size of the gradient, which here shrinks
#    as $1/N$. What would you expect from the same learning rate on 10,000 points? Why does Adam
#    not have this problem?
# 3. Each iteration costs $O(N^2)$ time and memory. Where does it come from, and how do Barnes-Hut or
#    FFT-based methods avoid it?
#
# *Your answers here.*
