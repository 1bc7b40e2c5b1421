"""Run localstripe (a fake Stripe API server) for development and tests.

Dev/test tooling only: product code never imports this module or localstripe.

    python -m devtools.localstripe_server --port 8420 --data-file var/localstripe.pickle

Unlike ``python -m localstripe``, this launcher

* listens on 127.0.0.1 only (localstripe binds ``::``, i.e. every interface);
* keeps its pickled store in ``--data-file`` instead of ``/tmp/localstripe.pickle``
  (shared by every localstripe on the machine), written atomically;
* accepts ``--port 0`` (an ephemeral port) and prints ``LOCALSTRIPE_PORT=<n>`` on
  stdout once the socket is bound, so a parent process can find it without races;
* with ``--exit-with-parent``, stops when the process that started it dies;
* with ``LOCALSTRIPE_LATENCY_MS=<n>`` in its environment, answers every ``/v1/`` request
  ``n`` ms late (a realistic Stripe round trip, e.g. 150; the benchmark's latency mode);
* with ``--no-persist`` keeps its store in memory only (localstripe pickles the whole store
  after every write, which grows quadratic over a benchmark's thousands of objects).

Tests use :func:`start_localstripe` / :func:`stop` (see ``tests/plugins/localstripe.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import pickle
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
PORT_LINE_PREFIX = "LOCALSTRIPE_PORT="
# localstripe serves its fake Stripe.js without authentication and without
# touching its store: a side-effect-free readiness probe.
READY_PATH = "/js.stripe.com/v3/"
STARTUP_TIMEOUT = 15.0
LATENCY_ENV = "LOCALSTRIPE_LATENCY_MS"

# Temporary directories created by start_localstripe(data_file=None), by pid.
_temp_dirs: dict[int, str] = {}


# --- Server side (runs inside the launcher process) -------------------------


def _use_data_file(data_file: Path) -> None:
    """Point localstripe's Store at ``data_file`` instead of /tmp/localstripe.pickle."""
    from localstripe import resources

    def try_load_from_disk(self: resources.Store) -> None:
        try:
            with open(data_file, "rb") as f:
                old = pickle.load(f)
        except FileNotFoundError:
            return
        self.clear()
        self.update(old)

    def dump_to_disk(self: resources.Store) -> None:
        # Write then rename, so a crash never leaves a truncated pickle behind.
        tmp = data_file.with_name(data_file.name + ".tmp")
        with open(tmp, "wb") as f:
            pickle.dump(dict(self), f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, data_file)

    resources.Store.try_load_from_disk = try_load_from_disk
    resources.Store.dump_to_disk = dump_to_disk


def _no_persist() -> None:
    from localstripe import resources

    resources.Store.try_load_from_disk = lambda self: None
    resources.Store.dump_to_disk = lambda self: None


def _latency_ms() -> int:
    raw = os.environ.get(LATENCY_ENV, "").strip() or "0"
    try:
        value = int(raw)
    except ValueError:
        sys.exit(f"{LATENCY_ENV} must be a whole number of milliseconds, not {raw!r}")
    if value < 0:
        sys.exit(f"{LATENCY_ENV} must not be negative")
    return value


def _install_latency(app: Any, latency_ms: int) -> None:
    """First middleware of the chain: every ``/v1/`` request (Stripe's API) waits ``latency_ms``
    before it is handled, as a round trip to Stripe would; control routes and Stripe.js do not."""
    from aiohttp import web

    delay = latency_ms / 1000

    @web.middleware
    async def latency(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith("/v1/"):
            await asyncio.sleep(delay)
        return await handler(request)

    app.middlewares.insert(0, latency)


async def _watch_parent(parent_pid: int) -> None:
    # When the parent dies we are re-parented, so getppid() changes.
    while os.getppid() == parent_pid:
        await asyncio.sleep(1)
    os.kill(os.getpid(), signal.SIGTERM)


def serve(*, port: int, data_file: Path, from_scratch: bool, exit_with_parent: bool, persist: bool = True) -> None:
    latency_ms = _latency_ms()
    data_file = data_file.resolve()
    data_file.parent.mkdir(parents=True, exist_ok=True)
    if persist:
        _use_data_file(data_file)
    else:
        _no_persist()

    from aiohttp import web
    from localstripe import server

    from devtools import standin

    standin.install(server.app)
    if latency_ms:
        _install_latency(server.app, latency_ms)

    if not from_scratch:
        server.store.try_load_from_disk()

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, port))
    bound_port = sock.getsockname()[1]

    # The one line on stdout a parent process reads; everything else goes to stderr.
    print(f"{PORT_LINE_PREFIX}{bound_port}", flush=True)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())

    access_log = logging.getLogger("aiohttp.access")
    access_log.setLevel(logging.DEBUG)
    access_log.addHandler(logging.StreamHandler())
    where = f"data file {data_file}" if persist else "memory only"
    late = f", {latency_ms} ms per /v1/ request" if latency_ms else ""
    print(f"localstripe listening on http://{HOST}:{bound_port} ({where}{late})", file=sys.stderr)

    if exit_with_parent:
        parent_pid = os.getppid()
        watchdogs: list[asyncio.Task[None]] = []  # keeps a reference to the task

        async def start_watchdog(app: web.Application) -> None:
            watchdogs.append(asyncio.ensure_future(_watch_parent(parent_pid)))

        server.app.on_startup.append(start_watchdog)

    web.run_app(server.app, sock=sock, access_log=access_log, print=None, shutdown_timeout=2)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8420, help="0 picks a free port")
    parser.add_argument("--data-file", type=Path, default=Path("var/localstripe.pickle"))
    parser.add_argument("--from-scratch", action="store_true", help="ignore an existing data file")
    parser.add_argument("--exit-with-parent", action="store_true")
    parser.add_argument("--no-persist", action="store_true", help="keep the store in memory only")
    args = parser.parse_args(argv)
    serve(
        port=args.port,
        data_file=args.data_file,
        from_scratch=args.from_scratch,
        exit_with_parent=args.exit_with_parent,
        persist=not args.no_persist,
    )


