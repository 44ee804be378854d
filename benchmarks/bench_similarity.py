"""Benchmark: `aecourse similarity` on a generated class of N students x 5 notebooks.

    nice -n 10 .venv/bin/python benchmarks/bench_similarity.py --students 300

Writes N synthetic submissions into a temporary course: most are the reference solution disguised as a copier
would (every name the solution defines renamed, top-level functions and methods in another order, formatting
redone by `ast.unparse`, a random line dropped from some cells), some the blank release, and for 4_tsne a third
are each of its two independent correct solutions (the correct variants of grader/variants/tsne.py that rewrite
every cell) disguised the same way. Nearly every pair shares most of its code, the slow case for comparing.
Then times `similarity.write_similarity` (reading, comparing every pair of every notebook, writing the page and
the CSV) and prints the seconds, per notebook too.
It asserts nothing.
"""
from __future__ import annotations

import argparse
import ast
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from grader import notebooks, pipeline, similarity  # noqa: E402
from grader.variants import variants_of  # noqa: E402

BLANK_EVERY = 25           # one student in 25 hands in the blank release
DROP_LINE = 0.3            # chance that a cell loses one line


class Renamer(ast.NodeTransformer):
    """Renames every name, argument, function and class a mapping names."""

    def __init__(self, mapping: dict[str, str]):
        self.mapping = mapping

    def visit_Name(self, node: ast.Name) -> ast.Name:
        """A variable."""
        node.id = self.mapping.get(node.id, node.id)
        return node

    def visit_arg(self, node: ast.arg) -> ast.arg:
        """A parameter."""
        node.arg = self.mapping.get(node.arg, node.arg)
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.FunctionDef:
        """A function's name, then its body."""
        node.name = self.mapping.get(node.name, node.name)
        self.generic_visit(node)
        return node

    visit_ClassDef = visit_FunctionDef


def defined_names(trees: list[ast.Module]) -> list[str]:
    """The names a solution defines: functions, classes, parameters and assigned variables."""
    names = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.arg):
                names.add(node.arg)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
    return sorted(name for name in names if name != "self" and not name.startswith("__"))


def reversed_definitions(body: list[ast.stmt]) -> None:
    """Put the function and class definitions of a body in reverse order, in place (other statements stay)."""
    places = [index for index, statement in enumerate(body) if isinstance(statement, (ast.FunctionDef, ast.ClassDef))]
    for index, statement in zip(places, [body[index] for index in places][::-1]):
        body[index] = statement


def disguised(cells: dict[str, str], rng: random.Random, drop: float = 0.0, rename: bool = True,
              reorder: bool = True) -> dict[str, str]:
    """Solution cells as a copier hides them: names renamed, definitions reordered, reformatted, maybe a line less."""
    trees = {grade_id: ast.parse(code) for grade_id, code in cells.items()}
    prefix = rng.choice(["my", "the", "tmp", "new", "v"])
    mapping = {name: f"{prefix}_{name[::-1]}{rng.randint(0, 99)}" for name in defined_names(list(trees.values()))}
    result = {}
    for grade_id, tree in trees.items():
        if rename:
            tree = Renamer(mapping).visit(tree)
        for node in ast.walk(tree) if reorder else ():
            if isinstance(node, (ast.Module, ast.ClassDef)):
                reversed_definitions(node.body)
        lines = ast.unparse(tree).splitlines()
        if len(lines) > 3 and rng.random() < drop:
            del lines[rng.randrange(1, len(lines))]
        result[grade_id] = "\n".join(lines) + "\n"
    return result


def reference_cells(source: dict) -> dict[str, str]:
    """The reference solution of each solution cell of a source notebook."""
    cells = notebooks.cells_by_grade_id(source)
    return {grade_id: notebooks.solution_code(cells[grade_id].source) for grade_id in similarity.solution_ids(source)}


def make_class(root: Path, count: int, seed: int = 0) -> list[str]:
    """Write `count` students' five notebooks into the course at `root`; return the student ids."""
    rng = random.Random(seed)
    names = similarity.notebook_names(root)
    sources = {name: notebooks.read(root / "source" / pipeline.ASSIGNMENT / f"{name}.ipynb") for name in names}
    releases = {name: notebooks.read(pipeline.RELEASE / f"{name}.ipynb") for name in names}
    every = set(similarity.solution_ids(sources["4_tsne"]))
    independent = [{}] + [variant.cells for variant in variants_of("4_tsne").VARIANTS
                          if variant.correct and set(variant.cells) == every][:2]
    students = [f"s{index:03d}" for index in range(count)]
    for index, student in enumerate(students):
        files = {}
        for name in names:
            if index % BLANK_EVERY == BLANK_EVERY - 1:
                files[f"{name}.ipynb"] = releases[name]
                continue
            base = {**reference_cells(sources[name]),
                    **(independent[index % len(independent)] if name == "4_tsne" else {})}
            answers = disguised(base, rng, DROP_LINE)
            files[f"{name}.ipynb"] = pipeline.fill_release(releases[name], sources[name], answers)
        pipeline.submit(root, student, files)
    return students


def main() -> None:
    """Generate the class, time the similarity report, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, default=300)
    parser.add_argument("--scheduler", help="a Dask scheduler's address (default: here, one notebook after another)")
    parser.add_argument("--keep", action="store_true", help="keep the generated course and print where it is")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="aecourse-similarity-"))
    try:
        root = pipeline.prepare_course(folder / "course")
        started = time.perf_counter()
        make_class(root, args.students)
        print(f"generated {args.students} students x 5 notebooks in {time.perf_counter() - started:.0f} s")
        started = time.perf_counter()
        found = similarity.write_similarity(root, scheduler=args.scheduler)
        seconds = time.perf_counter() - started
        pairs = sum(len(result.scores) for result in found.results.values())
        print(f"similarity: {seconds:.1f} s for {args.students} students x {len(found.notebooks)} notebooks "
              f"({pairs:,} comparisons, the reference included), page {found.page.stat().st_size / 2**20:.1f} MiB, "
              f"CSV {found.table.stat().st_size / 2**20:.1f} MiB")
        for name, result in found.results.items():
            print(f"  {name}: {result.seconds:.1f} s comparing, {len(result.matches):,} matches at or above "
                  f"{found.threshold:g}")
        print(f"  {len(found.pairs()):,} student pairs flagged, {len(found.reference_matches())} students match the "
              f"reference")
        if args.keep:
            print(f"course kept in {root}")
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
