"""Benchmark: the notebook's vectorised t-SNE beside scikit-learn's exact t-SNE on the same 1,000 images.

Run with the offline data, e.g.
    AUTOENCODERS_DATA_DIR=../shared/data AUTOENCODERS_OFFLINE_SPLIT=1 .venv/bin/python benchmarks/bench_tsne.py
The t-SNE functions come from the reference solution in source/autoencoders/4_tsne.py. For every run it
prints the KL divergence (under the run's own P and under the perplexity-30 P), trustworthiness T(5),
leave-one-out 1-NN accuracy, seconds, and the time as a multiple of sklearn's exact method. It asserts
nothing.
"""
from __future__ import annotations

import argparse
import time

import torch

from aelib.data import load_mnist
from grader import notebooks, pipeline
from grader.judge.tsne import (nearest_neighbour_accuracy, reference_find_sigmas, reference_gauss_p, reference_kl,
                               reference_student_t_q, trustworthiness)

NOTEBOOK = "4_tsne"


def figures(X: torch.Tensor, Y: torch.Tensor, labels: torch.Tensor, P: torch.Tensor, P30: torch.Tensor) -> dict:
    """KL under P and under the perplexity-30 P, T(5) and 1-NN accuracy of the map Y."""
    Q = reference_student_t_q(Y.double())
    return {"KL": float(reference_kl(P, Q)), "KL p30": float(reference_kl(P30, Q)),
            "T(5)": trustworthiness(X, Y), "1-NN": nearest_neighbour_accuracy(Y, labels)}


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads for our t-SNE (default 1: fastest on a shared 2-core machine)")
    parser.add_argument("--skip-barnes-hut", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    namespace = notebooks.definitions(notebooks.build_notebook(pipeline.SOURCE / f"{NOTEBOOK}.py"))
    tsne = namespace["tsne"]
    images, labels = load_mnist("train")
    X, labels = images[:args.points].reshape(args.points, -1), labels[:args.points]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    P10 = reference_gauss_p(X.double(), 10.0)
    sigmas = reference_find_sigmas(X.double(), 30.0)
    P30 = reference_gauss_p(X.double(), sigmas)
    print(f"{args.points} training images, {args.iterations} iterations; our t-SNE on {device}"
          f" ({torch.get_num_threads()} thread(s) on CPU); perplexity-30 sigmas: median {float(sigmas.median()):.2f},"
          f" from {float(sigmas.min()):.2f} to {float(sigmas.max()):.2f}")

    runs = {}
    for name, settings, P in (
            ("ours: gradient descent lr 10, sigma 10", dict(learning_rate=10.0, optimizer="sgd", sigma=10.0), P10),
            ("ours: Adam lr 0.1, sigma 10", dict(learning_rate=0.1, optimizer="adam", sigma=10.0), P10),
            ("ours: gradient descent lr 10, perplexity 30", dict(learning_rate=10.0, optimizer="sgd", perplexity=30.0),
             P30),
            ("ours: Adam lr 0.1, perplexity 30", dict(learning_rate=0.1, optimizer="adam", perplexity=30.0), P30)):
        data = X.to(device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        Y = tsne(data, args.iterations, **settings)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        runs[name] = dict(figures(X, Y.cpu(), labels, P, P30), seconds=seconds)

    from sklearn.manifold import TSNE

    methods = ("exact",) if args.skip_barnes_hut else ("exact", "barnes_hut")
    for method in methods:
        start = time.perf_counter()
        model = TSNE(n_components=2, perplexity=30.0, method=method, init="pca", random_state=0,
                     max_iter=args.iterations)
        Y = torch.as_tensor(model.fit_transform(X.double().numpy()), dtype=torch.float32)
        seconds = time.perf_counter() - start
        runs[f"sklearn TSNE, method={method!r}"] = dict(figures(X, Y, labels, P30, P30), seconds=seconds)

    exact = runs["sklearn TSNE, method='exact'"]["seconds"]
    print(f"{'run':46s} {'KL':>7s} {'KL p30':>7s} {'T(5)':>6s} {'1-NN':>6s} {'seconds':>8s} {'x exact':>8s}")
    for name, row in runs.items():
        print(f"{name:46s} {row['KL']:7.4f} {row['KL p30']:7.3f} {row['T(5)']:6.3f} {row['1-NN']:6.3f} "
              f"{row['seconds']:8.2f} {row['seconds'] / exact:8.2f}")
    print("KL is under each run's own P (sigma 10 or perplexity 30); 'KL p30' under the perplexity-30 P for all.")


if __name__ == "__main__":
    main()
