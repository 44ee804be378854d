"""`aecourse`: the TA's command-line tool for building, checking, training, grading and the demo."""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

from grader import notebooks, parallel, pipeline, submissions, submitted
from grader.checks import MODULES
from grader.judge import beside
from grader.variants import variants_of


def notebook_names() -> list[str]:
    """Names of the assignment's notebooks, from their text sources."""
    return [path.stem for path in notebooks.source_files(pipeline.SOURCE)]


def use_data(args: argparse.Namespace) -> None:
    """Point this process and every kernel it starts at the data directory and split mode asked for."""
    if getattr(args, "data_dir", None):
        os.environ["AUTOENCODERS_DATA_DIR"] = str(Path(args.data_dir).resolve())
    if getattr(args, "offline_split", False):
        os.environ["AUTOENCODERS_OFFLINE_SPLIT"] = "1"


def cmd_build(args: argparse.Namespace) -> int:
    """Rebuild the nbgrader source notebooks from their text sources."""
    for path in notebooks.build_sources(pipeline.SOURCE):
        print(f"built {path.relative_to(pipeline.REPO)}")
    return 0


def cmd_release(args: argparse.Namespace) -> int:
    """Regenerate release/ with nbgrader generate_assignment and check it leaks nothing."""
    notebooks.build_sources(pipeline.SOURCE)
    release = pipeline.generate_release(pipeline.prepare_course(Path(args.course)))
    problems = pipeline.release_problems(release)
    for problem in problems:
        print(f"LEAK: {problem}")
    print(f"release written to {release}" if not problems else "release leaks")
    return 1 if problems else 0


def cmd_check(args: argparse.Namespace) -> int:
    """Fail when the source notebooks or the committed release are stale, or the release leaks."""
    failures = [f"source/{pipeline.ASSIGNMENT}/{name} is stale: run `aecourse build`"
                for name in notebooks.stale_sources(pipeline.SOURCE)]
    failures += [f"release/{pipeline.ASSIGNMENT}/{name} is stale: run `aecourse release`"
                 for name in pipeline.release_differences()]
    failures += [f"release leaks: {problem}" for problem in pipeline.release_problems(pipeline.RELEASE)]
    for failure in failures:
        print(failure)
    print("sources and release are up to date" if not failures else f"{len(failures)} problem(s)")
    return 1 if failures else 0


def cmd_train_reference(args: argparse.Namespace) -> int:
    """Train the reference checkpoints of each notebook (and, with --variants, the variants that retrain)."""
    use_data(args)
    names = args.notebooks or notebook_names()
    retrained = [v for name in names for v in variants_of(name).VARIANTS if v.retrain] if args.variants else []
    for key, folder in pipeline.train_all(names, retrained, jobs=args.jobs).items():
        print(f"{key}: checkpoints in {folder}")
    return 0


