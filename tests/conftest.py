"""Shared fixtures: offline MNIST, the reference checkpoints and a temporary nbgrader course."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "source" / "autoencoders"))
os.environ.setdefault("AUTOENCODERS_DATA_DIR", str((REPO.parent / "shared" / "data").resolve()))
os.environ.setdefault("AUTOENCODERS_OFFLINE_SPLIT", "1")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """Checkpoints and executed notebook of the reference solution of 1_ae (trained once, then cached)."""
    from grader import pipeline

    return pipeline.train_reference("1_ae")


@pytest.fixture(scope="session")
def course(tmp_path_factory) -> Path:
    """A temporary nbgrader course directory with the assignment generated."""
    from grader import pipeline

    root = pipeline.prepare_course(tmp_path_factory.mktemp("course"))
    # A fixed grading secret: the secret-seeded inputs, and so every expected score, are the same on every run.
    (root / ".aecourse_secret").write_text("test-course-secret")
    pipeline.generate_release(root)
    return root
