"""Seed margins: how close a correct solution with other seeds comes to each graded threshold; and
whether the test variants' verdicts depend on the grading secret.

Two sources of chance decide a correct student's figures: the seeds of their own training (their
checkpoints) and the grader's secret seed (held-out subsets, noise, the short training runs inside
hidden checks). `margins` checks the reference solution under several grading seeds and, with
`retrain`, under as many training seeds (the notebook's `torch.manual_seed(k)` calls shifted to
`k + 1000 * seed`), records every value judged against a figure of `grader.reference`, and reports
the worst one of each figure and its margin to the threshold. `secret_mismatches` checks a test
variant under several grading seeds: a wrong one must lose exactly its declared cells, a correct one
none, whatever the secret.
"""
from __future__ import annotations

import contextlib
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from grader import notebooks, pipeline
from grader.checks import checks_of
from grader.collect.common import Inputs
from grader.inprocess import Notebook, put_checkpoints, reachable, variant_failures, variant_folder
from grader.reference import Figure, figure_name, observed

SEEDS = 5
GRADING_SEED = 20261122
SEED_CALL = re.compile(r"\btorch\.manual_seed\((\d+)\)")
TRAINED = ("1_ae", "2_dae", "3_vae", "5_conv_aae")  # notebooks with checkpoints (4_tsne's checks train nothing kept)


@dataclass
class Margin:
    """Every value one figure was judged on, over the seeds."""
    name: str
    figure: Figure
    values: list[tuple[str, float]] = field(default_factory=list)   # (run, value)

    @property
    def worst(self) -> tuple[str, float]:
        """The run whose value came closest to (or beyond) the threshold."""
        key = (lambda item: item[1]) if self.figure.higher_is_better else (lambda item: -item[1])
        return min(self.values, key=key)

    @property
    def margin(self) -> float:
        """How far the worst value is on the right side of the threshold, relative to it (negative: it failed)."""
        value = self.worst[1]
        distance = value - self.figure.threshold if self.figure.higher_is_better else self.figure.threshold - value
        return distance / abs(self.figure.threshold)


def seeded_training_notebook(name: str, seed: int):
    """The reference's training notebook with every `torch.manual_seed(k)` shifted to `k + 1000 * seed`."""
    notebook = pipeline.training_notebook(notebooks.build_notebook(pipeline.SOURCE / f"{name}.py"))
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.source = SEED_CALL.sub(lambda match: f"torch.manual_seed({int(match.group(1)) + 1000 * seed})",
                                        cell.source)
    return notebook


def train_seeded(name: str, seed: int, cache: Path = pipeline.REPO / ".cache" / "seeds") -> Path:
    """Checkpoints of the reference of `name` trained with training seed `seed` (0: the reference's own)."""
    if seed == 0:
        return pipeline.train_reference(name)
    notebook = seeded_training_notebook(name, seed)
    return pipeline.cached(cache / f"{name}-{pipeline.source_digest(name)}-seed{seed}",
                           lambda folder: pipeline.run_training(folder, name, notebook, f"training {name}, seed {seed}"))


def judged_values(notebook: Notebook, checkpoints: Path, inputs: Inputs) -> tuple[list[tuple[Figure, float]], dict]:
    """Values judged against figures when the reference with `checkpoints` is checked under `inputs`; failures."""
    with tempfile.TemporaryDirectory(prefix="aecourse-seeds-") as scratch:
        folder = put_checkpoints(notebook.name, checkpoints, Path(scratch))
        with contextlib.chdir(folder), observed() as values:
            verdicts = notebook.check(notebook.namespace(), folder, inputs)
    return values, {grade_id: verdict.message for grade_id, verdict in verdicts.items() if not verdict.passed}


def margins(names: list[str], seeds: int = SEEDS, retrain: bool = False,
            progress: Callable[[str], None] = lambda line: None) -> tuple[list[Margin], dict[str, dict]]:
    """Worst value of each judged figure over `seeds` grading seeds (and training seeds with `retrain`); failures."""
    torch.set_num_threads(1)
    found: dict[str, Margin] = {}
    failures: dict[str, dict] = {}
    for name in names:
        notebook = Notebook(name, notebooks.build_notebook(pipeline.SOURCE / f"{name}.py"))
        for seed in range(seeds):
            training_seed = seed if retrain and name in TRAINED else 0
            run = f"{name} training seed {training_seed}, grading seed {seed}"
            values, failed = judged_values(notebook, train_seeded(name, training_seed), Inputs(GRADING_SEED + seed))
            if failed:
                failures[run] = failed
            for figure, value in values:
                key = figure_name(figure)
                found.setdefault(key, Margin(key, figure)).values.append((run, value))
            progress(f"{run}: {len(values)} values, {len(failed)} failing cell(s)")
    return sorted(found.values(), key=lambda margin: margin.name), failures


def table(found: list[Margin]) -> str:
    """The margins as a Markdown table: figure, threshold, reference, worst seed's value, margin."""
    rows = ["| figure | threshold | reference | runs | worst value | worst run | margin |", "|---|---:|---:|---:|---:|---|---:|"]
    for margin in found:
        figure = margin.figure
        direction = ">" if figure.higher_is_better else "<"
        run, value = margin.worst
        rows.append(f"| {margin.name} | {direction} {figure.threshold:g} | {figure.reference:g} | {len(margin.values)} | "
                    f"{value:.4g} | {run} | {margin.margin:+.0%} |")
    return "\n".join(rows)


def secret_mismatches(variant, folder: Path, seeds: range, cheap: bool = False) -> list[str]:
    """Each grading seed under which a variant (checkpoints in `folder`, the current directory) fails other cells
    than it declares; `cheap`: only the checks that train nothing."""
    # checks that train a model or run t-SNE take seconds each, every other check a fraction of one: the test suite
    # runs only the others under every seed (`aecourse seed-margins --variants`: all)
    checks = checks_of(variant.notebook)
    grade_ids = [grade_id for grade_id in reachable(variant) if not (cheap and checks[grade_id].trains)]
    declared = set(variant.fails) & set(grade_ids)
    found = []
    for seed in seeds:
        failed = set(variant_failures(variant, folder, Inputs(GRADING_SEED + seed), grade_ids))
        if failed != declared:
            found.append(f"{variant.notebook} {variant.name}, grading seed {seed}: fails {sorted(failed)}, "
                         f"declared {sorted(declared)}")
    return found


def variant_secrets(names: list[str], seeds: int = SEEDS,
                    progress: Callable[[str], None] = lambda line: None) -> list[str]:
    """Every grading seed under which a test variant of `names` (but those retrained) fails other cells than it
    declares, every hidden check it can reach run under each of `seeds` seeds."""
    from grader.variants import variants_of

    torch.set_num_threads(1)
    found = []
    for name in names:
        reference = pipeline.train_reference(name)
        for variant in (v for v in variants_of(name).VARIANTS if not v.retrain):
            with tempfile.TemporaryDirectory(prefix="aecourse-variant-") as scratch:
                folder = variant_folder(variant, reference, Path(scratch) / "submission")
                with contextlib.chdir(folder):
                    mismatches = secret_mismatches(variant, folder, range(seeds))
            found += mismatches
            progress(f"{name} {variant.name}: {len(mismatches)} mismatch(es) over {seeds} grading seeds")
    return found
