"""What the machine refused (permissions, a full disk, a read-only database), said in one line with what to do,
instead of a traceback: `engrain`'s entry point wraps every command with it, the MCP server every tool."""
from __future__ import annotations

import errno
import sqlite3

_READ_ONLY = (errno.EACCES, errno.EPERM, errno.EROFS)
_FULL = (errno.ENOSPC, errno.EDQUOT)


def describe_failure(exc: BaseException) -> str | None:
    """The one-line message for an OSError or SQLite error, or None for anything else."""
    if isinstance(exc, sqlite3.Error):
        text = str(exc)
        if "readonly" in text or "unable to open" in text:
            return (f"the dataset database cannot be written ({text}); make .engrain/ and its files writable "
                    "(chmod -R u+w .engrain) or run engrain as their owner")
        if "full" in text:
            return f"the disk is full ({text}); free some space and run the command again"
        return f"database error: {text}; check .engrain/engrain.db (`engrain coverage` reads it)"
    if not isinstance(exc, OSError):
        return None
    where = exc.filename or "a file"
    if exc.errno in _READ_ONLY:
        return (f"cannot write {where}: {exc.strerror}; make it (and .engrain/) writable, e.g. chmod -R u+w .engrain, "
                "or run engrain where you can write")
    if exc.errno in _FULL:
        return f"no space left to write {where}; free some space and run the command again"
    return f"{exc.strerror or exc} ({where}); check that path and run the command again"
