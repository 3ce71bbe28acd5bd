"""A throwaway PostgreSQL server for the tests: Debian's ``postgresql`` binaries (initdb,
pg_ctl under /usr/lib/postgresql/<version>/bin), a fresh cluster in a temporary folder,
trust authentication, listening on 127.0.0.1 on a free port; stopped and deleted after.

PostgreSQL refuses to run as root: as root the cluster belongs to the ``postgres`` user
(created by the Debian package) and every command runs through ``runuser -u postgres``.
``scripts/setup.sh`` installs the package when it runs as root (as CI does).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

USER, DATABASE = "sweeps", "sweeps"


def server_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
    if not found:
        raise RuntimeError(
            "PostgreSQL's initdb is not installed (looked in /usr/lib/postgresql/*/bin); run scripts/setup.sh as root"
            " or `apt-get install postgresql`"
        )
    return found[-1].parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_owner(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    # cwd: a folder the postgres user may enter (initdb fails in one it cannot, e.g. under /root)
    result = subprocess.run(_as_owner(command), capture_output=True, text=True, timeout=120, cwd=cwd)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}): {result.stdout} {result.stderr}")
    return result


@contextlib.contextmanager
def throwaway_server() -> Iterator[str]:
    """Start a server; yield its URL (``postgresql://sweeps@127.0.0.1:<port>/sweeps``)."""
    binaries = server_bin()
    folder = Path(tempfile.mkdtemp(prefix="mtl_jax_pg_"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    data, port = folder / "data", free_port()
    started = False
    try:
        _run([str(binaries / "initdb"), "-D", str(data), "-U", USER, "--auth=trust", "-E", "UTF8", "--no-sync"], folder)
        options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        _run([str(binaries / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(folder / "server.log"), "-w", "-t", "60", "start"], folder)
        started = True
        _run([str(binaries / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", USER, DATABASE], folder)
        yield f"postgresql://{USER}@127.0.0.1:{port}/{DATABASE}"
    finally:
        if started:
            subprocess.run(_as_owner([str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
                           capture_output=True, timeout=60, cwd=folder)
        shutil.rmtree(folder, ignore_errors=True)