def cmd_autograde(args: argparse.Namespace) -> int:
    """Autograde the students of a course directory as Dask tasks and print their scores."""
    use_data(args)
    root = Path(args.course).resolve()
    submitted_dir = root / "submitted"
    if not submitted_dir.is_dir():
        raise FileNotFoundError(f"{submitted_dir} does not exist: put submissions in submitted/<student>/"
                                f"{pipeline.ASSIGNMENT}/ first")
    students = args.students or submitted.student_folders(submitted_dir)
    # an invalid id is not looked up here: grade_class rejects it, and it is listed with the errors below
    unknown = [s for s in students if submitted.is_valid_student_id(s)
               and not os.path.lexists(submitted.submission_folder(root, s))]
    if unknown:
        raise FileNotFoundError(f"no submission in {submitted_dir} for {', '.join(unknown)}")
    where = f"the Dask scheduler at {args.scheduler}" if args.scheduler else \
        f"a local Dask cluster of {args.workers or os.cpu_count()} worker(s)"
    if args.dry_run:
        run = parallel.grade_class(root, students, db_url=args.db, force=args.force, dry_run=True)
        print(f"{len(run.reasons)} of {len(students)} student(s) would be graded:")
        for student, reason in run.reasons.items():
            print(f"  {student}: {reason}")
        print_errors(run)
        return 0
    print(f"autograding {len(students)} student(s) on {where}, gradebook {args.db or root / 'gradebook.db'}")
    unkept = [name for name in MODULES if not beside.is_current(name)]
    if unkept:
        print(f"note: no current reference results are kept for {', '.join(unkept)}: the feedback's pictures show each "
              "student's results alone (`aecourse train-reference` keeps them, to picture a reference solution's "
              "beside)")
    run = parallel.grade_class(root, students, workers=args.workers, scheduler=args.scheduler, db_url=args.db,
                               force=args.force, threads=args.threads, timeout=args.timeout, warm=not args.cold)
    shown = [report for report in run.reports if submitted.is_valid_student_id(report.student)]
    print(pipeline.score_table(shown, max_points(), handed_in(root, run)))
    if run.skipped:
        print(f"\n{len(run.skipped)} student(s) not regraded, their submission unchanged since their last grade "
              f"(--force regrades): {', '.join(run.skipped)}")
    graded = len(run.reports) - len(run.skipped) - len(run.rejected)
    if graded:
        print(f"{graded} student(s) graded in {run.seconds:.0f} s ({3600 * graded / max(run.seconds, 1e-9):.0f} per hour)")
    csv = parallel.export_csv(root, Path(args.csv) if args.csv else root / "grades.csv", args.db)
    print(f"scores of every student in the gradebook, in nbgrader export's CSV format: {csv}")
    print_errors(run)
    print_retries(run)
    print_faults(run)
    return 1 if run.faults else 0


def print_interrupted(run: parallel.ClassRun) -> None:
    """After Ctrl-C: who was graded and recorded, who was not, and how to resume."""
    stopped = [report.student for report in run.interrupted]
    graded = [report.student for report in run.reports
              if not report.interrupted and report.student not in run.skipped + run.rejected]
    print(f"\nINTERRUPTED: {len(graded)} student(s) graded and recorded before Ctrl-C"
          + (f" ({', '.join(graded)})" if graded else "") + f"; {len(stopped)} not graded, their grading stopped "
          f"(no score recorded for them): {', '.join(stopped)}. Every nbgrader process of this run was stopped.")
    print("To resume, run the same `aecourse autograde` command again, without --force if you gave it: it grades "
          "the students not graded yet and skips those graded above.")
    print_retries(run)
    print_faults(run)


def print_retries(run: parallel.ClassRun) -> None:
    """List the students graded again on another worker after a worker was lost."""
    if not run.retried:
        return
    print(f"\nLOST WORKERS: {', '.join(run.lost_workers)}. Each student's task on them was started again:")
    for student, lost in run.retried.items():
        print(f"  {student}: its grading was lost with {', '.join(lost)}")


def print_faults(run: parallel.ClassRun) -> None:
    """List the students left without a score by a grading fault, its cause, and how to retry."""
    if not run.faults:
        return
    print(f"\nGRADING FAULTS: {len(run.faults)} student(s) not graded because the grading side failed (no score "
          "was recorded for them; this is not the students' doing):")
    for report in run.faults:
        print(f"  {report.student}: {report.fault[:500]}")
    print("Fix the cause (the data, the grader or the workers), then run `aecourse autograde` again: it grades "
          "these students again and leaves the others as they are.")


def handed_in(root: Path, run: parallel.ClassRun) -> dict[str, set[str]]:
    """Notebooks each student handed in: regular files of the submission; for the rejected, those in the gradebook."""
    return {report.student: set(report.scores) if report.student in run.rejected
            else submitted.handed_in_notebooks(submitted.submission_folder(root, report.student))
            for report in run.reports}


REJECTED_ADVICE = (f"Rejected submissions were not graded and were left as they are. Ask each of those students to "
                   f"resubmit regular files only (no links, named pipes, sockets, devices or hard links; each file "
                   f"at most {submitted.MAX_FILE_BYTES / submitted.MiB:g} MiB, "
                   f"{submitted.MAX_SUBMISSION_BYTES / submitted.GiB:g} GiB in all), or rename a folder whose name "
                   f"is not a valid student id; then run autograde again (they are checked again).")


