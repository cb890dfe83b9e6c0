"""The one write engine of :func:`dask_tables.to_tables`: a write's work folder, its run and its commit.

Every write, of arrays and of frames alike, is one :class:`Job`:

1. **Plan** (in the caller): the writer (``write/arrays.py`` for arrays,
   ``write/frames.py`` and ``write/frameplan.py`` for frames; the front end
   ``write/totables.py`` picks one) checks its
   inputs and makes a :class:`Job` with ``new_job``, which also removes
   what writers that died left next to the target (:func:`remove_abandoned`).
2. **Prepare** (a task, ``prepare``): the hidden work folder next to the
   target, ``.<name>.dask-tables-<token>``, made whole by a rename with its
   ``owner`` file inside, locked by the process that made it.
3. **Stage** (the front end's tasks): chunks encoded outside every lock, in
   files of the work folder.
4. **Commit** (a task, :func:`commit`): the only step that changes the
   target, and it never changes the target in place.
5. **Clean-up**: the work folder removed, whatever happened.

The commit is a short, ordered sequence (SQLite's atomic commit is the
model); :func:`crash_point` marks each step, so that the tests kill the
process at every one of them (``DASK_TABLES_CRASH_AT=commit:<step>``):

1. ``locked``: the writers' locks (:func:`~dask_tables.write.locks.write_lock`)
   and a shared ``flock`` of the target, which HDF5's own file locking
   respects, so no HDF5 writer changes the target until the end.
2. ``copied``: the new version of the file, ``commit.h5`` in the work
   folder: a copy of the target (a reflink clone where the file system
   makes them, else an in-kernel copy), the file the stage tasks built, or
   a new file.
3. ``applied``: the front end's nodes written into ``commit.h5``.
4. ``synced``: ``commit.h5`` flushed to disk (``fsync``).
5. ``checked``: the target is still the file that was copied (device,
   inode, size, modification time): no program changed it meanwhile.
6. ``replaced``: ``os.replace(commit.h5, target)``, atomic.
7. ``durable``: the folder's entry flushed (``fsync`` of the folder).

A process killed before step 6 leaves the target as it was (and a work
folder, removed by the next write once the process is provably gone); at
or after it, the new file whole.  A power loss behaves the same: the new
file's data is on disk before the rename, and the rename is on disk before
the commit returns.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import dask
import tables

from ..errors import FileChangedError, WriteInterruptedError
from ..hdf5.files import is_hdf5_file
from ..registry import synchronized_close_file, synchronized_open_file
from .locks import write_lock

__all__ = [
    "CRASH_ENV",
    "Job",
    "commit",
    "crash_point",
    "new_job",
    "os_error",
    "prepare",
    "remove_abandoned",
    "remove_work",
    "require_space",
    "run",
    "run_all",
]

CRASH_ENV = "DASK_TABLES_CRASH_AT"
_WORK_MARK = ".dask-tables-"
_OWNER = "owner"
_COMMIT_FILE = "commit.h5"
_COMMITTED = "committed"  # in the work folder: (device, inode) of the version that replaces the target
_FICLONE = 0x40049409  # linux/fs.h: _IOW(0x94, 9, int)


@dataclass(frozen=True)
class Job:
    """One write: its target and its work folder.  Picklable, nothing open.

    Examples
    --------
    >>> job = Job("/data/out.h5", True, "/data/.out.h5.dask-tables-ab12", "ab12")
    >>> job.commit_file
    '/data/.out.h5.dask-tables-ab12/commit.h5'
    """

    path: str  # absolute, symbolic links resolved: the file that os.replace changes
    new_file: bool  # the target did not exist when the write was planned
    work: str  # the hidden work folder next to the target
    token: str
    # True: the caller made the work folder before computing, and removes it
    # after; a task that finds it gone (a failed write) must not make it again.
    made_by_caller: bool = False
    # True: the target's next version starts empty (pandas' mode="w"): what it held is not kept.
    fresh: bool = False

    @property
    def commit_file(self) -> str:
        """The new version of the target, built by the commit."""
        return os.path.join(self.work, _COMMIT_FILE)

    def copy_bytes(self) -> int:
        """The disk the commit's copy of an existing target takes (0 for a new file)."""
        return 0 if self.new_file or self.fresh else os.path.getsize(self.path)

    def check_work(self) -> None:
        """Raise if the work folder is gone (the write was abandoned: a task must not go on)."""
        if not os.path.isdir(self.work):
            raise FileNotFoundError(
                f"{self.path}: the work folder {self.work} is gone (the write was abandoned)"
            )


