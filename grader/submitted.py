"""Student-made files, read as hostile: never following a link, never blocking, never reading without a cap.

    validate_student_id("alice")                             # the id, or ValueError saying what is allowed
    problems = check_submission(root / "submitted" / "alice" / "autoencoders")   # [] when it may be graded
    digest = submission_digest(root, "alice")                # what was graded, for the grading record
    notebook = read_json_file(path, MAX_JSON_BYTES)          # or UnreadableFile with the reason

A submission is walked with `lstat` only, relative to directory descriptors opened with O_NOFOLLOW, so
a link (to /dev/zero, to another student's notebook, to the course's files) is reported and never
followed, and a FIFO, socket or device is reported and never opened. Files that are read are opened
with O_NOFOLLOW | O_NONBLOCK, must be regular files by `fstat`, and are read in chunks under a cap.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from grader.pipeline import ASSIGNMENT

MiB, GiB = 2**20, 2**30
# Above the 64 MiB a checkpoint may have (aelib/checkpoints.py), so an oversized checkpoint still reaches
# the loader and costs only its cells, with its own message; equal to the largest file a grading kernel
# may write (grader/sandbox.py), so a submission can hold nothing the grading itself could not produce.
MAX_FILE_BYTES = 256 * MiB
MAX_SUBMISSION_BYTES = 1 * GiB  # every notebook and checkpoint of the assignment together is below 50 MiB
MAX_ENTRIES = 10_000            # files and folders of one submission; the assignment has about 20
MAX_DEPTH = 16                  # folders inside the submission folder
MAX_JSON_BYTES = 64 * MiB       # an autograded notebook or the grading record (output is capped at 2 MiB a cell)
MAX_PROBLEMS_LISTED = 20        # a submission of 10,000 links is described by its first few
CHUNK = 1 * MiB

STUDENT_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}")
ALLOWED_IDS = ("1 to 64 ASCII letters, digits, '_', '-', '.' or '@', starting with a letter, a digit or '_', "
               "without '..'")
DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class UnreadableFile(Exception):
    """A file that was not read, with the reason in plain words."""


# --- names ---------------------------------------------------------------------------------------

def shown(name: str, limit: int = 120) -> str:
    """A student-made name safe to print: control characters and undecodable bytes escaped, long names cut."""
    text = name if name.isprintable() else name.encode("unicode_escape", "backslashreplace").decode("ascii")
    return text if len(text) <= limit else text[:limit - 1] + "…"


def is_valid_student_id(student: str) -> bool:
    """Whether `student` is an id that may name folders and reach nbgrader's command line."""
    return isinstance(student, str) and STUDENT_ID.fullmatch(student) is not None and ".." not in student


def validate_student_id(student: str) -> str:
    """`student` unchanged when it is a valid id; else ValueError saying what is allowed and what to do."""
    if not is_valid_student_id(student):
        raise ValueError(f"'{shown(str(student), 80)}' is not a valid student id: an id has {ALLOWED_IDS}. "
                         f"Rename the student's folder in submitted/ to a valid id (and use that id in the "
                         f"gradebook), then grade again.")
    return student


# --- walking without following links -------------------------------------------------------------

@dataclass
class Entry:
    """One thing inside a walked folder: its relative path, its lstat, and where to open it from."""
    relative: str
    info: os.stat_result
    dir_fd: int
    name: str
    depth: int


def lstat(name: str | Path, dir_fd: int | None = None) -> os.stat_result:
    """The status of the entry `name` itself (relative to `dir_fd`): a link is not followed."""
    return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)


@contextmanager
def open_directory(name: str | Path, dir_fd: int | None = None) -> Iterator[int]:
    """A descriptor of the directory `name` (relative to `dir_fd`), refusing a link; closed on exit."""
    fd = os.open(name, DIRECTORY_FLAGS, dir_fd=dir_fd)
    try:
        yield fd
    finally:
        os.close(fd)


