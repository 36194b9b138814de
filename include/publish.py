"""The latest outputs, replaced in the output folder as one set or not at all.

Whoever opens the latest CSVs, report and summary must find one run's files, whatever happened
to the run that wrote them. Every new file is first written and fsynced beside the old ones under
a temporary name, then a journal listing the renames is written (atomically), then the renames
are done and the journal is removed. A crash before the journal leaves the previous set and some
temporaries; a crash after it leaves a journal whose temporaries all exist until renamed. The next
export, under the output folder's lock, finishes the journal's renames or removes the
temporaries: the set is always one run's, and no temporary outlives the next export.

A failed write names the file and the setting that chose its folder (a bare ``OSError`` from
``write`` or ``fsync`` names no path).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

from include.errors import FinalError
from include.runfiles import (
    StoragePath,
    atomic_write_bytes,
    exclusive_lock,
    fsync_folder,
    temporaries,
    temporary_file,
)
from include.settings import DATA_DIR_ENV, OUTPUT_DIR_ENV, WORK_DIR_ENV

log = logging.getLogger(__name__)

JOURNAL_FILE = ".latest.journal"


class OutputWriteError(FinalError):
    """A file of the export could not be written: no space, no permission, a read-only disk.
    Another try would meet the same disk until someone frees or fixes it."""


@dataclass(frozen=True)
class Place:
    """A folder the export writes in, and the setting that chose it, for the error naming both."""

    folder: StoragePath
    setting: str

    @contextmanager
    def writing(self, path: StoragePath) -> Iterator[None]:
        """Writes to ``path`` in the block; an OSError becomes an OutputWriteError naming it."""
        try:
            yield
        except OSError as exc:
            raise OutputWriteError(
                f"cannot write {path}: {type(exc).__name__}: {exc.strerror or exc}; {self.setting}"
            ) from exc

    def write(self, name: str, data: bytes) -> StoragePath:
        """One file of this folder, atomically on its own."""
        path = self.folder / name
        with self.writing(path):
            atomic_write_bytes(path, data)
        return path


def output_folder(folder: Path) -> Place:
    return Place(folder, f"the output folder is env {OUTPUT_DIR_ENV}, or ${DATA_DIR_ENV}/output when unset")


def run_folder(folder: StoragePath) -> Place:
    return Place(folder, f"the run folder is under env {WORK_DIR_ENV}, or ${DATA_DIR_ENV}/runs when unset")


@dataclass(frozen=True)
class Rename:
    """One entry of the journal: a temporary of the output folder and the file it becomes."""

    temporary: str
    target: str


@contextmanager
def locked(folder: Path, names: Iterable[str]) -> Iterator[None]:
    """Hold the output folder for one export, after making whole the set of ``names`` a killed export left."""
    with output_folder(folder).writing(folder):
        folder.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(folder):
        recover(folder, names)
        yield


def recover(folder: Path, names: Iterable[str]) -> None:
    """Finish the renames of a killed export's journal; remove the temporaries it left without one."""
    place, journal = output_folder(folder), folder / JOURNAL_FILE
    if journal.exists():
        renames = [Rename(**entry) for entry in orjson.loads(journal.read_bytes())]
        pending = [r for r in renames if (folder / r.temporary).exists()]
        log.warning(
            "an export was stopped while replacing the latest files in %s: %d renames finished now",
            folder,
            len(pending),
        )
        _rename(folder, pending)
    left = [path for name in (*names, JOURNAL_FILE) for path in temporaries(folder, name)]
    for path in left:
        with place.writing(path):
            path.unlink()
    if left:
        log.warning("removed %d temporary files a stopped export left: %s", len(left), ", ".join(map(str, left)))


def replace_set(folder: Path, files: Mapping[str, bytes]) -> None:
    """Replace ``files`` (name: content) in ``folder`` together; under the lock of :func:`locked`."""
    staged: list[Rename] = []
    try:
        for name, data in files.items():
            staged.append(_stage(folder, name, data))
        with output_folder(folder).writing(folder / JOURNAL_FILE):
            atomic_write_bytes(folder / JOURNAL_FILE, orjson.dumps([asdict(r) for r in staged]))
            fsync_folder(folder)
    except BaseException:
        _discard(folder / r.temporary for r in staged)
        raise
    _rename(folder, staged)


def _stage(folder: Path, name: str, data: bytes) -> Rename:
    """``data`` in a new temporary beside ``name``, on the disk before the journal names it."""
    with output_folder(folder).writing(folder / name):
        fd, tmp = temporary_file(folder, name, 0o666)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        except BaseException:
            _discard([Path(tmp)])
            raise
    return Rename(Path(tmp).name, name)


def _discard(paths: Iterable[Path]) -> None:
    """Remove a failed export's temporaries; what cannot be removed, the next export's recovery does."""
    for path in paths:
        with suppress(OSError):
            path.unlink(missing_ok=True)


def _rename(folder: Path, renames: Iterable[Rename]) -> None:
    """The journal's renames, then the journal gone: a crash in between leaves it for the next export."""
    place = output_folder(folder)
    for rename in renames:
        with place.writing(folder / rename.target):
            os.replace(folder / rename.temporary, folder / rename.target)
    with place.writing(folder / JOURNAL_FILE):
        fsync_folder(folder)
        (folder / JOURNAL_FILE).unlink(missing_ok=True)
        fsync_folder(folder)
