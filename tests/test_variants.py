"""Variants built from the reference: checked replacements, and no variant that is the reference itself."""
from __future__ import annotations

import ast

import pytest

from grader import notebooks
from grader.checks import MODULES
from grader.variants import (SOURCE, ReplacementError, from_reference, reference_cells, reference_definition,
                             variants_of, without_docstrings)


def code_tree(code: str) -> str:
    """The syntax tree of code without its docstrings, as text (layout and docstrings do not count)."""
    return ast.dump(ast.parse(without_docstrings(code)))


def test_a_replacement_must_match_exactly_once():
    with pytest.raises(ReplacementError, match="'nn.ReLU\\(\\)' occurs [2-9] times"):
        from_reference("1_ae", "encoder_decoder", ("nn.ReLU()", "nn.Tanh()"))
    with pytest.raises(ReplacementError, match="occurs 0 times"):
        from_reference("1_ae", "encoder_decoder", ("nn.Linear(256, 784), nn.Sigmoid(),", "nn.Linear(256, 784),"),
                       ("nn.Linear(256, 784), nn.Sigmoid(),", "nn.Linear(256, 784),"))


def test_replacements_see_code_not_docstrings():
    # "squeezed into codes" is in the docstring of the reference Autoencoder only
    with pytest.raises(ReplacementError, match="occurs 0 times"):
        from_reference("1_ae", "autoencoder", ("squeezed into codes", "squeezed"))


def test_a_variant_that_changes_nothing_is_refused():
    with pytest.raises(ReplacementError, match="no replacement"):
        from_reference("2_dae", "add_noise")
    with pytest.raises(ReplacementError, match="by itself"):
        from_reference("2_dae", "add_noise", ("std", "std"))


def test_unknown_cells_and_definitions_are_named():
    with pytest.raises(ReplacementError, match="no solution cell 'test_add_noise'"):
        from_reference("2_dae", "test_add_noise", ("x", "y"))
    with pytest.raises(ReplacementError, match="defines no 'Encoder'"):
        reference_definition("5_conv_aae", "conv_encoder_decoder", "Encoder")


def docstrings_cut_from_tree(code: str) -> str:
    """The syntax tree of code, as text, with the docstrings of its functions and classes cut from the tree."""
    tree = ast.parse(code)
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and len(node.body) > 1 and \
                isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant):
            node.body = node.body[1:]
    return ast.dump(tree)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_removing_docstrings_removes_nothing_else(name):
    cells = notebooks.cells_by_grade_id(notebooks.build_notebook(SOURCE / f"{name}.py"))
    for grade_id, code in reference_cells(name).items():
        solution = notebooks.solution_code(cells[grade_id].source)
        assert ast.dump(ast.parse(code)) == docstrings_cut_from_tree(solution), grade_id
        assert code.startswith("\n") and code.endswith("\n") and not code.endswith("\n\n"), grade_id


@pytest.mark.parametrize("name", sorted(MODULES))
def test_every_variant_cell_differs_from_the_reference_cell(name):
    reference = reference_cells(name)
    for variant in variants_of(name).VARIANTS:
        for grade_id, code in variant.cells.items():
            assert code_tree(code) != code_tree(reference[grade_id]), \
                f"{variant.name}: its {grade_id} cell is the reference's code, so the variant tests nothing there"


def test_each_reference_source_is_read_once():
    for name in MODULES:
        variants_of(name)
        reference_cells(name)
    assert reference_cells.cache_info().misses <= len(MODULES)