def entry_names(fd: int, ordered: bool) -> Iterator[str]:
    """Names in the directory `fd`: sorted when `ordered`, else in listing order (a huge folder is not read whole)."""
    with os.scandir(fd) as listing:
        if ordered:
            yield from sorted(entry.name for entry in listing)
        else:
            for entry in listing:
                yield entry.name


def walk(fd: int, prefix: str = "", depth: int = 1, max_depth: int = MAX_DEPTH, ordered: bool = False,
         skip: frozenset[str] = frozenset()) -> Iterator[Entry]:
    """Every entry under the directory `fd`, depth first, links and special files not followed or opened.

    A folder at `depth` (1: directly in the walked folder) is entered up to `max_depth`; one deeper is
    yielded but not entered. Folders named in `skip` are neither. `ordered`: by sorted name.
    """
    for name in entry_names(fd, ordered):
        if name in skip:
            continue
        try:
            info = lstat(name, fd)
        except FileNotFoundError:  # removed while walking
            continue
        relative = f"{prefix}{name}"
        yield Entry(relative, info, fd, name, depth)
        if stat.S_ISDIR(info.st_mode) and depth <= max_depth:
            with open_directory(name, fd) as child:
                yield from walk(child, f"{relative}/", depth + 1, max_depth, ordered, skip)


def kind_problem(mode: int) -> str | None:
    """Why an entry of this mode may not be in a submission (None for a regular file or a folder)."""
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    if stat.S_ISLNK(mode):
        return "is a symbolic link (links are not followed)"
    if stat.S_ISFIFO(mode):
        return "is a named pipe (FIFO), not a file"
    if stat.S_ISSOCK(mode):
        return "is a socket, not a file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a device, not a file"
    return "is not a regular file or folder"


def folder_problem(folder: Path, label: str | None = None) -> str | None:
    """Why `folder` (called `label`) cannot be walked as a submission (None when it is a real directory)."""
    label = label or shown(str(folder))
    try:
        info = lstat(folder)
    except FileNotFoundError:
        return f"{label} does not exist"
    except OSError as error:
        return f"{label} cannot be examined ({error.strerror or error})"
    if stat.S_ISLNK(info.st_mode):
        return f"{label} is a symbolic link, not a folder (links are not followed)"
    if not stat.S_ISDIR(info.st_mode):
        return f"{label} is not a folder"
    return None


# --- checking a submission -----------------------------------------------------------------------

def entry_problems(entry: Entry, max_file_bytes: int, max_depth: int) -> list[str]:
    """What is wrong with one entry of a submission, in plain words."""
    name, info = shown(entry.relative), entry.info
    kind = kind_problem(info.st_mode)
    if kind:
        return [f"{name} {kind}"]
    if stat.S_ISDIR(info.st_mode):
        too_deep = entry.depth > max_depth
        return [f"{name} is nested more than {max_depth} folders deep (not examined further)"] if too_deep else []
    problems = []
    if info.st_size > max_file_bytes:
        problems.append(f"{name} is {info.st_size / MiB:.1f} MiB, more than the {max_file_bytes / MiB:g} MiB "
                        f"allowed per file")
    if info.st_nlink > 1:  # a hard link can be another student's or the course's file under a new name
        problems.append(f"{name} is a hard link ({info.st_nlink} names for one file), not a file of its own")
    return problems


