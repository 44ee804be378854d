"""Benchmark: autograde time of one complete reference submission (five notebooks), this tree beside another.

Judging moved from the student's kernel to the TA's process; this measures what that costs per
submission. Give the other checkout (e.g. a `git worktree` of an older commit, with its reference
checkpoints cached) with --before; both are graded by plain `nbgrader autograde`, alternately, in
the same run:
    AUTOENCODERS_DATA_DIR=../shared/data AUTOENCODERS_OFFLINE_SPLIT=1 \
        .venv/bin/python benchmarks/bench_verdicts.py --before /tmp/before --rounds 2
Prints seconds per submission, the scores and the ratio; it asserts nothing.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
PREPARE = """
import sys
from pathlib import Path
from grader import pipeline, submissions
root = pipeline.prepare_course(Path(sys.argv[1]))
pipeline.generate_release(root)
names = sorted(p.stem for p in (pipeline.SOURCE).glob("[0-9]_*.py"))
for index, name in enumerate(names):
    submissions.submit_reference(root, "bench", name, pipeline.train_reference(name), fresh=index == 0)
"""
SCORE = """
import sys
from pathlib import Path
from grader import pipeline
print(pipeline.read_scores(Path(sys.argv[1]), "bench") and sum(
    sum(cells.values()) for cells in pipeline.read_scores(Path(sys.argv[1]), "bench").values()))
"""


def environment(tree: Path) -> dict[str, str]:
    """The environment that makes `tree`'s grader the one imported (by nbgrader and its kernels)."""
    env = dict(os.environ, PYTHONPATH=str(tree), MPLBACKEND="Agg", PYTHONWARNINGS="ignore")
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def prepare(tree: Path, course: Path) -> None:
    """A course directory of `tree` holding its reference submission as student `bench`."""
    subprocess.run([sys.executable, "-c", PREPARE, str(course)], cwd=tree, env=environment(tree), check=True,
                   capture_output=True)


def autograde(tree: Path, course: Path) -> tuple[float, str]:
    """Seconds for `nbgrader autograde` of the submission, and its total score."""
    started = time.time()
    subprocess.run([sys.executable, "-m", "nbgrader", "autograde", "autoencoders", "--student", "bench", "--force"],
                   cwd=course, env=environment(tree), capture_output=True)
    seconds = time.time() - started
    score = subprocess.run([sys.executable, "-c", SCORE, str(course)], cwd=tree, env=environment(tree),
                           capture_output=True, text=True).stdout.strip()
    return seconds, score


def main() -> None:
    """Grade both trees' reference submissions alternately and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="the other checkout to compare with")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    trees = {"before": args.before.resolve(), "after": HERE}
    with tempfile.TemporaryDirectory() as tmp:
        courses = {label: Path(tmp) / label for label in trees}
        for label, tree in trees.items():
            prepare(tree, courses[label])
        times: dict[str, list[float]] = {label: [] for label in trees}
        for round_ in range(args.rounds):
            for label in (trees if round_ % 2 == 0 else reversed(list(trees))):
                seconds, score = autograde(trees[label], courses[label])
                times[label].append(seconds)
                print(f"round {round_ + 1} {label:6s}: {seconds:6.1f} s, score {score}", flush=True)
    means = {label: statistics.mean(values) for label, values in times.items()}
    for label, mean in means.items():
        print(f"{label:6s}: {mean:6.1f} s per complete submission (mean of {args.rounds})")
    print(f"after / before: {means['after'] / means['before']:.2f}")


if __name__ == "__main__":
    main()
