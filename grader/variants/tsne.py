"""Variants of notebook 4_tsne: wrong implementations each grade cell must catch, and correct rewrites it must accept.

Each function is collected with the student's own versions of the functions it calls (see
grader/collect/tsne.py), so a wrong helper can also cost the cells of the functions built on it:
`fails` lists every cell each variant loses under the test suite's secret seed. The two correct
variants rewrite all six functions, each in a different style from the reference solution and from
each other.
"""
from __future__ import annotations

from grader.variants import Variant, from_reference

NOTEBOOK = "4_tsne"


def _variant(name: str, description: str, fails: set[str] = frozenset(), **kwargs) -> Variant:
    return Variant(name=name, notebook=NOTEBOOK, description=description, fails=frozenset(fails), **kwargs)


def _edit(grade_id: str, *replacements: tuple[str, str]) -> dict[str, str]:
    """The cells of a variant that changes the reference solution of `grade_id` by `replacements`."""
    return {grade_id: from_reference(NOTEBOOK, grade_id, *replacements)}


# --- wrong ---------------------------------------------------------------------------------------

# The tsne mistakes are made in a tsne of their own, not in the reference's (this one passes the callback abs(loss)
# and takes any optimizer name but "sgd" for Adam): their test_tsne verdicts under the secrets were settled on it.
TSNE_TEMPLATE = '''
def tsne(X, n_iter, learning_rate, optimizer="sgd", sigma=None, perplexity=None, seed=0, callback=None):
    if sigma is None:
        sigma = find_sigmas(X, perplexity or 30.0)
    P = symmetric_gauss_neighbour_probability(X, sigma)
    {start}
    Y.requires_grad_()
    step = {optimizer}
    for iteration in range(1, n_iter + 1):
        loss = {sign}kl_divergence(P, symmetric_student_t_neighbour_probability(Y))
        step.zero_grad()
        loss.backward()
        step.step()
        if callback is not None:
            callback(iteration, Y.detach(), abs(loss.item()))
    return Y.detach()
'''
SEEDED = "Y = torch.randn(len(X), 2, generator=torch.Generator().manual_seed(seed)).to(X.device)"
BOTH = "torch.optim.SGD([Y], lr=learning_rate) if optimizer == 'sgd' else torch.optim.Adam([Y], lr=learning_rate)"