def new_job(path: str, made_by_caller: bool, fresh: bool = False) -> Job:
    """The job of a write into ``path``, with a fresh work folder name; abandoned ones are removed first.

    Examples
    --------
    >>> job = new_job("out.h5", made_by_caller=True)
    >>> os.path.basename(job.work).startswith(".out.h5.dask-tables-"), job.new_file
    (True, True)
    """
    path = os.path.realpath(path)
    folder, base = os.path.split(path)
    remove_abandoned(path)
    token = uuid.uuid4().hex[:16]  # every call stages into its own folder
    work = os.path.join(folder, f".{base[:100]}{_WORK_MARK}{token}")  # within NAME_MAX (255)
    return Job(path, fresh or not os.path.lexists(path), work, token, made_by_caller, fresh)


# ---------------------------------------------------------------- the work folder and its owner

# Work folders this process made, each with the descriptor of its ``owner``
# file, on which this process holds an exclusive flock: while it lives, the
# folder is never taken for abandoned.  Guarded by ``_OWNED_LOCK``; an entry
# goes (and its descriptor is closed) when this process removes the folder.
_OWNED: dict[str, int] = {}
_OWNED_LOCK = threading.Lock()


def make_work(job: Job) -> None:
    """Make the work folder whole: built under another name with its locked ``owner`` file, then renamed."""
    building = f"{job.work}.{os.getpid()}-{uuid.uuid4().hex[:8]}"
    os.mkdir(building)
    fd = -1
    try:
        fd = os.open(os.path.join(building, _OWNER), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, json.dumps({"host": socket.gethostname(), "pid": os.getpid()}).encode())
        os.rename(building, job.work)  # fails if it exists: another task made it
    except BaseException:
        if fd >= 0:
            os.close(fd)
        shutil.rmtree(building, ignore_errors=True)
        raise
    with _OWNED_LOCK:
        _OWNED[job.work] = fd


def prepare(job: Job) -> str:
    """Task: the work folder (made now, unless the caller made it); returns its path."""
    if job.made_by_caller:
        job.check_work()
    elif not os.path.isdir(job.work):
        with contextlib.suppress(FileExistsError, OSError):
            make_work(job)
        job.check_work()
    return job.work


def remove_work(work: str, attempts: int = 5) -> None:
    """Remove the work folder, also while tasks that still run after a failure add to it.

    Such tasks find the folder gone and fail; one that had just created a
    file in it makes ``rmtree`` leave the folder, so try again a few times.
    """
    for attempt in range(attempts):
        shutil.rmtree(work, ignore_errors=True)
        if not os.path.lexists(work):
            break
        time.sleep(0.05 * (attempt + 1))
    with _OWNED_LOCK:
        fd = _OWNED.pop(work, None)
    if fd is not None:
        os.close(fd)  # releases the flock


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _is_abandoned(work: str) -> bool:
    """Whether the writer of ``work`` is provably gone: its process on this host dead, its lock free."""
    owner = os.path.join(work, _OWNER)
    try:
        fd = os.open(owner, os.O_RDONLY)
    except OSError:
        return False  # no owner file: not made by this engine; never guess
    try:
        info = json.loads(os.read(fd, 4096) or b"{}")
        if info.get("host") != socket.gethostname() or _pid_alive(int(info.get("pid", -1))):
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True
    except (ValueError, OSError):
        return False
    finally:
        os.close(fd)


def remove_abandoned(path: str) -> list[str]:
    """Remove the work folders of earlier writes of ``path`` whose writers are provably gone.

    Returns the folders removed.  A folder whose process is alive, whose
    ``owner`` lock is held, or that was made on another host is kept.

    Examples
    --------
    >>> remove_abandoned("out.h5")
    []
    """
    folder, base = os.path.split(os.path.realpath(path))
    prefix = f".{base[:100]}{_WORK_MARK}"
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            if (
                entry.name.startswith(prefix)
                and entry.is_dir(follow_symlinks=False)
                and _is_abandoned(entry.path)
            ):
                shutil.rmtree(entry.path, ignore_errors=True)
                removed.append(entry.path)
    return removed


# ---------------------------------------------------------------- the run


def run(result: object, job: Job) -> None:
    """Compute ``result`` (a write's graph) in the work folder made for it, removed afterwards whatever happens."""
    run_all([result], [job])


