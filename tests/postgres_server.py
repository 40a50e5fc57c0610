"""A throwaway PostgreSQL server (tests and bench/datagen.py): initdb in a temporary directory, a loopback port and
a socket directory of its own, stopped and deleted afterwards. Uses the machine's PostgreSQL binaries
(/usr/lib/postgresql/<version>/bin on Debian, or `pg_ctl` on PATH); scripts/test.sh installs them when missing.
As root the server runs as the `postgres` user (initdb refuses to run as root)."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

SUPERUSER = "engrain"


@dataclass
class PostgresServer:
    root: Path
    port: int
    bindir: Path
    as_user: list[str]
    databases: list[str] = field(default_factory=list)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new empty database; returns its URL."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.databases.append(name)
        return self.url(name)

    def stop(self) -> None:
        subprocess.run([*self.as_user, str(self.bindir / "pg_ctl"), "-D", str(self.root / "data"), "-m", "immediate",
                        "-w", "stop"], capture_output=True, check=False)
        shutil.rmtree(self.root, ignore_errors=True)


def bindir() -> Path:
    """The newest PostgreSQL server binaries on this machine."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name)
                   if p.parent.parent.name.isdigit() else 0)
    if found:
        return found[-1].parent
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl:
        return Path(pg_ctl).parent
    raise RuntimeError("no PostgreSQL server binaries (initdb, pg_ctl) on this machine; scripts/test.sh installs "
                       "Debian's postgresql package (or: apt-get install postgresql)")


def start() -> PostgresServer:
    """initdb + pg_ctl start on a free loopback port; raises with the server log when it does not come up."""
    binaries = bindir()
    root = Path(tempfile.mkdtemp(prefix="engrain-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(root, "postgres", "postgres")
    init = _run(as_user, binaries / "initdb", "-D", root / "data", "-A", "trust", "-U", SUPERUSER, "--encoding", "UTF8",
               "--locale", "C", "--no-sync")
    if init.returncode:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"initdb failed: {init.stderr.strip()[-1500:]}")
    (root / "sock").mkdir()
    if as_user:
        shutil.chown(root / "sock", "postgres", "postgres")
    for _ in range(3):  # a free port can be taken between probing and binding
        port = _free_port()
        options = f"-p {port} -k {root / 'sock'} -c listen_addresses=127.0.0.1 -c max_connections=200"
        started = _run(as_user, binaries / "pg_ctl", "-D", root / "data", "-l", root / "server.log", "-o", options, "-w",
                      "-t", "60", "start")
        if started.returncode == 0:
            return PostgresServer(root=root, port=port, bindir=binaries, as_user=as_user)
    log = (root / "server.log").read_text(errors="replace")[-2000:] if (root / "server.log").exists() else ""
    shutil.rmtree(root, ignore_errors=True)
    raise RuntimeError(f"PostgreSQL did not start: {started.stderr.strip()} {log}")


def _run(as_user: list[str], *args) -> subprocess.CompletedProcess:
    return subprocess.run([*as_user, *map(str, args)], capture_output=True, text=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
