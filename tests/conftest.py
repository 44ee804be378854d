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


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory) -> str:
    """A private PostgreSQL server on loopback, started for the tests (Debian's postgresql package)."""
    import glob
    import shutil
    import socket
    import subprocess
    import tempfile

    found = next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))), None) or shutil.which("initdb")
    if not found:
        pytest.fail("PostgreSQL is not installed: apt-get install postgresql (the CI does)")
    bin_dir = Path(found).resolve().parent
    data = Path(tempfile.mkdtemp(prefix="aecourse-pg-"))
    as_owner: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root
        shutil.chown(data, "postgres")
        data.chmod(0o700)
        as_owner = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    subprocess.run([*as_owner, bin_dir / "initdb", "-D", data / "db", "-A", "trust", "-U", "aecourse"],
                   check=True, capture_output=True, cwd=data)
    subprocess.run([*as_owner, bin_dir / "pg_ctl", "-D", data / "db", "-l", data / "log", "-w", "start",
                    "-o", f"-h 127.0.0.1 -p {port} -k {data}"], check=True, capture_output=True, cwd=data)
    try:
        subprocess.run([*as_owner, bin_dir / "createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "aecourse",
                        "gradebook"], check=True, capture_output=True, cwd=data)
        yield f"postgresql://aecourse@127.0.0.1:{port}/gradebook"
    finally:
        subprocess.run([*as_owner, bin_dir / "pg_ctl", "-D", data / "db", "-m", "immediate", "stop"],
                       capture_output=True, cwd=data)
        shutil.rmtree(data, ignore_errors=True)
