"""Every notebook's hidden tests, collected and judged as autograde does, on the reference and on variants.

Collection runs the hidden test code in this process (no sandbox, no nbgrader) and the verdicts come
from the same `grader.judge` functions `JudgeCollected` runs. A variant that only changes solution cells
is checked on the hidden tests that can reach those cells (`Notebook.affected`); the others are the
reference's, which passes every one. tests/test_pipeline.py grades the
reference, the blank release, the variants that must be retrained and the hostile catalogue through
`nbgrader autograde`.
"""
from __future__ import annotations

import importlib
from collections import Counter
from pathlib import Path

import pytest
import torch

from grader import notebooks, pipeline, submissions
from grader.collect.common import Inputs
from grader.judge import common
from grader.inprocess import checked, failures, put_checkpoints, reachable, variant_folder
from grader.checks import MODULES, checks_of, store_calls
from grader.reference import figure_name
from grader.validity import seeds
from grader.variants import notebooks_under_test, variants_of

NOTEBOOKS = notebooks_under_test()
CHECKED = {name: checked(name) for name in NOTEBOOKS}
CASES = [(name, variant) for name in NOTEBOOKS for variant in variants_of(name).VARIANTS if not variant.retrain]
INPUTS = Inputs(20261122)


def figures_of(name: str) -> dict:
    """The reference figures of notebook `name` (its table in grader/reference.py)."""
    return importlib.import_module(f"grader.judge.{MODULES[name]}").FIGURES


def failing_cells(name: str, replacements: dict[str, str] | None, folder: Path,
                  grade_ids: list[str] | None = None, inputs: Inputs = INPUTS) -> dict[str, str]:
    """Collect the hidden tests `grade_ids` (default: all) of notebook `name` with `replacements` for its solution
    cells, judge them under `inputs`; return failures."""
    notebook = CHECKED[name]
    return failures(notebook.check(notebook.namespace(replacements), folder, inputs, grade_ids))


def submission_dir(tmp_path: Path, name: str) -> Path:
    """A folder holding the reference checkpoints of `name`, as a submission folder holds them."""
    return put_checkpoints(name, pipeline.train_reference(name), tmp_path)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_points_cell_is_collected_and_judged_as_its_check_declares(name):
    graded = {gid for gid, pts in notebooks.points(CHECKED[name].source).items() if pts > 0}
    declared = checks_of(name)
    assert set(CHECKED[name].hidden) == graded == set(declared)
    for grade_id, code in CHECKED[name].hidden.items():
        calls = store_calls(code)
        assert [(call.grade_id, call.collector) for call in calls] == [(grade_id, declared[grade_id].collector_path)], (
            f"{grade_id}'s hidden test should store its collection once, with the collector its check declares")
        assert "grader.judge" not in code and "grader.reference" not in code


class ReadKeys(common.Collected):
    """A collection that notes every key its judge looks up (the reference run records them)."""
    looked_up: list[tuple[set, set]] = []

    def __init__(self, data):
        super().__init__(data)
        self.read: set = set()
        ReadKeys.looked_up.append((set(data), self.read))

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)

    def __contains__(self, key):
        self.read.add(key)
        return super().__contains__(key)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_reference_passes_every_hidden_check_and_reports_the_figures_declared(name, tmp_path, monkeypatch):
    monkeypatch.chdir(submission_dir(tmp_path, name))
    monkeypatch.setattr(common, "Collected", ReadKeys)
    ReadKeys.looked_up = []
    notebook = CHECKED[name]
    verdicts = notebook.check(notebook.namespace(), tmp_path, INPUTS)
    assert failures(verdicts) == {}
    for grade_id, verdict in verdicts.items():  # what was measured or compared, and against what, on a pass too
        assert len(verdict.message.splitlines()) > 1, f"{grade_id}'s feedback names no figure, comparison or shape"
    # every key a judge looks up on the way to passing, its collector stores (a `.get` of a key the collector never
    # writes would pass or fail on None); keys read only to word a failure are not reached here
    for grade_id, (stored, read) in zip(notebook.hidden, ReadKeys.looked_up, strict=True):
        assert read <= stored, f"{grade_id}'s judge reads {sorted(read - stored)}, which its collector never stores"
    table = figure_name(next(iter(figures_of(name).values()))).split(".")[0]
    for grade_id, declared in checks_of(name).items():
        reported = sorted({figure["figure"] for figure in verdicts[grade_id].figures})
        assert reported == sorted(f"{table}.{key}" for key in declared.figures), grade_id
        assert all(figure["passed"] for figure in verdicts[grade_id].figures)
        assert bool(verdicts[grade_id].pictures) == declared.pictured, f"{grade_id}: a picture is expected only " \
                                                                      "and always for the checks declared pictured"
        # submission_dir trained the reference, which keeps its collections: its pictures are beside the student's
        beside_reference = "beside a reference solution's" in verdicts[grade_id].message
        assert beside_reference == declared.pictured, f"{grade_id}: the reference's result should be pictured"