# --- Client side (used by tests and scripts) --------------------------------


def _read_port(process: subprocess.Popen[str], deadline: float) -> int:
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not selector.select(timeout=max(deadline - time.monotonic(), 0)):
                break
            line = process.stdout.readline()
            if not line:  # EOF: the launcher exited
                break
            if line.startswith(PORT_LINE_PREFIX):
                return int(line[len(PORT_LINE_PREFIX) :])
    raise RuntimeError("localstripe did not report its port")


def _wait_until_ready(process: subprocess.Popen[str], base_url: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"localstripe exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(base_url + READY_PATH, timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"localstripe did not answer on {base_url}")


def start_localstripe(
    port: int | None = None,
    data_file: str | os.PathLike[str] | None = None,
    *,
    log_file: str | os.PathLike[str] | None = None,
    from_scratch: bool = True,
    latency_ms: int = 0,
    persist: bool = True,
) -> tuple[subprocess.Popen[str], str]:
    """Spawn localstripe on 127.0.0.1 and wait until it answers HTTP.

    ``port=None`` picks a free port. ``data_file=None`` uses a temporary file that
    :func:`stop` removes. Server logs go to ``log_file`` (default: next to the data
    file, ``<data_file>.log``). ``latency_ms`` delays every ``/v1/`` answer;
    ``persist=False`` keeps the store in memory. Returns ``(process, base_url)``.
    """
    if data_file is None:
        temp_dir = tempfile.mkdtemp(prefix="localstripe-")
        data_path = Path(temp_dir) / "localstripe.pickle"
    else:
        temp_dir = None
        data_path = Path(data_file)
    log_path = Path(log_file) if log_file is not None else data_path.with_name(data_path.name + ".log")
    log_path.parent.mkdir(parents=True, exist_ok=True)

    command = [
        sys.executable,
        "-m",
        "devtools.localstripe_server",
        "--port",
        str(port or 0),
        "--data-file",
        str(data_path),
        "--exit-with-parent",
    ]
    if from_scratch:
        command.append("--from-scratch")
    if not persist:
        command.append("--no-persist")
    project_root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(project_root), os.environ.get("PYTHONPATH")]))}
    env[LATENCY_ENV] = str(latency_ms)  # explicit: a caller never inherits a latency by accident
    with open(log_path, "ab") as log:
        process = subprocess.Popen(  # noqa: S603 - fixed command, no shell
            command, stdout=subprocess.PIPE, stderr=log, text=True, env=env, cwd=project_root
        )
    if temp_dir is not None:
        _temp_dirs[process.pid] = temp_dir

    deadline = time.monotonic() + STARTUP_TIMEOUT
    try:
        bound_port = _read_port(process, deadline)
        base_url = f"http://{HOST}:{bound_port}"
        _wait_until_ready(process, base_url, deadline)
    except BaseException:
        stop(process)
        raise
    return process, base_url


def stop(process: subprocess.Popen[str], timeout: float = 10.0) -> None:
    """Terminate a localstripe started by :func:`start_localstripe` and clean up."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is not None:
        process.stdout.close()
    temp_dir = _temp_dirs.pop(process.pid, None)
    if temp_dir is not None:
        shutil.rmtree(temp_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