WRONG = [
    _variant("tsne_uniform_initial_map", "tsne starts from torch.rand (uniform on [0, 1)) instead of N(0, I)",
             {"test_tsne"}, cells={"tsne": TSNE_TEMPLATE.format(
                 start="Y = torch.rand(len(X), 2, generator=torch.Generator().manual_seed(seed)).to(X.device)",
                 optimizer=BOTH, sign="")}),
    _variant("tsne_callback_counts_from_zero", "tsne's callback receives the iteration numbers 0 to n_iter - 1",
             {"test_tsne"}, cells={"tsne": TSNE_TEMPLATE.format(start=SEEDED, optimizer=BOTH, sign="").replace(
                 "callback(iteration,", "callback(iteration - 1,")}),
    _variant("distances_python_loop", "the right distances, computed one point at a time in a Python loop",
             {"test_pairwise_distances"}, cells={"pairwise_squared_distances": '''
def pairwise_squared_distances(X):
    rows = [((X - X[i]) ** 2).sum(dim=1) for i in range(len(X))]
    return torch.stack(rows)
'''}),
    # P, the sigmas, Q and the maps all build on these distances, so every cell that calls them fails too.
    _variant("distances_not_squared", "Euclidean distances instead of squared ones",
             {"test_pairwise_distances", "test_gauss_p", "test_find_sigmas", "test_student_t_q", "test_tsne"},
             cells={"pairwise_squared_distances": '''
def pairwise_squared_distances(X):
    return torch.cdist(X, X)
'''}),
    _variant("p_not_symmetrised", "returns the conditional probabilities divided by N, not symmetrised",
             {"test_gauss_p", "test_tsne"}, cells=_edit("symmetric_gauss_neighbour_probability", (
                 "(conditional + conditional.T) / (2 * len(X))", "conditional / len(X)"))),
    # tsne builds on this P: the self-probabilities drain most of its mass and the KL barely decreases.
    _variant("p_diagonal_not_zeroed", "p_i|i is not set to 0 (the diagonal takes part in the softmax)",
             {"test_gauss_p", "test_tsne"}, cells=_edit("symmetric_gauss_neighbour_probability", (
                 "logits.masked_fill(diagonal, -math.inf)", "logits"))),
    _variant("p_sigma_not_squared", "the exponent divides by 2 sigma instead of 2 sigma^2",
             {"test_gauss_p", "test_tsne"},
             cells=_edit("symmetric_gauss_neighbour_probability", ("2 * sigma**2", "2 * sigma"))),
    # This Q makes tsne symmetric SNE, whose maps sit near the thresholds of test_tsne (Adam 1-NN 0.59-0.74 over
    # six secret seeds); test_tsne checks the helpers tsne uses first, so it fails under every seed.
    _variant("q_gaussian_kernel", "Q uses the Gaussian kernel exp(-d^2) instead of the Student t",
             {"test_student_t_q", "test_tsne"}, cells=_edit("symmetric_student_t_neighbour_probability", (
                 "1.0 / (1.0 + pairwise_squared_distances(Y))", "torch.exp(-pairwise_squared_distances(Y))"))),
    _variant("q_normalised_per_row", "Q is normalised row by row instead of over all pairs",
             {"test_student_t_q", "test_tsne"}, cells=_edit("symmetric_student_t_neighbour_probability", (
                 "kernel / kernel.sum()", "kernel / kernel.sum(dim=1, keepdim=True)"))),
    # tsne minimising KL(Q || P) still makes passable maps near the thresholds (gradient descent 1-NN 0.51-0.64
    # over six secret seeds); test_tsne checks the helpers tsne uses first, so it fails under every seed.
    _variant("kl_swapped", "computes KL(Q || P) instead of KL(P || Q)", {"test_kl", "test_tsne"}, cells={"kl_divergence": '''
def kl_divergence(P, Q):
    off_diagonal = ~torch.eye(len(P), dtype=torch.bool)
    p, q = P[off_diagonal], Q[off_diagonal]
    return (q * torch.log(q / p)).sum()
'''}),
    _variant("find_sigmas_single_sigma", "one sigma for all points, bisected on the mean entropy",
             {"test_find_sigmas", "test_tsne"}, cells={"find_sigmas": '''
def find_sigmas(X, perplexity=30.0):
    distances = pairwise_squared_distances(X).double()
    diagonal = torch.eye(len(X), dtype=torch.bool)
    low, high = -20.0, 20.0
    for _ in range(60):
        log_sigma = (low + high) / 2
        log_p = torch.log_softmax((-distances / (2 * math.exp(2 * log_sigma))).masked_fill(diagonal, -math.inf), dim=1)
        entropy = -(log_p.exp() * log_p.masked_fill(diagonal, 0.0)).sum(dim=1).mean()
        if entropy > math.log(perplexity):
            high = log_sigma
        else:
            low = log_sigma
    return torch.full((len(X),), math.exp((low + high) / 2), dtype=X.dtype)
'''}),
    _variant("tsne_gradient_ascent", "the map moves up the gradient (the loss is negated)", {"test_tsne"},
             cells={"tsne": TSNE_TEMPLATE.format(start=SEEDED, optimizer=BOTH, sign="-")}),
    _variant("tsne_ignores_optimizer", "always plain gradient descent, whatever optimizer says", {"test_tsne"},
             cells={"tsne": TSNE_TEMPLATE.format(start=SEEDED, optimizer="torch.optim.SGD([Y], lr=learning_rate)",
                                                 sign="")}),
    _variant("tsne_no_zero_grad", "gradients are never zeroed, so they pile up over the iterations", {"test_tsne"},
             cells={"tsne": TSNE_TEMPLATE.format(start=SEEDED, optimizer=BOTH, sign="").replace(
                 "        step.zero_grad()\n", "")}),
    _variant("tsne_unseeded", "the initial map ignores seed and comes from the global random state", {"test_tsne"},
             cells={"tsne": TSNE_TEMPLATE.format(start="Y = torch.randn(len(X), 2).to(X.device)", optimizer=BOTH,
                                                 sign="")}),
]

# --- correct, written differently ----------------------------------------------------------------