def test_every_graded_figure_is_declared_by_exactly_one_check():
    declared = Counter(f"{name}:{key}" for name in NOTEBOOKS for check in checks_of(name).values()
                       for key in check.figures)
    assert all(count == 1 for count in declared.values()), declared
    graded = {f"{name}:{key}" for name in NOTEBOOKS for key in figures_of(name) if not key.startswith("notebook_")}
    assert set(declared) == graded


def test_affected_checks_follow_code_through_other_cells():
    notebook = CHECKED["1_ae"]
    encoder = notebook.solutions["encoder_decoder"]
    # Autoencoder builds an Encoder, so its test reaches the encoder's cell; sample_train's test does not.
    reached = notebook.affected({"encoder_decoder": encoder.replace("nn.ReLU()", "nn.Sigmoid()")})
    assert {"test_encoder_decoder", "test_autoencoder", "test_reconstruction"} <= set(reached)
    assert "test_sample_train" not in reached and "test_sparsity_penalty" not in reached
    assert notebook.affected({"encoder_decoder": encoder + "\ntorch.manual_seed(1)\n"}) == list(notebook.hidden)
    assert notebook.affected({"encoder_decoder": "def broken(:"}) == list(notebook.hidden)


@pytest.mark.parametrize("name, variant", CASES, ids=lambda case: getattr(case, "name", case))
def test_variant_fails_exactly_its_cells_under_every_secret(name, variant, tmp_path, monkeypatch):
    folder = variant_folder(variant, pipeline.train_reference(name), tmp_path / "submission")
    monkeypatch.chdir(folder)
    checked = reachable(variant)
    assert set(variant.fails) <= set(checked), "a cell this variant fails is not among those it can reach"
    failures = failing_cells(name, variant.cells, folder, checked)
    assert set(failures) == set(variant.fails), failures
    assert not (tmp_path / submissions.PAYLOAD_MARKER).exists(), "a checkpoint ran code while being loaded"
    for message in failures.values():
        assert "malformed" not in message, f"judges must fail with a message, not a crash: {message}"
    # The same verdicts under four more grading secrets, for the checks that train nothing (test_tsne below;
    # `aecourse seed-margins --variants` runs every check under every secret: docs/seed_margins.md).
    assert seeds.secret_mismatches(variant, folder, range(1, seeds.SEEDS), cheap=True) == []


# Grading secrets besides the suite's: a verdict must not change with the secret. test_tsne is the one check whose
# verdict rests on figures of a map the student's own helpers shape (the other 4_tsne checks compare exact values):
# a tsne built on a wrong helper fails it through that helper's own check, whatever the secret. Checked here for
# the variants that once passed or failed it by chance, the correct ones (but the slow Python loop) and the tsne
# mistakes; `aecourse seed-margins` measures the thresholds' margins over secrets on the reference.
OTHER_SECRETS = (Inputs(11), Inputs(22), Inputs(33), Inputs(44))
SECRET_CASES = ["kl_swapped", "q_gaussian_kernel", "p_sigma_not_squared", "cdist_explicit_hand_written_updates",
                "pdist_log_space_precision_bisection", "tsne_no_zero_grad", "tsne_gradient_ascent",
                "tsne_ignores_optimizer"]


@pytest.mark.skipif("4_tsne" not in NOTEBOOKS, reason="AECOURSE_TEST_NOTEBOOKS leaves 4_tsne out")
@pytest.mark.parametrize("variant_name", SECRET_CASES)
def test_tsne_verdicts_do_not_depend_on_the_secret(variant_name, tmp_path, monkeypatch):
    variant = {v.name: v for v in variants_of("4_tsne").VARIANTS}[variant_name]
    monkeypatch.chdir(tmp_path)
    expected = "test_tsne" in variant.fails
    for inputs in OTHER_SECRETS:
        failed = "test_tsne" in failing_cells("4_tsne", variant.cells, tmp_path, ["test_tsne"], inputs)
        assert failed == expected, f"{variant_name} under secret seed {inputs.seed}: test_tsne {failed=}"


def test_streams_of_secret_inputs_are_named():
    inputs = Inputs(7)
    first = torch.rand(5, generator=inputs.generator("noise"))
    assert torch.equal(first, torch.rand(5, generator=Inputs(7).generator("noise")))  # the judge derives the same
    assert not torch.equal(first, torch.rand(5, generator=inputs.generator("noise 1")))
    assert not torch.equal(first, torch.rand(5, generator=Inputs(8).generator("noise")))
    with pytest.raises(TypeError, match="named by a string"):
        inputs.generator(3)  # a number: inserting a stream before it would silently change every later draw
