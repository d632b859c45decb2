"""Checkpoints: plain tensors and numbers, written atomically, read without unpickling.

`torch.load(weights_only=True)` refuses arbitrary objects, so a tampered checkpoint
cannot run code. Files are written beside their target and renamed into place, so an
interruption, even `kill -9`, never leaves a half-written checkpoint behind; the
temporary file it may leave is removed by the next run in that folder. One process at a
time writes a run folder (`folder_lock`).
"""

from __future__ import annotations

import fcntl
import os
import pickle
import re
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from ganscope.errors import CheckpointError, GanscopeError

LOCK = ".lock"
#: `atomic_write`'s temporaries: `.<target name>.` plus mkstemp's 8 random characters.
_TEMPORARY = re.compile(r"\..+\.[a-z0-9_]{8}")


class RunInUse(GanscopeError):
    """Another process is training in (or writing) the same run folder."""


def _default_file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


FILE_MODE = _default_file_mode()


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp)` on a temporary file in `path`'s folder, then rename it to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.chmod(tmp, FILE_MODE)  # mkstemp creates 0600: run folders must stay readable
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def remove_stale_temporaries(folder: Path) -> None:
    """Delete the temporaries a killed `atomic_write` left in `folder`; call it only while
    holding the folder's lock, when no other writer can be mid-write."""
    if folder.is_dir():
        for path in folder.iterdir():
            if _TEMPORARY.fullmatch(path.name) and path.is_file():
                path.unlink(missing_ok=True)


@contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive `flock` on `folder/.lock`, or fail at once with one line.

    The kernel releases a flock when its process ends, however it ends, so a run killed
    with `kill -9` never blocks its own resume; the file stays, holding the last owner's
    process id for the message."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK, "a+") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip()
            raise RunInUse(
                f"{folder} is in use by another ganscope process{f' (pid {owner})' if owner else ''}; "
                f"wait for it to finish, or train into another folder"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield  # closing the file releases the lock


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; was the run started with `ganscope train`?")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"checkpoint {path} is corrupt or not a ganscope checkpoint ({first})") from None
    if not isinstance(state, dict) or state.get("format") != 1:
        raise CheckpointError(f"checkpoint {path} is not a ganscope checkpoint (format 1)")
    return state


def save_weights(path: Path, module: torch.nn.Module) -> None:
    """A module's weights as safetensors, for use outside ganscope."""
    tensors = {k: v.detach().contiguous() for k, v in module.state_dict().items()}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp)))
