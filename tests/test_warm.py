"""The warm grading process (grader/warm.py): each child is a fresh nbgrader process in all that matters.

nbgrader runs a course's `nbgrader_config.py` as Python: the probes below are such configs, so they run
inside the forked child exactly where nbgrader's own code would. The same grades from warm and fresh
processes are checked on real submissions in test_parallel.py (`sequential` is graded cold).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from grader import pipeline
from grader.warm import WarmGrader, WarmGraderDied

PROBE = """
import json, os, sys, threading
import grader
here = {"cwd": os.getcwd(), "mark": os.environ.get("PROBE_MARK"), "pid": os.getpid(), "ppid": os.getppid(),
        "sid": os.getsid(0), "threads": threading.active_count(), "leak": getattr(grader, "LEAK", None),
        "lock": any(os.readlink(f"/proc/self/fd/{fd}").endswith("student.lock") for fd in os.listdir("/proc/self/fd")
                    if os.path.exists(f"/proc/self/fd/{fd}")),
        "stdin": os.readlink("/proc/self/fd/0"), "torch": "torch" in sys.modules}
grader.LEAK = here["pid"]
open("probe.json", "w").write(json.dumps(here))
"""


@pytest.fixture(scope="module")
def warm() -> WarmGrader:
    """One warm process for the module's tests."""
    grader = WarmGrader(pipeline.dies_with_caller)
    yield grader
    grader.close()


def run_probe(warm: WarmGrader, folder, config: str, env: dict[str, str], fds=()) -> tuple[int, dict, str]:
    """Run `nbgrader db student list` in `folder` with `config` as its nbgrader_config.py: exit status, probe, log."""
    folder.mkdir(exist_ok=True)
    (folder / "nbgrader_config.py").write_text(config)
    with open(folder / "log.txt", "wb") as log:
        child = warm.start(["db", "student", "list"], folder, pipeline.grading_env(env), log.fileno(), log.fileno(),
                           fds)
        code = child.wait(timeout=120)
    probe = json.loads((folder / "probe.json").read_text()) if (folder / "probe.json").exists() else {}
    return code, probe, (folder / "log.txt").read_text()


def test_a_child_runs_in_its_folder_environment_and_session_with_the_descriptors_it_was_given(warm, tmp_path):
    lock = os.open(tmp_path / "student.lock", os.O_RDWR | os.O_CREAT)
    try:
        code, probe, log = run_probe(warm, tmp_path / "one", PROBE,
                                     {**os.environ, "PROBE_MARK": "first"}, (lock,))
    finally:
        os.close(lock)
    assert code == 0, log
    assert probe["cwd"] == str(tmp_path / "one") and probe["mark"] == "first" and probe["lock"], probe
    assert probe["sid"] == probe["pid"] and probe["ppid"] == warm.process.pid != probe["pid"], probe
    assert probe["stdin"] == os.devnull and probe["torch"], probe  # the judges' imports were done before the fork
    assert "PROBE_MARK" not in os.environ or os.environ["PROBE_MARK"] != "first"


def test_nothing_one_child_changes_reaches_the_next(warm, tmp_path):
    first = run_probe(warm, tmp_path / "first", PROBE, {**os.environ, "PROBE_MARK": "a"})[1]
    second = run_probe(warm, tmp_path / "second", PROBE, {**os.environ, "PROBE_MARK": "b"})[1]
    # nbgrader reads its config twice, so a child may see its own mark, never the first child's
    assert first["leak"] in (None, first["pid"]) and second["leak"] in (None, second["pid"]), (first, second)
    assert second["mark"] == "b" and first["pid"] != second["pid"]
    assert psutil.Process(warm.process.pid).num_threads() == 1, "the warm process started a thread: forks are unsafe"


def test_a_failing_child_reports_its_status_and_the_warm_process_serves_the_next(warm, tmp_path):
    code, _, log = run_probe(warm, tmp_path / "bad", "raise SystemExit(3)\n", dict(os.environ))
    assert code != 0 and warm.alive(), log
    assert run_probe(warm, tmp_path / "good", PROBE, dict(os.environ))[0] == 0


