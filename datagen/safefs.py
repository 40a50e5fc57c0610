"""The one way datagen writes files: no symbolic link is followed at any path component, and an existing file
is replaced only when the caller passed `force`.

Folders are opened one component at a time with O_NOFOLLOW relative to the previous one (openat), so a link
planted in a shared folder (exports/trap/train.jsonl -> /elsewhere) cannot redirect a write, even if it
appears between a check and the write. A file is written to a temporary name and then linked (no clobber) or
renamed (force) into place: readers never see half a file, and the rename replaces the directory entry
rather than writing through a hard link.
"""
from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from datagen.errors import DatagenError, PathOutsideWorkspace

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


class UnsafePath(DatagenError):
    pass


def split_under(root: Path, path: Path) -> tuple[str, ...]:
    """`path`'s components below `root`, judged on the text alone (a link is never resolved to decide)."""
    absolute = Path(os.path.normpath(Path(root) / Path(path).expanduser()))
    try:
        parts = absolute.relative_to(root).parts
    except ValueError:
        raise PathOutsideWorkspace(f"{absolute} is outside the workspace {root}; choose a path inside it "
                                   "or pass --force") from None
    return parts


@contextmanager
def folder(root: Path, parts: Iterable[str]) -> Iterator[int]:
    """A descriptor of root/parts, creating missing folders; UnsafePath when a component is a link."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    where = Path(root)
    try:
        for part in parts:
            where = where / part
            try:
                os.mkdir(part, 0o777, dir_fd=fd)
            except FileExistsError:
                pass
            try:
                inner = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                raise _refusal(exc, where) from None
            os.close(fd)
            fd = inner
        yield fd
    finally:
        os.close(fd)


def refuse_existing(root: Path, paths: Iterable[Path], *, force: bool) -> None:
    """Before writing several files: refuse if any is a link, or already exists while `force` is off, so a
    refused export leaves nothing half-written."""
    for path in paths:
        parts = split_under(root, path)
        where = Path(root)
        for index, part in enumerate(parts):
            where = where / part
            try:
                mode = os.lstat(where).st_mode
            except FileNotFoundError:
                break
            if stat.S_ISLNK(mode):
                raise _link(where)
            if index == len(parts) - 1 and not force:
                raise DatagenError(f"{where} already exists; pass force (--force) to overwrite it")


@contextmanager
def open_for_write(root: Path, path: Path, *, force: bool) -> Iterator[TextIO]:
    """A text handle whose content becomes root/path when the block ends without an exception."""
    parts = split_under(root, path)
    if not parts:
        raise UnsafePath(f"{path} is the workspace itself; name a file inside it")
    name = parts[-1]
    with folder(root, parts[:-1]) as dir_fd:
        target = Path(root).joinpath(*parts)
        _check_target(dir_fd, name, target, force)
        temporary = f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        fd = os.open(temporary, _NEW_FILE_FLAGS, 0o644, dir_fd=dir_fd)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                yield handle
            if force:
                os.replace(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            else:
                try:
                    os.link(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
                except FileExistsError:
                    raise DatagenError(f"{target} already exists; pass force (--force) to overwrite it") from None
        finally:
            try:
                os.unlink(temporary, dir_fd=dir_fd)
            except FileNotFoundError:
                pass


def _check_target(dir_fd: int, name: str, target: Path, force: bool) -> None:
    try:
        mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISLNK(mode):
        raise _link(target)
    if stat.S_ISDIR(mode):
        raise UnsafePath(f"{target} is a folder; choose another output path")
    if not force:
        raise DatagenError(f"{target} already exists; pass force (--force) to overwrite it")


def _refusal(exc: OSError, where: Path) -> Exception:
    if exc.errno == errno.ELOOP:
        return _link(where)
    if exc.errno == errno.ENOTDIR:
        return UnsafePath(f"{where} is a file, not a folder; choose another output path")
    return exc


def _link(where: Path) -> UnsafePath:
    return UnsafePath(f"{where} is a symbolic link; engrain does not write through links. Remove it or choose "
                      "another output path")


def prepare_folder(root: Path, out: Path, *, force: bool) -> None:
    """For a library that writes a whole folder itself (datasets' save_to_disk): create `out` without following
    links, and refuse a folder that already has content (without `force`) or holds a link anywhere inside."""
    with folder(root, split_under(root, out)):
        pass
    entries = list(Path(out).rglob("*"))
    if entries and not force:
        raise DatagenError(f"{out} is not empty; pass force (--force) to overwrite it")
    linked = next((p for p in entries if p.is_symlink()), None)
    if linked is not None:
        raise _link(linked)