CDIST_EXPLICIT = {
    "pairwise_squared_distances": '''
def pairwise_squared_distances(X):
    return torch.cdist(X, X).pow(2)
''',
    "symmetric_gauss_neighbour_probability": '''
def symmetric_gauss_neighbour_probability(X, sigma):
    n = X.shape[0]
    D = pairwise_squared_distances(X)
    if isinstance(sigma, torch.Tensor) and sigma.numel() == n:
        variance = sigma.to(D).view(n, 1) ** 2
    else:
        variance = float(sigma) ** 2
    not_self = 1.0 - torch.eye(n, dtype=D.dtype, device=D.device)
    nearest = (D + D.max() * (1 - not_self)).min(dim=1, keepdim=True).values
    weights = torch.exp(-(D - nearest).clamp_min(0) / (2 * variance)) * not_self
    p_cond = weights / weights.sum(dim=1, keepdim=True)
    return (p_cond + p_cond.t()) / (2.0 * n)
''',
    "find_sigmas": '''
def find_sigmas(X, perplexity=30.0):
    n = X.shape[0]
    D = pairwise_squared_distances(X).double()
    not_self = 1.0 - torch.eye(n, dtype=D.dtype, device=D.device)
    nearest = (D + D.max() * (1 - not_self)).min(dim=1, keepdim=True).values
    goal = math.log2(perplexity)

    def bits(s):
        w = torch.exp(-(D - nearest).clamp_min(0) / (2 * s[:, None] ** 2)) * not_self
        p = w / w.sum(dim=1, keepdim=True)
        return -(torch.xlogy(p, p).sum(dim=1)) / math.log(2)

    lo = torch.zeros(n, dtype=torch.float64, device=X.device)
    hi = torch.ones(n, dtype=torch.float64, device=X.device)
    for _ in range(60):
        short = bits(hi) < goal
        if not short.any():
            break
        hi = torch.where(short, 2 * hi, hi)
    for _ in range(100):
        mid = (lo + hi) / 2
        h = bits(mid)
        hi = torch.where(h > goal, mid, hi)
        lo = torch.where(h > goal, lo, mid)
        if (h - goal).abs().max() < 1e-5:
            break
    return ((lo + hi) / 2).to(X.dtype)
''',
    "symmetric_student_t_neighbour_probability": '''
def symmetric_student_t_neighbour_probability(Y):
    W = (1.0 + pairwise_squared_distances(Y)).pow(-1)
    W = W - torch.diag(torch.diagonal(W))
    return W / torch.sum(W)
''',
    "kl_divergence": '''
def kl_divergence(P, Q):
    keep = P > 0
    p, q = P[keep], Q[keep]
    return torch.sum(p * torch.log(p / q))
''',
    "tsne": '''
def tsne(X, n_iter, learning_rate, optimizer="sgd", sigma=None, perplexity=None, seed=0, callback=None):
    if sigma is None:
        sigma = find_sigmas(X, perplexity if perplexity is not None else 30.0)
    P = symmetric_gauss_neighbour_probability(X, sigma)
    g = torch.Generator()
    g.manual_seed(seed)
    Y = torch.randn(X.shape[0], 2, generator=g, dtype=X.dtype).to(X.device)
    m = torch.zeros_like(Y)
    v = torch.zeros_like(Y)
    for t in range(1, n_iter + 1):
        Y.requires_grad_(True)
        loss = kl_divergence(P, symmetric_student_t_neighbour_probability(Y))
        (grad,) = torch.autograd.grad(loss, Y)
        with torch.no_grad():
            if optimizer == "adam":
                m = 0.9 * m + 0.1 * grad
                v = 0.999 * v + 0.001 * grad * grad
                m_hat = m / (1 - 0.9 ** t)
                v_hat = v / (1 - 0.999 ** t)
                Y = Y - learning_rate * m_hat / (v_hat.sqrt() + 1e-8)
            else:
                Y = Y - learning_rate * grad
        if callback:
            callback(t, Y, float(loss))
    return Y
''',
}

