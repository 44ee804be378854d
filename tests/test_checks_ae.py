"""The hidden checks of 1_ae, run exactly as its hidden test cells run them, on the reference and on variants."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from grader import notebooks, pipeline, submissions
from grader.checks import ae as checks
from grader.variants import ae as variants

SOURCE = notebooks.build_notebook(pipeline.SOURCE / "1_ae.py")
HIDDEN = notebooks.hidden_tests(SOURCE)
CHECKED_HERE = [v for v in variants.VARIANTS if not v.retrain]


def failing_cells(namespace: dict) -> dict[str, str]:
    """Run every hidden test in `namespace`; return the failing grade cells with their messages."""
    failures = {}
    for grade_id, code in HIDDEN.items():
        try:
            exec(code, dict(namespace))
        except Exception as error:  # a grade cell fails on any exception
            failures[grade_id] = f"{type(error).__name__}: {error}"
    return failures


def submission_dir(tmp_path: Path, reference_dir: Path) -> Path:
    """A folder with the reference checkpoints, as a submission folder holds them."""
    for path in reference_dir.glob("1_ae_*.pth"):
        shutil.copy(path, tmp_path / path.name)
    return tmp_path


def test_every_points_cell_has_hidden_checks():
    graded = {gid for gid, pts in notebooks.points(SOURCE).items() if pts > 0}
    assert set(HIDDEN) == graded


def test_reference_passes_every_hidden_check(reference_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(submission_dir(tmp_path, reference_dir))
    assert failing_cells(notebooks.definitions(SOURCE)) == {}


@pytest.mark.parametrize("variant", CHECKED_HERE, ids=lambda v: v.name)
def test_variant_fails_exactly_its_cells(variant, reference_dir, tmp_path, monkeypatch):
    folder = submission_dir(tmp_path, reference_dir)
    marker = tmp_path / submissions.PAYLOAD_MARKER
    for filename, how in variant.files.items():
        submissions.tamper(folder / filename, how, reference_dir, marker)
    monkeypatch.chdir(folder)
    failures = failing_cells(notebooks.definitions(SOURCE, variant.cells))
    assert set(failures) == set(variant.fails), failures
    assert not marker.exists(), "a checkpoint ran code while being loaded"
    for message in failures.values():
        assert message.startswith("AssertionError"), f"checks must fail with a message, not a crash: {message}"


def test_failure_messages_say_what_to_do(reference_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = notebooks.definitions(SOURCE)
    with pytest.raises(AssertionError, match="1_ae_encoder.pth was not found.*submit"):
        checks.check_reconstruction(namespace["Encoder"], namespace["Decoder"])


def test_judges_work_on_plain_tensors_alone():
    x = torch.rand(2000, 1, 28, 28)
    with pytest.raises(AssertionError, match="MSE"):
        checks.judge_reconstruction({"reconstructions": torch.zeros_like(x), "test_images": x})
    checks.judge_reconstruction({"reconstructions": x + 0.01, "test_images": x})
    case = {"activations": torch.full((4, 3), 0.2), "rho": 0.2, "value": torch.tensor(0.0),
            "grad": torch.ones(4, 3)}
    checks.judge_sparsity({"cases": [case]})
    with pytest.raises(AssertionError, match="expected"):
        checks.judge_sparsity({"cases": [dict(case, value=torch.tensor(0.5))]})


def test_sparsity_closed_form_matches_a_hand_computed_value():
    activations = torch.tensor([[0.1, 0.5], [0.3, 0.5]])
    rho = 0.1
    expected = sum(rho * torch.log(torch.tensor(rho / q)) + (1 - rho) * torch.log(torch.tensor((1 - rho) / (1 - q)))
                   for q in (0.2, 0.5))
    assert torch.isclose(checks.sparsity_closed_form(activations, rho).float(), expected.float())
