"""Benchmark: autograde time of one 1_ae submission beside its floor, and one training epoch two ways.

Run with the offline data, e.g.
    AUTOENCODERS_DATA_DIR=../shared/data AUTOENCODERS_OFFLINE_SPLIT=1 .venv/bin/python benchmarks/bench_autograde.py
Prints figures and ratios measured in the same run; it asserts nothing.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import nbformat
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from aelib.data import load_mnist, minibatches
from grader import notebooks, pipeline, submissions

NOTEBOOK = "1_ae"
IMPORTS_CELL = "1_ae-3"


def floor_notebook(source: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The 1_ae notebook with every code cell emptied but the imports: kernel start and imports only."""
    notebook = nbformat.from_dict(source)
    for cell in notebook.cells:
        cell.metadata.pop("nbgrader", None)
        if cell.cell_type == "code" and cell.id != IMPORTS_CELL:
            cell.source = ""
    return notebook


def time_autograde(root: Path, student: str) -> float:
    """Seconds `nbgrader autograde` takes for one student."""
    start = time.perf_counter()
    report = pipeline.autograde(root, student)
    assert not report.error, report.error
    return time.perf_counter() - start


def autograde_figures(repeats: int) -> tuple[list[float], list[float], float]:
    """Autograde seconds of the reference submission and of the floor assignment, and the reference score."""
    reference = pipeline.train_reference(NOTEBOOK)
    with tempfile.TemporaryDirectory() as tmp:
        root = pipeline.prepare_course(Path(tmp) / "course")
        pipeline.generate_release(root)
        floor_source = root / "source" / "floor"
        floor_source.mkdir(parents=True)
        notebooks.write(floor_notebook(notebooks.read(root / "source" / pipeline.ASSIGNMENT / f"{NOTEBOOK}.ipynb")),
                        floor_source / f"{NOTEBOOK}.ipynb")
        pipeline.nbgrader(root, "generate_assignment", "floor", "--force")
        submissions.submit_reference(root, "bench", NOTEBOOK, reference)
        floor_submission = root / "submitted" / "bench" / "floor"
        floor_submission.mkdir(parents=True)
        (floor_submission / f"{NOTEBOOK}.ipynb").write_text((root / "release" / "floor" / f"{NOTEBOOK}.ipynb").read_text())
        full, floor = [], []
        for _ in range(repeats):
            full.append(time_autograde(root, "bench"))
            start = time.perf_counter()
            pipeline.nbgrader(root, "autograde", "floor", "--student", "bench", "--force")
            floor.append(time.perf_counter() - start)
        score = pipeline.read_scores(root, "bench")  # the last autograde of the assignment
    return full, floor, sum(pipeline.GradeReport("bench", {k: v for k, v in score.items()}).scores.get(NOTEBOOK, {}).values())


class PerSampleMNIST(Dataset):
    """One (image, label) pair per __getitem__, sliced from float tensors made in advance."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        return self.images[index], self.labels[index]


class TorchvisionStyleMNIST(PerSampleMNIST):
    """One pair per __getitem__, decoded as torchvision's MNIST does: uint8 -> PIL image -> float tensor."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        super().__init__((images * 255).round().to(torch.uint8).squeeze(1).numpy(), labels)

    def __getitem__(self, index: int):
        from PIL import Image

        image = Image.fromarray(self.images[index], mode="L")
        return torch.from_numpy(np.array(image, dtype=np.float32) / 255.0).unsqueeze(0), self.labels[index]


def epoch_seconds(model_factory, images: torch.Tensor, labels: torch.Tensor, dataset: type | None) -> float:
    """Seconds for one epoch of MSE training with Adam, batches of 64 (whole-tensor slicing when no dataset)."""
    torch.manual_seed(0)
    model = model_factory()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    if dataset is not None:
        batches = (x for x, _ in DataLoader(dataset(images, labels), batch_size=64, shuffle=True))
    else:
        batches = minibatches(images, batch_size=64)
    start = time.perf_counter()
    for batch in batches:
        _, reconstructions = model(batch)
        loss = F.mse_loss(reconstructions, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    namespace = notebooks.definitions(notebooks.build_notebook(pipeline.SOURCE / f"{NOTEBOOK}.py"))
    images, labels = load_mnist("train")
    print(f"one epoch of Autoencoder(10) on {len(images)} images, batches of 64, {torch.get_num_threads()} threads")
    factory = lambda: namespace["Autoencoder"](10)  # noqa: E731
    whole = statistics.median(epoch_seconds(factory, images, labels, None) for _ in range(args.repeats))
    print(f"  whole-tensor batching                   {whole:6.2f} s (median of {args.repeats})")
    for name, dataset in (("per-sample DataLoader, tensor items", PerSampleMNIST),
                          ("per-sample DataLoader, torchvision-style", TorchvisionStyleMNIST)):
        seconds = statistics.median(epoch_seconds(factory, images, labels, dataset) for _ in range(args.repeats))
        print(f"  {name:40s}{seconds:6.2f} s   {seconds / whole:5.1f}x whole-tensor")

    full, floor, score = autograde_figures(args.repeats)
    print(f"nbgrader autograde of one {NOTEBOOK} submission (score {score:g})")
    print(f"  reference submission     {statistics.median(full):6.1f} s (median of {args.repeats})")
    print(f"  floor: imports only      {statistics.median(floor):6.1f} s")
    print(f"  ratio submission / floor {statistics.median(full) / statistics.median(floor):6.1f}x")
    print(f"  grading work beyond floor {statistics.median(full) - statistics.median(floor):5.1f} s")


if __name__ == "__main__":
    main()
