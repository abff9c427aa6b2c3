"""One run per state file: an exclusive lock on `<state>.lock`, beside the state file.

`fcntl.flock` on a file of its own (SQLite owns the locks of the database): the kernel releases it
when the process ends, however it ends, so a lock file left by a dead process never blocks. The
holder writes its pid and start time into it, for the message of whoever is refused. The file stays
after the run: removing it would let a third process lock a new file while a second one holds the
old. A flock belongs to one open file, so a second `hold_state_lock` in the same process is refused
like any other: take it once per process (the command line does, around the whole run). Platforms
without `fcntl` (Windows) run unlocked.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from replicator.state.errors import StateLockedError, StateUnusableError

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows
    fcntl = None  # type: ignore[assignment]

_HOLDER_BYTES = 512  # more than a holder note ever takes


def lock_path_for(state_path: str | os.PathLike[str]) -> Path:
    """The lock file of a state file: `<state>.lock` beside the file the path really names (links
    resolved, so that a second run reaching the same file through a symbolic link is refused too)."""
    return Path(f"{os.path.realpath(os.fspath(state_path))}.lock")


def holder_note(pid: int, started_at: float) -> bytes:
    """What the holder writes into the lock file."""
    return json.dumps({"pid": pid, "started_at": started_at}).encode() + b"\n"


def locked_message(state_path: str, note: bytes) -> str:
    """The refusal, naming the state file and, when its note can be read, the holder's pid and start."""
    try:
        holder = json.loads(note)
        pid, started_at = int(holder["pid"]), float(holder["started_at"])
    except (ValueError, TypeError, KeyError):
        who = "another process"
    else:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started_at))
        who = f"another run (pid {pid}, started {started})"
    return f"state file {state_path} is in use by {who}; one run per state file"


@contextmanager
def hold_state_lock(state_path: str | os.PathLike[str]) -> Iterator[None]:
    """Hold the state file's lock for the block, or raise StateLockedError at once if another process
    holds it (StateUnusableError if its file cannot be made). A `:memory:` state needs no lock."""
    shown = os.fspath(state_path)
    if shown == ":memory:" or fcntl is None:
        yield
        return
    if os.path.isdir(shown):
        raise StateUnusableError(f"state file {shown} is a directory")
    fd = _open_lock_file(shown, lock_path_for(shown))
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StateLockedError(locked_message(shown, os.pread(fd, _HOLDER_BYTES, 0))) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder_note(os.getpid(), time.time()), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def make_state_folder(shown: str) -> None:
    """Create the state file's folder if needed, or raise StateUnusableError naming it."""
    folder = Path(shown).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = "a file has that name" if isinstance(exc, FileExistsError) else exc.strerror or str(exc)
        raise StateUnusableError(f"state file {shown}: cannot create its folder {folder} ({reason})") from exc


def _open_lock_file(shown: str, lock_path: Path) -> int:
    make_state_folder(shown)
    try:
        return os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise StateUnusableError(
            f"state file {shown}: cannot create its lock file {lock_path} ({exc.strerror or exc})"
        ) from exc
