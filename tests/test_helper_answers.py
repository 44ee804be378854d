"""The release check that no student helper in aelib/ computes a graded function's solution.

The committed release passing it is tested with the other leaks (`aecourse check` in tests/test_cli.py)."""
from __future__ import annotations

import shutil

from grader import pipeline
from grader.helper_answers import answers_in_helpers

PLANTED = '''

def jitter(images, std=0.2):
    """A helper that happens to be the answer of 2_dae's add_noise."""
    return images + std * torch.randn(images.shape)


def jitter_squared(images, std=0.2):
    """A wrong add_noise (std used as the variance): not the answer."""
    return images + std ** 2 * torch.randn(images.shape)
'''


def test_a_helper_computing_an_answer_is_caught(tmp_path):
    helpers = tmp_path / "aelib"
    shutil.copytree(pipeline.RELEASE / "aelib", helpers)
    with open(helpers / "data.py", "a") as file:
        file.write(PLANTED)
    problems = answers_in_helpers(helpers, pipeline.SOURCE)
    assert len(problems) == 1 and problems[0].startswith("aelib/data.jitter: computes the solution of add_noise")