def check_walk(fd: int, max_file_bytes: int, max_total_bytes: int, max_entries: int, max_depth: int) -> list[str]:
    """Problems of the tree under the directory `fd`, by entry name, walking no further than the limits need."""
    problems: list[str] = []
    totals: list[str] = []
    size = count = 0
    with closing(walk(fd, max_depth=max_depth)) as entries:  # closing: a walk stopped early closes its folders
        for entry in entries:
            count += 1
            if count > max_entries:
                totals.append(f"the submission has more than {max_entries:,} files and folders (not counted further)")
                break
            problems += entry_problems(entry, max_file_bytes, max_depth)
            if stat.S_ISREG(entry.info.st_mode):
                size += entry.info.st_size  # st_size, not st_blocks: a sparse file is copied at its full size
    if size > max_total_bytes:
        totals.append(f"the files add up to {size / MiB:,.0f} MiB, more than the {max_total_bytes / MiB:,.0f} MiB "
                      f"allowed per submission")
    return summarised(sorted(problems)) + totals  # sorted: the walk is in directory order, the message should not be


def summarised(problems: list[str], limit: int = MAX_PROBLEMS_LISTED) -> list[str]:
    """The first `limit` problems, and how many more there are."""
    if len(problems) <= limit:
        return problems
    return [*problems[:limit], f"and {len(problems) - limit:,} more problem(s)"]


def check_submission(folder: Path, max_file_bytes: int = MAX_FILE_BYTES, max_total_bytes: int = MAX_SUBMISSION_BYTES,
                     max_entries: int = MAX_ENTRIES, max_depth: int = MAX_DEPTH, label: str | None = None) -> list[str]:
    """Why the submission folder may not be graded, in plain words (empty when it may); nothing is opened but folders.

    Entries are named by their path inside `folder`; `folder` itself by `label` (default: its path).
    """
    problem = folder_problem(Path(folder), label)
    if problem:
        return [problem]
    try:
        with open_directory(folder) as fd:
            return check_walk(fd, max_file_bytes, max_total_bytes, max_entries, max_depth)
    except OSError as error:  # e.g. a folder swapped for a link while walking (O_NOFOLLOW refuses it)
        return [f"{label or shown(str(folder))} could not be examined ({error.strerror or error})"]


def submission_folder(root: Path, student: str) -> Path:
    """Where a student's submission of the assignment lies: submitted/<student>/<assignment>."""
    return Path(root) / "submitted" / student / ASSIGNMENT


def submission_problems(root: Path, student: str, **limits) -> list[str]:
    """Why a student may not be graded: an invalid id, a student folder that is a link, or the submission's problems."""
    try:
        validate_student_id(student)
    except ValueError as error:
        return [str(error)]
    problem = folder_problem(Path(root) / "submitted" / student, f"submitted/{student}")
    if problem:
        return [problem]
    return check_submission(submission_folder(root, student), label=f"submitted/{student}/{ASSIGNMENT}", **limits)


def student_folders(submitted: Path) -> list[str]:
    """Names of the folders (and links, to be reported) in `submitted/`, sorted; files there are ignored."""
    with os.scandir(submitted) as listing:
        return sorted(entry.name for entry in listing
                      if entry.is_symlink() or entry.is_dir(follow_symlinks=False))


def handed_in_notebooks(folder: Path) -> set[str]:
    """Stems of the regular `.ipynb` files directly in `folder` (nothing followed or opened)."""
    try:
        with open_directory(folder) as fd, os.scandir(fd) as listing:
            return {entry.name[:-len(".ipynb")] for entry in listing
                    if entry.name.endswith(".ipynb") and entry.is_file(follow_symlinks=False)}
    except OSError:
        return set()


# --- reading files -------------------------------------------------------------------------------

@contextmanager
def open_regular(name: str | Path, dir_fd: int | None = None) -> Iterator[tuple[int, os.stat_result]]:
    """A descriptor and fstat of the regular file `name`, or UnreadableFile; a link or special file is never opened."""
    before = lstat(name, dir_fd)
    if not stat.S_ISREG(before.st_mode):
        raise UnreadableFile(f"it {kind_problem(before.st_mode) or 'is a folder'}")
    fd = os.open(name, FILE_FLAGS, dir_fd=dir_fd)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or (info.st_dev, info.st_ino) != (before.st_dev, before.st_ino):
            raise UnreadableFile("it was replaced while being opened")
        yield fd, info
    finally:
        os.close(fd)