def run_all(results: list[object], jobs: list[Job]) -> None:
    """Compute the graphs of several writes (one file each) at once, each in its work folder."""
    made: list[Job] = []
    try:
        for job in jobs:
            make_work(job)
            made.append(job)
        dask.compute(*results)
    finally:
        for job in made:
            remove_work(job.work)


# ---------------------------------------------------------------- errors and space


_ERRNO_IN_MESSAGE = re.compile(r"errno\s*=\s*(\d+)")


def os_error(err: BaseException, path: str, what: str) -> OSError | None:
    """The ``OSError`` (with ``errno``, ``path`` and the reason) behind ``err``, else ``None``.

    HDF5 reports a full disk or a read-only file system inside a long
    message (``... errno = 28, error message = 'No space left on device'``).

    Examples
    --------
    >>> err = os_error(RuntimeError("write failed, errno = 28, error message = '...'"), "out.h5", "writing")
    >>> err.errno == errno.ENOSPC, str(err)
    (True, "[Errno 28] out.h5: writing: No space left on device: 'out.h5'")
    """
    if isinstance(err, OSError) and err.errno is not None:
        code = err.errno
    else:
        found = _ERRNO_IN_MESSAGE.search(str(err))
        if found is None:
            return None
        code = int(found.group(1))
    return OSError(code, f"{path}: {what}: {os.strerror(code)}", path)


@contextlib.contextmanager
def os_errors(path: str, what: str) -> Iterator[None]:
    """Within the block, an error from the OS (also one HDF5 reports) is an ``OSError`` naming ``path``."""
    try:
        yield
    except (OSError, tables.HDF5ExtError) as err:
        if isinstance(err, FileChangedError):
            raise
        better = os_error(err, path, what)
        if better is None:
            raise
        raise better from err


def require_space(folder: str, needed: int, path: str) -> None:
    """Raise ``OSError(ENOSPC)`` with the figures if ``folder``'s file system has less than ``needed`` bytes free.

    Examples
    --------
    >>> require_space(".", 1, "out.h5")
    """
    free = shutil.disk_usage(folder).free  # what an unprivileged process may use
    if needed > free:
        raise OSError(
            errno.ENOSPC,
            f"{path}: the write needs up to {needed:,} bytes of free disk next to the file "
            f"(its staged chunks, and a copy of the file), but {folder} has {free:,}; nothing was written",
            path,
        )


# ---------------------------------------------------------------- the commit


def crash_point(phase: str, step: str) -> None:
    """Kill this process here if ``DASK_TABLES_CRASH_AT`` names ``phase:step`` (the crash tests' hook).

    Examples
    --------
    >>> crash_point("commit", "copied")  # the variable is not set: nothing happens
    """
    if os.environ.get(CRASH_ENV) == f"{phase}:{step}":
        os.kill(os.getpid(), signal.SIGKILL)


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _clone(source: str, target: str) -> None:
    """``target``: a copy of ``source``, its mode and owner kept; a reflink clone where the file system has them."""
    st = os.stat(source)
    with open(source, "rb") as src, open(target, "xb") as dst:
        try:
            fcntl.ioctl(dst.fileno(), _FICLONE, src.fileno())
        except OSError:
            _copy_in_kernel(src.fileno(), dst.fileno(), st.st_size)
    os.chmod(target, stat.S_IMODE(st.st_mode))
    with contextlib.suppress(PermissionError):
        os.chown(target, st.st_uid, st.st_gid)


def _copy_in_kernel(src: int, dst: int, size: int) -> None:
    """Copy ``size`` bytes between descriptors without passing them through Python (copy_file_range)."""
    copy = getattr(os, "copy_file_range", None)
    done = 0
    try:
        while copy is not None and done < size:
            sent = copy(src, dst, size - done)
            if sent == 0:
                break
            done += sent
    except OSError as err:  # EXDEV on old kernels, ENOSYS, EINVAL on some file systems: the loop below
        if err.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
            raise
    os.lseek(src, done, os.SEEK_SET)
    os.lseek(dst, done, os.SEEK_SET)
    while chunk := os.read(src, 2**20):
        view = memoryview(chunk)
        while view:
            view = view[os.write(dst, view) :]


