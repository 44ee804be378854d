"""How far the grades can be trusted: the mutant generator, the mutation score of every graded cell
(every survivor explained in grader/validity/equivalent.toml), and the seed margins of the thresholds."""
from __future__ import annotations

import pytest

from grader import notebooks, pipeline
from grader.reference import AE, figure_name, observed
from grader.validity import mutation, seeds
from grader.validity.mutants import mutants_of_cell, solution_lines

CELL = '''def f(x, y):
    """Docstring with 2 numbers 3."""
    z = 7
    ### BEGIN SOLUTION
    a = torch.exp(x).sum(dim=1) + 2 * y
    if a.mean() < 0:
        return -a
    return torch.relu(torch.randn(3, 4))
    ### END SOLUTION
'''


def changes(operator: str) -> set[str]:
    """The changes one operator makes to CELL."""
    return {m.change for m in mutants_of_cell("nb", "cell", CELL) if m.operator == operator}


def test_every_operator_makes_its_mutants_in_solution_regions_only():
    assert changes("arithmetic") == {"torch.exp(x).sum(dim=1) + 2 * y  ->  torch.exp(x).sum(dim=1) - 2 * y",
                                     "2 * y  ->  2 / y"}
    assert "a.mean() < 0  ->  a.mean() <= 0" in changes("comparison")
    assert {"2  ->  1", "2  ->  4", "0  ->  1", "3  ->  6", "3  ->  1"} <= changes("constant")
    assert "torch.exp(x).sum(dim=1) + 2 * y  ->  2 * y" in changes("drop_term")
    assert changes("reduction") == {"torch.exp(x).sum(dim=1)  ->  torch.exp(x).mean(dim=1)",
                                    "a.mean()  ->  a.sum()"}
    assert "torch.exp(x).sum(dim=1)  ->  torch.exp(x).sum(dim=0)" in changes("dim")
    assert changes("exp_log") == {"torch.exp(x)  ->  torch.log(x)"}
    assert "-a  ->  a" in changes("sign")
    assert changes("random") == {"torch.randn(3, 4)  ->  torch.rand(3, 4)"}
    assert {"torch.relu(torch.randn(3, 4))  ->  torch.randn(3, 4)",
            "torch.relu(torch.randn(3, 4))  ->  torch.sigmoid(torch.randn(3, 4))"} <= changes("activation")
    assert "return -a  ->  return x" in changes("return_input")
    assert changes("swap_arguments") == {"torch.randn(3, 4)  ->  torch.randn(4, 3)"}
    every = mutants_of_cell("nb", "cell", CELL)
    assert not [m for m in every if "z = 7" not in m.code or "Docstring with 2 numbers 3." not in m.code], \
        "code outside the solution region (the signature, the docstring, given lines) must never change"
    assert len({m.key for m in every}) == len(every), "keys must tell every mutant apart"
    assert solution_lines(CELL) == {4, 5, 6, 7}


def test_keys_survive_edits_elsewhere_in_the_cell():
    edited = CELL.replace("z = 7", "z = 7\n    w = 8")
    assert {m.key for m in mutants_of_cell("nb", "cell", CELL)} == {m.key for m in mutants_of_cell("nb", "cell", edited)}


def test_targets_are_the_cells_hidden_tests_hand_to_collectors():
    source = notebooks.build_notebook(pipeline.SOURCE / "1_ae.py")
    targets = {target.cell: target.checks for target in mutation.targets_of("1_ae", source)}
    assert targets["encoder_decoder"] == ("test_encoder_decoder", "test_reconstruction", "test_classifier")
    assert "plot" not in targets and "train_function" not in targets  # graded through checkpoints, not called


def test_the_equivalent_file_gives_every_entry_a_reason():
    entries = mutation.load_equivalent()
    assert entries and all(entry["reason"].strip() and entry["notebook"] and entry["cell"] for entry in entries.values())


def test_figures_report_every_value_they_judge():
    figure = AE["ae10_mse"]
    with observed() as values:
        figure.passes(0.01)
        figure.passes(float("nan"))
    assert [value for _, value in values[:1]] == [0.01] and len(values) == 2 and figure_name(figure) == "AE.ae10_mse"
    margin = seeds.Margin("AE.ae10_mse", figure, [("a", 0.02), ("b", 0.03)])
    assert margin.worst == ("b", 0.03) and margin.margin == pytest.approx((0.032 - 0.03) / 0.032)


def test_seeded_training_shifts_every_manual_seed():
    notebook = seeds.seeded_training_notebook("1_ae", 2)
    code = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
    assert "torch.manual_seed(2000)" in code and "torch.manual_seed(0)" not in code


def test_every_graded_cell_kills_its_mutants():
    reports = mutation.analyse([path.stem for path in notebooks.source_files(pipeline.SOURCE)], processes=1)
    print("\n" + mutation.table(reports))
    left = mutation.survivors(reports)
    assert not left, "unexplained survivors (strengthen the check or explain them in equivalent.toml):\n" + "\n\n".join(
        mutation.describe_survivor(o, next(r.reference for r in reports if r.target.cell == o.mutant.cell)) for o in left)
    assert sum(len(report.outcomes) for report in reports) >= 300
    assert all(report.score >= 0.95 for report in reports), mutation.table(reports)
    assert not mutation.stale_entries(reports, mutation.load_equivalent())


def test_every_threshold_keeps_a_margin_over_grading_seeds():
    # CI-sized: the reference checkpoints under 3 grading seeds; `aecourse seed-margins --retrain` runs 5 grading
    # and 5 training seeds (docs/seed_margins.md)
    found, failures = seeds.margins([path.stem for path in notebooks.source_files(pipeline.SOURCE)], seeds=3)
    print("\n" + seeds.table(found))
    assert not failures, failures
    judged = {margin.name for margin in found}
    assert {"AE.ae10_mse", "DAE.brief_dae_mse", "VAE.brief_training_elbo", "TSNE.check_adam_1nn",
            "CONV_AAE.aae_mmd"} <= judged
    assert all(len(margin.values) >= 3 and margin.margin > 0 for margin in found), seeds.table(found)
