"""Unit tests of 1_ae's judges and messages, beyond the variant sweep in test_checks.py."""
from __future__ import annotations

import pytest
import torch

from grader import notebooks, pipeline
from grader.checks import ae as checks


def test_failure_messages_say_what_to_do(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = notebooks.definitions(notebooks.build_notebook(pipeline.SOURCE / "1_ae.py"))
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