PDIST_LOGSPACE = {
    "pairwise_squared_distances": '''
import torch.nn.functional as F

def pairwise_squared_distances(X):
    n = len(X)
    upper = torch.triu_indices(n, n, offset=1, device=X.device)
    half = X.new_zeros(n, n).index_put((upper[0], upper[1]), F.pdist(X) ** 2)
    return half + half.T
''',
    "symmetric_gauss_neighbour_probability": '''
def symmetric_gauss_neighbour_probability(X, sigma):
    sq = pairwise_squared_distances(X)
    sigma = torch.as_tensor(sigma, dtype=sq.dtype, device=sq.device)
    if sigma.ndim == 1:
        sigma = sigma.unsqueeze(1)
    logits = (-sq / (2 * sigma * sigma)).fill_diagonal_(float("-inf"))
    cond = torch.exp(logits - torch.logsumexp(logits, dim=1, keepdim=True))
    return (cond + cond.transpose(0, 1)) / (2 * len(X))
''',
    "find_sigmas": '''
def find_sigmas(X, perplexity=30.0):
    n = len(X)
    D = pairwise_squared_distances(X).to(torch.float64)
    eye = torch.eye(n, dtype=torch.bool, device=X.device)
    D_shift = D - D.masked_fill(eye, float("inf")).min(dim=1, keepdim=True).values
    D_shift = D_shift.masked_fill(eye, 0.0)
    log_target = math.log(perplexity)
    beta = torch.ones(n, dtype=torch.float64, device=X.device)
    beta_min = torch.zeros_like(beta)
    beta_max = torch.full_like(beta, float("inf"))
    for _ in range(200):
        weights = torch.exp(-D_shift * beta[:, None]).masked_fill(eye, 0.0)
        total = weights.sum(dim=1)
        entropy = torch.log(total) + beta * (D_shift * weights).sum(dim=1) / total
        gap = entropy - log_target
        if gap.abs().max() < 1e-5:
            break
        wide = gap > 0
        beta_min = torch.where(wide, beta, beta_min)
        beta_max = torch.where(wide, beta_max, beta)
        up = torch.where(torch.isinf(beta_max), beta * 2, (beta + beta_max) / 2)
        down = (beta + beta_min) / 2
        beta = torch.where(wide, up, down)
    return torch.sqrt(1.0 / (2.0 * beta)).to(X.dtype)
''',
    "symmetric_student_t_neighbour_probability": '''
def symmetric_student_t_neighbour_probability(Y):
    log_w = -torch.log1p(pairwise_squared_distances(Y))
    log_w = log_w.masked_fill(torch.eye(len(Y), dtype=torch.bool, device=Y.device), float("-inf"))
    return torch.exp(log_w - torch.logsumexp(log_w.reshape(-1), dim=0))
''',
    "kl_divergence": '''
def kl_divergence(P, Q):
    off = ~torch.eye(P.shape[0], dtype=torch.bool, device=P.device)
    use = (P > 0) & off
    one = torch.ones_like(P)
    log_ratio = torch.log(torch.where(use, P, one)) - torch.log(torch.where(use, Q, one))
    return torch.where(use, P * log_ratio, torch.zeros_like(P)).sum()
''',
    "tsne": '''
OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}


def tsne(X, n_iter, learning_rate, optimizer="sgd", sigma=None, perplexity=None, seed=0, callback=None):
    torch.manual_seed(seed)
    Y = torch.randn(X.shape[0], 2, device=X.device, dtype=X.dtype, requires_grad=True)
    if sigma is not None:
        P = symmetric_gauss_neighbour_probability(X, sigma)
    else:
        P = symmetric_gauss_neighbour_probability(X, find_sigmas(X, perplexity or 30.0))
    opt = OPTIMIZERS[optimizer]([Y], lr=learning_rate)
    for i in range(n_iter):
        opt.zero_grad()
        loss = kl_divergence(P, symmetric_student_t_neighbour_probability(Y))
        loss.backward()
        opt.step()
        if callback is not None:
            callback(i + 1, Y.detach(), loss.item())
    return Y.detach().clone()
''',
}

CORRECT = [
    _variant("cdist_explicit_hand_written_updates",
             "torch.cdist, explicit shifted exponentials, linear bisection with bracket doubling, boolean-mask "
             "KL, and gradient descent and Adam written by hand", cells=CDIST_EXPLICIT),
    _variant("pdist_log_space_precision_bisection",
             "F.pdist scattered into a matrix, logsumexp normalisation, bisection on the precision 1/(2 sigma^2) "
             "with the entropy formula log Z + beta <d>, log-domain Q, double-where KL, global seeding",
             cells=PDIST_LOGSPACE),
]

VARIANTS = WRONG + CORRECT
# The demo grades these beside the reference and the blank release.
DEMO = ("p_not_symmetrised", "kl_swapped")