def print_errors(run: parallel.ClassRun) -> None:
    """List the students whose autograde failed, then those whose submission was rejected and what to do."""
    failed = [report for report in run.errors if report.student not in run.rejected]
    rejected = [report for report in run.errors if report.student in run.rejected]
    if failed:
        print(f"\n{len(failed)} student(s) with autograde errors (their other cells still count):")
    for report in failed:
        lines = report.error.strip().splitlines()
        print(f"  {report.student}: {lines[-1] if lines else 'unknown error'}")
    if rejected:
        print(f"\n{len(rejected)} student(s) not graded, their submission rejected:")
    for report in rejected:
        print(f"  {submitted.shown(report.student)}: {report.error}")  # one line: problems are joined by "; "
    if rejected:
        print(REJECTED_ADVICE)


def cmd_report(args: argparse.Namespace) -> int:
    """Write the class report (one self-contained HTML page) from the gradebook and the autograded notebooks."""
    from grader import report

    root = Path(args.course).resolve()
    try:
        path = report.write_report(root, args.db, Path(args.out) if args.out else None, args.formgrader_url)
    except ValueError as error:  # a formgrader URL that is not http(s)
        print(f"aecourse report: {error}", file=sys.stderr)
        return 2
    print(f"class report written to {path}")
    return 0


def cmd_similarity(args: argparse.Namespace) -> int:
    """Compare every student's solution code with every other's and with the reference; write the page and CSV."""
    from grader import similarity

    root = Path(args.course).resolve()
    threshold = similarity.DEFAULT_THRESHOLD if args.threshold is None else args.threshold
    where = f"Dask tasks on {args.scheduler}" if args.scheduler else "this process"
    print(f"comparing the solutions of {root / 'submitted'} ({where}), threshold {threshold:g}")
    found = similarity.write_similarity(root, args.notebooks, threshold, Path(args.out) if args.out else None,
                                        args.scheduler)
    for name in found.notebooks:
        print(f"  {name}: {len(found.compared(name))} students compared in {found.results[name].seconds:.1f} s")
    skipped = sorted(found.not_compared)
    print(f"{len(found.pairs())} student pair(s) and {len(found.reference_matches())} student(s) matching the "
          f"reference at or above {threshold:g}"
          + (f"; {len(skipped)} student(s) not compared in full (listed in the page)" if skipped else ""))
    print(f"similarity report written to {found.page} (every pair's score: {found.table})")
    return 0


def cmd_formgrader(args: argparse.Namespace) -> int:
    """Open the course in nbgrader's formgrader (a local Jupyter server) until interrupted."""
    from grader import formgrader

    return formgrader.serve(Path(args.course).resolve(), args.port, args.db)


def max_points(names: list[str] | None = None) -> dict[str, float]:
    """Maximum points of each notebook of the assignment (or of `names`)."""
    return {name: sum(notebooks.points(notebooks.read(pipeline.SOURCE / f"{name}.ipynb")).values())
            for name in names or notebook_names()}