@contextlib.contextmanager
def _target_held(path: str) -> Iterator[tuple[int, int, int, int] | None]:
    """A shared flock of the target while it is copied and replaced; yields its identity (``None``: no file)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        yield None
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BlockingIOError(
                errno.EWOULDBLOCK,
                f"{path}: the file is open for writing elsewhere (HDF5 file locking: another process, "
                "or an open HDFStore or tables.File of this one); close it there and write again; "
                "nothing was written",
                path,
            ) from None
        yield _identity(os.fstat(fd))
    finally:
        os.close(fd)


# What the front end writes into the new version of the file, opened for writing.
Apply = Callable[[tables.File], None]


def commit(job: Job, apply: Apply | None, built: str | None = None) -> None:
    """Task body: the one step that changes the target, never in place (steps in the module docstring).

    Parameters
    ----------
    job : Job
        The write.
    apply : callable or None
        Writes the front end's nodes into the new version of the file
        (a copy of the target, or a new file), open for writing.
    built : str, optional
        A new file the stage tasks built whole: it becomes the target as it
        is if the target still does not exist (else ``apply`` adds to a copy).
    """
    try:
        with write_lock(job.path, os.path.dirname(job.path)), _target_held(job.path) as before:
            crash_point("commit", "locked")
            if _committed_before(job, before):
                return  # a commit run again (its process was killed after the rename): done already
            with os_errors(job.path, "committing the write"):
                _build_new_version(job, apply, built, before)
                crash_point("commit", "applied")
                _fsync(job.commit_file)
                crash_point("commit", "synced")
                _check_unchanged(job, before)
                crash_point("commit", "checked")
                _record_new_version(job)
                os.replace(job.commit_file, job.path)
                crash_point("commit", "replaced")
                _fsync(os.path.dirname(job.path))
                crash_point("commit", "durable")
    finally:
        # The commit is the last task: whether it wrote or failed, the staged work is done with.
        remove_work(job.work)


def _record_new_version(job: Job) -> None:
    """Note which file (device, inode) becomes the target, so that a commit run again knows it is done."""
    st = os.stat(job.commit_file)
    with open(os.path.join(job.work, _COMMITTED), "w") as f:
        f.write(f"{st.st_dev} {st.st_ino}")


def _committed_before(job: Job, before: tuple[int, ...] | None) -> bool:
    """Whether an earlier run of this commit already replaced the target (a retry after a killed worker)."""
    try:
        with open(os.path.join(job.work, _COMMITTED)) as f:
            dev, ino = map(int, f.read().split())
    except (OSError, ValueError):
        return False
    return before is not None and before[:2] == (dev, ino)


def _build_new_version(
    job: Job, apply: Apply | None, built: str | None, before: tuple[int, ...] | None
) -> None:
    """``commit.h5``: the target's next version (steps ``copied`` and ``applied``).

    A ``commit.h5`` already there was left by a run of this commit whose
    process was killed: it starts over, and if that run had used staged
    pieces up (a frame's sidecars are removed as they are written), the
    write is lost: :class:`~dask_tables.WriteInterruptedError`, the target
    untouched.
    """
    job.check_work()
    rerun = os.path.lexists(job.commit_file)
    try:
        _build_from_staged(job, apply, built, before)
    except FileNotFoundError:
        if rerun:
            raise WriteInterruptedError(job.path) from None
        raise


def _build_from_staged(
    job: Job, apply: Apply | None, built: str | None, before: tuple[int, ...] | None
) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(job.commit_file)  # left by a run of this commit whose process was killed
    if before is not None and not job.fresh:
        if not is_hdf5_file(job.path):
            raise FileExistsError(
                f"{job.path}: something that is not an HDF5 file appeared there while the write was "
                "computed; nothing was written"
            )
        _clone(job.path, job.commit_file)
    elif built is not None:
        os.rename(built, job.commit_file)
        apply = None
    crash_point("commit", "copied")
    if apply is None:
        return
    h5 = synchronized_open_file(job.commit_file, "a" if before is not None and not job.fresh else "w")
    try:
        apply(h5)
    finally:
        synchronized_close_file(h5)


def _check_unchanged(job: Job, before: tuple[int, ...] | None) -> None:
    """The target is as it was when copied (or still absent): no other program wrote it meanwhile."""
    try:
        now: tuple[int, ...] | None = _identity(os.stat(job.path))
    except FileNotFoundError:
        now = None
    if now != before:
        raise FileChangedError(
            job.path,
            "/",
            "another program changed it while the write was committed; nothing was written",
            advice="write again",
        )