def test_a_child_is_killed_like_a_process_and_its_status_says_so(warm, tmp_path):
    folder = tmp_path / "slow"
    folder.mkdir()
    (folder / "nbgrader_config.py").write_text("import time\ntime.sleep(300)\n")
    child = warm.start(["db", "student", "list"], folder, pipeline.grading_env(), 1, 2)
    with pytest.raises(subprocess.TimeoutExpired):
        child.wait(timeout=0.5)
    pipeline.kill_tree(child.pid)
    assert child.wait(timeout=30) == -signal.SIGKILL and warm.alive()


def test_when_the_warm_process_dies_its_child_dies_and_the_caller_hears_of_it(tmp_path):
    grader = WarmGrader(pipeline.dies_with_caller)
    folder = tmp_path / "orphan"
    folder.mkdir()
    (folder / "nbgrader_config.py").write_text("import time\ntime.sleep(300)\n")
    child = grader.start(["db", "student", "list"], folder, pipeline.grading_env(), 1, 2)
    os.kill(grader.process.pid, signal.SIGKILL)
    with pytest.raises(WarmGraderDied):
        child.wait(timeout=30)
    deadline = time.time() + 10
    while psutil.pid_exists(child.pid) and psutil.Process(child.pid).status() != psutil.STATUS_ZOMBIE:
        assert time.time() < deadline, "the child outlived the warm process"
        time.sleep(0.1)
    grader.close()


def test_what_a_dask_nanny_sets_for_its_worker_does_not_reach_nbgrader_or_kernels():
    # inherited, MALLOC_TRIM_THRESHOLD_=65536 made 4_tsne's kernels run 1.7 times as long
    env = pipeline.grading_env({"PATH": os.environ["PATH"], "MALLOC_TRIM_THRESHOLD_": "65536"})
    assert "MALLOC_TRIM_THRESHOLD_" not in env and env["MPLBACKEND"] == "Agg"


def test_a_warm_process_is_replaced_when_the_graders_code_changes():
    from grader import warm

    first = warm.warm_grader(pipeline.dies_with_caller)
    assert warm.warm_grader(pipeline.dies_with_caller) is first
    changed = Path(warm.__file__).with_name("__init__.py")
    times = changed.stat()
    try:
        os.utime(changed, ns=(times.st_atime_ns, times.st_mtime_ns + 1_000_000))  # as an update in place would
        second = warm.warm_grader(pipeline.dies_with_caller)
    finally:
        os.utime(changed, ns=(times.st_atime_ns, times.st_mtime_ns))
    assert second is not first and second.alive() and not first.alive()
    second.close()


def probe_warm() -> bool:
    """In a Dask task: whether this worker thread already holds a live warm process (none is started here)."""
    from grader import warm

    grader = getattr(warm._LOCAL, "grader", None)
    return grader is not None and grader.alive()


def test_a_worker_starts_its_warm_process_when_it_joins_not_on_its_first_student():
    from grader import parallel

    with parallel.dask_client(workers=1) as client:
        assert not client.submit(probe_warm, pure=False).result()
        client.register_plugin(parallel.WarmStart())
        assert client.submit(probe_warm, pure=False).result()  # queued behind the warm start, in the same thread


def test_kill_tree_leaves_nothing_of_a_tree_that_keeps_starting_processes():
    # a process listed before its parent was stopped could start another unseen (a kernel launched as nbgrader is killed)
    marker = f"aecourse-kill-tree-{os.getpid()}"
    spawner = subprocess.Popen(["bash", "-c", f"while true; do (exec -a {marker} sleep 300) & done"],
                               start_new_session=True)
    time.sleep(0.3)
    pipeline.kill_tree(spawner.pid)
    spawner.wait(timeout=30)
    time.sleep(0.5)
    left = [p for p in psutil.process_iter(["cmdline"]) if (p.info["cmdline"] or [""])[0] == marker]
    for process in left:
        process.kill()
    assert not left, f"{len(left)} processes of the tree outlived kill_tree"