def cmd_demo(args: argparse.Namespace) -> int:
    """Release, train the reference, autograde demo submissions, write feedback and print the scores."""
    use_data(args)
    started = time.time()
    root = Path(args.course).resolve()
    names = args.notebooks or notebook_names()
    unknown = set(names) - set(notebook_names())
    if unknown:
        raise RuntimeError(f"unknown notebooks {sorted(unknown)}; choose from {notebook_names()}")
    print("[1/5] building the source notebooks and the release")
    notebooks.build_sources(pipeline.SOURCE)
    release = pipeline.generate_release(pipeline.prepare_course(root))
    problems = pipeline.release_problems(release)
    if problems:
        print("\n".join(f"LEAK: {problem}" for problem in problems))
        return 1
    print("[2/5] training the reference checkpoints (cached while the notebook is unchanged)")
    references = pipeline.train_all(names, [], jobs=2)
    print("[3/5] preparing demo submissions in submitted/")
    students = ["reference", "blank"]
    submitted = {"reference": set(references), "blank": set(references)}
    declared: dict[str, tuple[str, frozenset[str]]] = {}  # each wrong student's notebook and the cells it must lose
    for index, (name, reference) in enumerate(references.items()):
        submissions.submit_reference(root, "reference", name, reference, fresh=index == 0)
        submissions.submit_blank(root, "blank", name, fresh=index == 0)
        variants = {variant.name: variant for variant in variants_of(name).VARIANTS}
        for variant_name in getattr(variants_of(name), "DEMO", ()):
            # Only the notebook with the mistake: grading the other four again would add minutes, not information.
            student = f"wrong-{name}-{variant_name.replace('_', '-')}"
            submissions.submit_variant(root, student, variants[variant_name], reference)
            students.append(student)
            submitted[student] = {name}
            declared[student] = (name, variants[variant_name].fails)
    print(f"[4/5] autograding (nbgrader autograde, Dask tasks on {args.workers or os.cpu_count()} worker(s))")
    run = parallel.grade_class(root, students, workers=args.workers, force=True)
    reports = run.reports
    for report in reports:
        print(f"  {report.student}: {report.total():g} points in {report.seconds:.0f} s"
              + (" (autograde reported an error)" if report.error else ""))
    print("[5/5] writing feedback to feedback/, the score CSV, the similarity report and the class report")
    pipeline.generate_feedback(root)
    print(f"  {parallel.export_csv(root, root / 'grades.csv')}")
    from grader import report as class_report, similarity
    print(f"  {similarity.write_similarity(root, names).page}")
    print(f"  {class_report.write_report(root)}")
    for student in students:
        shutil.rmtree(root / "autograded" / student / pipeline.ASSIGNMENT / "aelib", ignore_errors=True)
    print()
    print(pipeline.score_table(reports, max_points(names), submitted))
    print(f"\ndemo finished in {time.time() - started:.0f} s")
    expected_full = {"reference": True, "blank": False}
    wrong = [f"{r.student}: {'full marks' if expected_full[r.student] else 'not full marks'} expected"
             for r in reports if expected_full.get(r.student) is not None
             and (r.total() == sum(max_points(names).values())) != expected_full[r.student]]
    for report in reports:
        if report.student in declared:
            name, fails = declared[report.student]
            lost = {cell for cell, points in notebook_points(name).items()
                    if points > 0 and report.scores.get(name, {}).get(cell, 0.0) < points}
            if lost != set(fails):
                wrong.append(f"{report.student}: lost {sorted(lost)}, declared to lose {sorted(fails)}")
    if wrong:
        print("\nDEMO MISMATCH: these scores differ from what the submissions must get:\n  " + "\n  ".join(wrong))
    else:
        print("every demo student got the score declared for it")
    return 1 if wrong else 0


def notebook_points(name: str) -> dict[str, float]:
    """Points of each grade cell of notebook `name`."""
    return notebooks.points(notebooks.read(pipeline.SOURCE / f"{name}.ipynb"))


def cmd_validity(args: argparse.Namespace) -> int:
    """Mutation analysis of every graded cell; exit 1 on a survivor the equivalent file does not explain."""
    use_data(args)
    from grader.validity import mutation

    names = args.notebooks or notebook_names()
    equivalent = mutation.load_equivalent()
    started = time.time()
    counts = {"killed": 0, "crashed": 0, "survived": 0}

    def progress(outcome: mutation.Outcome) -> None:
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
        if args.verbose or outcome.status == "survived":
            print(f"  {outcome.status:8s} {outcome.mutant.notebook}/{outcome.mutant.cell}: {outcome.mutant.change}"
                  + (f"  [{outcome.check}]" if outcome.check else ""), flush=True)

    reports = mutation.analyse(names, processes=args.jobs, limit=args.limit, equivalent=equivalent, progress=progress)
    text = mutation.table(reports)
    left = mutation.survivors(reports)
    cells = {(report.target.notebook, report.target.cell): report for report in reports}
    stale = mutation.stale_entries(reports, equivalent) if args.limit is None else []
    print()
    print(text)
    print(f"\n{sum(len(r.outcomes) for r in reports)} mutants in {time.time() - started:.0f} s on "
          f"{args.jobs or os.cpu_count()} process(es)")
    if args.out:
        Path(args.out).write_text(text + "\n")
    if left:
        print(f"\n{len(left)} survivor(s) no check kills and {mutation.EQUIVALENT_FILE.name} does not explain. "
              "Strengthen the check, or record the mutant as equivalent with the reason:\n")
        for outcome in left:
            print(mutation.describe_survivor(outcome, cells[(outcome.mutant.notebook, outcome.mutant.cell)].reference))
            print()
    for key in stale:
        print(f"note: {mutation.EQUIVALENT_FILE.name} entry {key} names no mutant any more; remove it")
    return 1 if left else 0