def digest_at(name: str | Path, dir_fd: int | None = None) -> bytes:
    """SHA-256 of the regular file `name` (relative to `dir_fd`), read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open_regular(name, dir_fd) as (fd, _):
        while chunk := os.read(fd, CHUNK):
            digest.update(chunk)
    return digest.digest()


def file_digest(path: Path) -> bytes:
    """SHA-256 of the regular file at `path`, which is opened without following a link and without blocking."""
    return digest_at(path)


def read_capped(fd: int, max_bytes: int) -> bytes:
    """At most `max_bytes` from `fd`; UnreadableFile when there is more (a file that grew after its fstat)."""
    chunks, size = [], 0
    while chunk := os.read(fd, min(CHUNK, max_bytes + 1 - size)):
        chunks.append(chunk)
        size += len(chunk)
        if size > max_bytes:
            raise UnreadableFile(f"it is larger than the {max_bytes / MiB:g} MiB read")
    return b"".join(chunks)


def read_json_file(path: Path, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """The JSON in the regular file at `path` (not a link, at most `max_bytes`), or UnreadableFile with the reason."""
    try:
        with open_regular(path) as (fd, info):
            if info.st_size > max_bytes:
                raise UnreadableFile(f"it is {info.st_size / MiB:.1f} MiB, more than the {max_bytes / MiB:g} MiB read")
            data = read_capped(fd, max_bytes)
        return json.loads(data.decode("utf-8"))
    except FileNotFoundError:
        raise UnreadableFile("it does not exist") from None
    except OSError as error:  # EACCES, EIO, ELOOP for a file swapped for a link ...
        raise UnreadableFile(f"it cannot be read ({error.strerror or error})") from None
    except RecursionError:
        raise UnreadableFile("its JSON is nested too deeply to read") from None
    except UnicodeDecodeError:
        raise UnreadableFile("it is not UTF-8 text") from None
    except ValueError as error:
        raise UnreadableFile(f"it is not valid JSON ({shown(str(error), 200)})") from None


# --- what was graded -----------------------------------------------------------------------------

def tree_digest_parts(folder: Path) -> Iterator[bytes]:
    """What identifies the files under `folder` (no caches): each path and content, a link by its target text."""
    with open_directory(folder) as fd:
        for entry in walk(fd, ordered=True, skip=frozenset({"__pycache__"})):
            mode = entry.info.st_mode
            if stat.S_ISDIR(mode):
                continue
            yield os.fsencode(entry.relative) + b"\0"
            if stat.S_ISREG(mode):
                yield digest_at(entry.name, entry.dir_fd)
            elif stat.S_ISLNK(mode):
                yield b"link\0" + os.fsencode(os.readlink(entry.name, dir_fd=entry.dir_fd))
            else:  # a FIFO, socket or device is recorded by its kind, never opened
                yield b"special\0" + str(stat.S_IFMT(mode)).encode()


def submission_bytes(root: Path, student: str) -> int:
    """The size of a student's submitted regular files (lstat only): how long its grading may take, roughly."""
    folder = submission_folder(root, validate_student_id(student))
    if folder_problem(folder) is not None:
        return 0
    with open_directory(folder) as fd:
        return sum(entry.info.st_size for entry in walk(fd) if stat.S_ISREG(entry.info.st_mode))


def submission_digest(root: Path, student: str) -> str:
    """A digest of a student's submitted files and of the assignment they are graded against.

    Links are never followed and special files never opened, but every regular file is read whole:
    check the submission first (`submission_problems`).
    """
    digest = hashlib.sha256()
    for folder in (submission_folder(root, validate_student_id(student)), Path(root) / "source" / ASSIGNMENT):
        if folder_problem(folder) is None:
            for part in tree_digest_parts(folder):
                digest.update(part)
    return digest.hexdigest()
