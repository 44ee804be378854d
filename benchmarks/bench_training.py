"""Benchmark: how long each training cell takes, for the reference solution and an alternative architecture.

Every code cell marked `timed="KEY"` in a notebook source is timed, with one torch thread, in the reference
solution and in each retrained correct variant (another architecture a student could reasonably write),
as `aecourse train-reference` executes them (offline split: 8,000 training images). The results go to
grader/training_times.json, from which the notebooks state their times (`{{TIME.KEY}}`, grader/notebooks.py):
with all 60,000 training images a cell that loops over epochs takes 7.5 times as long; a cell whose step
count the offline mode lowers (grader/pipeline.py OFFLINE_SETTINGS) takes that many times more steps.

    AUTOENCODERS_DATA_DIR=../shared/data AUTOENCODERS_OFFLINE_SPLIT=1 .venv/bin/python benchmarks/bench_training.py

trains what is not cached yet, one notebook at a time (about 15 minutes from nothing); `--cached` reads the
newest finished runs in .cache/ instead (their cells match the sources' cell ids as long as no cell was
added). Times come from the cells' execution timestamps that nbclient records.
"""
from __future__ import annotations

import argparse
import json
import platform
import re
from datetime import date, datetime
from pathlib import Path

import torch

from aelib.data import OFFLINE_TRAIN_SIZE
from grader import notebooks, pipeline
from grader.variants import variants_of

FULL_TRAIN_SIZE = 60_000
NOTEBOOKS = ["1_ae", "2_dae", "3_vae", "4_tsne", "5_conv_aae"]
FIXED_DATA = {"4_tsne"}  # its runs use 1,000 test images whatever the split


def cpu_name() -> str:
    """The processor's model name (Linux), or the platform's description."""
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def seconds_by_cell(executed: Path) -> dict[str, float]:
    """Each executed cell's id and how long it ran (from nbclient's timestamps)."""
    times = {}
    for cell in notebooks.read(executed).cells:
        stamps = cell.get("metadata", {}).get("execution", {})
        if "iopub.execute_input" in stamps and "shell.execute_reply" in stamps:
            start, end = (datetime.fromisoformat(stamps[key].replace("Z", "+00:00"))
                          for key in ("iopub.execute_input", "shell.execute_reply"))
            times[cell.id] = (end - start).total_seconds()
    return times


def newest_run(pattern: str) -> Path:
    """The newest finished training folder in .cache matching `pattern`."""
    done = sorted((path.parent for path in pipeline.CACHE.glob(f"{pattern}/.done")), key=lambda p: p.stat().st_mtime)
    if not done:
        raise SystemExit(f"nothing cached matches .cache/{pattern}: run without --cached")
    return done[-1]


def runs(name: str, cached: bool) -> dict[str, Path]:
    """The executed notebooks of the reference and of every retrained correct variant of `name`."""
    alternatives = [variant for variant in variants_of(name).VARIANTS if variant.retrain and not variant.fails]
    if cached:
        folders = {"reference": newest_run(f"reference/{name}-*")}
        folders.update({v.name: newest_run(f"variants/{name}-{v.name}-*") for v in alternatives})
    else:
        folders = {"reference": pipeline.train_reference(name, threads=1)}
        folders.update({v.name: pipeline.train_variant(v, threads=1) for v in alternatives})
    return {run: folder / f"{name}.ipynb" for run, folder in folders.items()}


def full_scale(name: str, source: str) -> float:
    """How many times longer a timed cell runs with all training images than in offline mode."""
    if name in FIXED_DATA:
        return 1.0
    for constant, offline in pipeline.OFFLINE_SETTINGS.get(name, {}).items():
        found = re.search(rf"^{constant} = ([\d_]+)", source, re.M)
        if found:
            return int(found.group(1)) / int(offline)
    return FULL_TRAIN_SIZE / OFFLINE_TRAIN_SIZE


def measure(name: str, cached: bool) -> dict[str, dict]:
    """Every timed cell of notebook `name` with its seconds in each run."""
    source = notebooks.build_notebook(pipeline.SOURCE / f"{name}.py")
    timed = {cell.id: cell for cell in source.cells if "timed" in cell.metadata}
    executed = {run: seconds_by_cell(path) for run, path in runs(name, cached).items()}
    cells = {}
    for cell_id, cell in timed.items():
        missing = [run for run, times in executed.items() if cell_id not in times]
        if missing:
            raise SystemExit(f"{name}: cell {cell_id} did not run in {missing}; run without --cached")
        cells[cell.metadata["timed"]] = {"notebook": name, "full_scale": full_scale(name, cell.source),
                                         "seconds": {run: round(times[cell_id], 1) for run, times in executed.items()}}
    return cells


def main() -> None:
    """Time every notebook's training cells and write grader/training_times.json."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cached", action="store_true", help="read the newest runs in .cache/ instead of training")
    parser.add_argument("--notebooks", nargs="*", default=NOTEBOOKS)
    args = parser.parse_args()
    cells: dict[str, dict] = {}
    for name in args.notebooks:
        for key, entry in measure(name, args.cached).items():
            if key in cells:
                raise SystemExit(f"timed key {key!r} is used twice")
            cells[key] = entry
    result = {"machine": f"{cpu_name()}, one torch thread", "measured": date.today().isoformat(),
              "torch": torch.__version__, "data": f"offline split, {OFFLINE_TRAIN_SIZE:,} training images",
              "cells": cells}
    notebooks.TIMES_FILE.write_text(json.dumps(result, indent=1) + "\n")
    print(f"{'cell':<22} {'notebook':<11} {'offline s (each run)':<34} {'x full':>6}")
    for key, entry in cells.items():
        runs_text = ", ".join(f"{run} {seconds:g}" for run, seconds in entry["seconds"].items())
        print(f"{key:<22} {entry['notebook']:<11} {runs_text:<34} {entry['full_scale']:>6g}")
    print(f"written to {notebooks.TIMES_FILE}")


if __name__ == "__main__":
    main()
