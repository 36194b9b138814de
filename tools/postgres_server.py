"""A throw-away PostgreSQL server on 127.0.0.1, from the Debian packages' binaries.

The tests start one per session unless ``ATTRIBUTION_TEST_POSTGRES_URL`` names a server (CI
starts one with this module: ``python3 -m tools.postgres_server start|stop DIR``); the bench
starts one for its PostgreSQL runs. Standard library only: CI runs it before any virtualenv.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import socket
import subprocess
from pathlib import Path

INSTALL_HINT = "install the PostgreSQL server (apt-get install postgresql)"


def binary(name: str) -> str:
    for candidate in [shutil.which(name), *sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)]:
        if candidate:
            return candidate
    raise FileNotFoundError(f"no PostgreSQL program {name!r}: {INSTALL_HINT}")


def _as_server_user(args: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root; the packages' postgres user runs them then."""
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(folder: Path, server_settings: dict[str, str] | None = None) -> str:
    """initdb a new cluster in ``folder`` and start it; returns its URL (trust auth, 127.0.0.1 only).

    ``server_settings`` are extra ``-c name=value`` options (the bench sizes memory with them)."""
    data = folder.resolve() / "data"  # pg_ctl runs the server from its data folder
    data.mkdir(parents=True)
    folder.chmod(0o755)
    if os.geteuid() == 0:
        shutil.chown(data, "postgres")
    quiet = {"check": True, "stdout": subprocess.DEVNULL}
    subprocess.run(_as_server_user([binary("initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-N"]), **quiet)
    port = _free_port()
    options = f"-h 127.0.0.1 -p {port} -k {data} -F" + "".join(
        f" -c {name}={value}" for name, value in (server_settings or {}).items()
    )
    pg_ctl = [binary("pg_ctl"), "-D", str(data), "-l", str(data / "server.log"), "-o", options, "-w", "start"]
    subprocess.run(_as_server_user(pg_ctl), **quiet)
    return f"postgresql://postgres@127.0.0.1:{port}/postgres"


def stop(folder: Path) -> None:
    data = folder / "data"
    if (data / "postmaster.pid").exists():
        command = [binary("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]
        subprocess.run(_as_server_user(command), check=False, stdout=subprocess.DEVNULL)
    shutil.rmtree(folder, ignore_errors=True)


ACTIONS = {
    "start": "initdb a new cluster in DIR, start it on a free 127.0.0.1 port and print its URL",
    "stop": "stop the server started in DIR and remove DIR",
}


def main(argv: list[str] | None = None) -> None:
    """The URL goes to stdout alone, so a script can take it: URL=$(python3 -m tools.postgres_server start DIR)."""
    parser = argparse.ArgumentParser(prog="python3 -m tools.postgres_server", description=__doc__.split("\n\n")[0])
    actions = parser.add_subparsers(dest="action", required=True, metavar="{start,stop}")
    for action, summary in ACTIONS.items():
        actions.add_parser(action, help=summary, description=summary).add_argument("folder", metavar="DIR", type=Path)
    args = parser.parse_args(argv)
    if args.action == "start":
        print(start(args.folder))
    else:
        stop(args.folder)


if __name__ == "__main__":
    main()