def cmd_seed_margins(args: argparse.Namespace) -> int:
    """Worst figure of each threshold over several seeds; exit 1 when a correct run fails a check."""
    use_data(args)
    from grader.validity import seeds

    names = args.notebooks or notebook_names()
    started = time.time()
    if args.variants:
        mismatches = seeds.variant_secrets(names, args.seeds, progress=print)
        print(f"\nTest variants of {', '.join(names)} under {args.seeds} grading seeds, every hidden check they can "
              f"reach, {time.time() - started:.0f} s: " + (f"{len(mismatches)} verdict(s) depend on the secret"
                                                          if mismatches else "no verdict depends on the secret"))
        for line in mismatches:
            print(f"MISMATCH {line}")
        return 1 if mismatches else 0
    found, failures = seeds.margins(names, args.seeds, retrain=args.retrain, progress=print)
    text = seeds.table(found)
    header = (f"Seed margins of {', '.join(names)}: {args.seeds} grading seeds"
              + (" and as many training seeds" if args.retrain else " on the reference checkpoints")
              + f", {time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPU core(s), torch threads 1, "
              f"{time.time() - started:.0f} s.")
    print(f"\n{header}\n\n{text}")
    if args.out:
        Path(args.out).write_text(f"{header}\n\n{text}\n")
    for run, failed in failures.items():
        print(f"FAILED {run}: {failed}")
    return 1 if failures else 0


def parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    top = argparse.ArgumentParser(prog="aecourse", description=__doc__)
    commands = top.add_subparsers(dest="command", required=True)

    def add(name: str, function, help_text: str, data: bool = False) -> argparse.ArgumentParser:
        command = commands.add_parser(name, help=help_text, description=help_text)
        command.set_defaults(function=function)
        if data:
            command.add_argument("--data-dir", help="folder holding MNIST/raw/*.gz (else AUTOENCODERS_DATA_DIR, "
                                                    "/coursedata, or data/ beside the notebooks)")
            command.add_argument("--offline-split", action="store_true",
                                 help="use only the official 10k test split: 8,000 images train, 2,000 test")
        return command

    add("build", cmd_build, "rebuild source/*.ipynb from the text sources source/*/N_name.py")
    add("release", cmd_release, "regenerate release/ with nbgrader generate_assignment").add_argument(
        "--course", default=str(pipeline.REPO), help="course directory (default: this repository)")
    add("check", cmd_check, "fail when source notebooks or release/ are stale or the release leaks")
    train = add("train-reference", cmd_train_reference, "train the reference checkpoints", data=True)
    train.add_argument("notebooks", nargs="*", help="notebook names, e.g. 1_ae (default: all)")
    train.add_argument("--variants", action="store_true",
                       help="also train the test variants that must be retrained (alternative architectures)")
    train.add_argument("--jobs", type=int, default=2, help="notebooks trained at once, sharing the cores (default 2)")
    grade = add("autograde", cmd_autograde, "autograde students in parallel (Dask) and print scores", data=True)
    grade.add_argument("students", nargs="*", help="student ids (default: everyone in submitted/)")
    grade.add_argument("--course", default=str(pipeline.REPO), help="course directory (default: this repository)")
    grade.add_argument("--workers", type=int, default=None,
                       help="students graded at once on a local Dask cluster (default: one per core)")
    grade.add_argument("--scheduler", help="address of an existing Dask scheduler (e.g. tcp://host:8786), whose "
                                           "workers see the course directory at the same path")
    grade.add_argument("--db", help="gradebook URL, e.g. postgresql://user@host/gradebook (default: the course's "
                                    "gradebook.db)")
    grade.add_argument("--threads", type=int, help="torch threads per student graded (default: cores // workers; "
                                                   "1 with --scheduler)")
    grade.add_argument("--force", action="store_true", help="regrade students whose submission has not changed")
    grade.add_argument("--csv", help="where to write the scores CSV (default: grades.csv in the course)")
    grade.add_argument("--timeout", type=float, default=pipeline.SUBMISSION_TIMEOUT,
                       help="wall-clock seconds for all notebooks of one submission (default 600)")
    grade.add_argument("--dry-run", action="store_true", help="grade nobody: list who would be graded, and why")
    grade.add_argument("--cold", action="store_true",
                       help="start a fresh nbgrader process for every student instead of forking it from each "
                            "worker's warm grading process (the same grades, a few seconds slower per student)")
    report = add("report", cmd_report, "write the class report (one self-contained HTML page) from the gradebook")
    report.add_argument("--course", default=str(pipeline.REPO), help="course directory (default: this repository)")
    report.add_argument("--db", help="gradebook URL (default: the course's gradebook.db)")
    report.add_argument("--out", help="HTML file to write (default: reports/class_report.html in the course)")
    report.add_argument("--formgrader-url", default="http://localhost:8888",
                        help="where the formgrader runs, for the report's links to each student's grading pages "
                             "(default: http://localhost:8888)")
    similar = add("similarity", cmd_similarity, "compare the students' solution code with each other's and with the "
                                                "reference (copydetect); write an HTML page and a CSV")
    similar.add_argument("--course", default=str(pipeline.REPO), help="course directory (default: this repository)")
    similar.add_argument("--notebooks", nargs="*", help="notebook names, e.g. 1_ae (default: all)")
    similar.add_argument("--threshold", type=float,
                         help="list pairs whose score (the larger share of one's solution code found in the "
                              "other's) reaches this on some notebook (default 0.5, calibrated: see the README)")
    similar.add_argument("--out", help="HTML file to write, the CSV beside it (default: reports/similarity.html in "
                                       "the course)")
    similar.add_argument("--scheduler", help="address of a Dask scheduler: each notebook is one task there "
                                             "(default: compare in this process)")
    serve = add("formgrader", cmd_formgrader, "open the course in nbgrader's formgrader (Ctrl-C stops it)")
    serve.add_argument("--course", default=str(pipeline.REPO), help="course directory (default: this repository)")
    serve.add_argument("--db", help="gradebook URL (default: the course's gradebook.db)")
    serve.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    demo = add("demo", cmd_demo, "the whole pipeline on demo submissions, ending with a score table", data=True)
    demo.add_argument("--course", default=str(pipeline.REPO), help="course directory (default: this repository)")
    demo.add_argument("--notebooks", nargs="*", help="notebook names, e.g. 1_ae (default: all)")
    demo.add_argument("--workers", type=int, default=None, help="students graded at once (default: one per core)")
    validity = add("validity", cmd_validity, "mutation analysis: mutants of every graded function through its hidden "
                                             "checks, and the per-cell mutation score", data=True)
    validity.add_argument("--notebooks", nargs="*", help="notebook names, e.g. 4_tsne (default: all)")
    validity.add_argument("--jobs", type=int, help="mutants run at once (default: one per core)")
    validity.add_argument("--limit", type=int, help="at most this many mutants per graded cell (a quick look)")
    validity.add_argument("--out", help="also write the per-cell table (Markdown) to this file")
    validity.add_argument("--verbose", action="store_true", help="print every mutant's outcome")
    margins = add("seed-margins", cmd_seed_margins, "the worst value of every graded figure over several seeds",
                  data=True)
    margins.add_argument("--notebooks", nargs="*", help="notebook names, e.g. 1_ae (default: all)")
    margins.add_argument("--seeds", type=int, default=5, help="number of seeds (default 5)")
    margins.add_argument("--retrain", action="store_true",
                         help="also retrain each notebook's reference with as many training seeds (long)")
    margins.add_argument("--out", help="also write the table (Markdown) to this file")
    margins.add_argument("--variants", action="store_true",
                         help="instead: check that every test variant loses exactly its declared cells under each "
                              "grading seed (all hidden checks)")
    return top


def main(argv: list[str] | None = None) -> int:
    """Entry point of `aecourse`."""
    args = parser().parse_args(argv)
    try:
        return args.function(args)
    except (RuntimeError, FileNotFoundError) as error:
        print(f"aecourse {args.command}: {error}", file=sys.stderr)
        return 1
    except parallel.GradingInterrupted as interrupt:  # Ctrl-C while grading (autograde, demo)
        print_interrupted(interrupt.run)
        return 130
