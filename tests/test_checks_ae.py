"""Unit tests of 1_ae's judges and messages, beyond the variant sweep in test_checks.py."""
from __future__ import annotations

import pytest
import torch

from grader import notebooks, pipeline
from grader.collect import ae as collect
from grader.collect.common import Inputs, collected_path, split, store
from grader.collect.record import encode
from grader.judge import judges_of
from grader.judge import ae as judge
from grader.judge.common import judge_cell
from grader.preprocessors import hand_out

INPUTS = Inputs(7)


def test_failure_messages_say_what_to_do(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    hand_out(tmp_path, INPUTS.seed)
    namespace = notebooks.definitions(notebooks.build_notebook(pipeline.SOURCE / "1_ae.py"))
    store("test_reconstruction", collect.collect_trained_codes, namespace["Encoder"], namespace["Decoder"])
    verdict = judge_cell(judge.judge_reconstruction, "test_reconstruction", tmp_path, INPUTS)
    assert not verdict.passed and "1_ae_encoder.pth was not found" in verdict.message and "submit" in verdict.message


def test_judges_use_their_own_images_not_the_kernels():
    images = split("test")[0]
    with pytest.raises(AssertionError, match="MSE"):
        judge.judge_reconstruction({"reconstructions": torch.zeros_like(images)}, INPUTS)
    judge.judge_reconstruction({"reconstructions": images + 0.01}, INPUTS)
    with pytest.raises(AssertionError, match="shape"):  # a kernel cannot shrink the test set it is judged on
        judge.judge_reconstruction({"reconstructions": images[:10] + 0.01}, INPUTS)


def test_sparsity_is_judged_on_the_secret_activations():
    answers = [{"value": judge.sparsity_closed_form(a, 0.01 if rho is None else rho).float(),
                "grad": torch.ones_like(a)} for a, rho in collect.sparsity_activations(INPUTS)]
    judge.judge_sparsity({"cases": answers}, INPUTS)
    with pytest.raises(AssertionError, match="expected"):  # right for other (public) inputs is wrong here
        judge.judge_sparsity({"cases": answers}, Inputs(8))


def test_sparsity_closed_form_matches_a_hand_computed_value():
    activations = torch.tensor([[0.1, 0.5], [0.3, 0.5]])
    rho = 0.1
    expected = sum(rho * torch.log(torch.tensor(rho / q)) + (1 - rho) * torch.log(torch.tensor((1 - rho) / (1 - q)))
                   for q in (0.2, 0.5))
    assert torch.isclose(judge.sparsity_closed_form(activations, rho).float(), expected.float())


@pytest.mark.parametrize("garbage", [{}, {"cases": "x"}, {"cases": [{"value": "tensor", "grad": None}] * 3},
                                     {"reconstructions": torch.full((5,), float("nan"))}, [1, 2], b"\x00" * 10])
def test_malformed_collections_fail_with_a_message(tmp_path, garbage):
    hand_out(tmp_path, INPUTS.seed)
    path = collected_path("test_sparsity_penalty", tmp_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(garbage, bytes):
        path.write_bytes(garbage)
    else:
        path.write_bytes(encode(garbage))
    for grade_id, judge_function in judges_of("1_ae").items():
        if grade_id != "test_sparsity_penalty":
            path.rename(collected_path(grade_id, tmp_path))
            path = collected_path(grade_id, tmp_path)
        verdict = judge_cell(judge_function, grade_id, tmp_path, INPUTS)
        assert not verdict.passed and verdict.message, grade_id


def test_a_collection_that_is_a_link_is_rejected(tmp_path):
    hand_out(tmp_path, INPUTS.seed)
    secret = tmp_path.parent / "elsewhere.safetensors"
    secret.write_bytes(encode({"cases": []}))
    path = collected_path("test_sparsity_penalty", tmp_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(secret)
    verdict = judge_cell(judge.judge_sparsity, "test_sparsity_penalty", tmp_path, INPUTS)
    assert not verdict.passed and "rejected" in verdict.message
