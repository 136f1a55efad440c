"""Serving the app with gunicorn: one gthread worker, and every in-flight run recorded on exit.

One worker process, because the event bus and the executor live in it; its
``threads`` cap the open streams (SSE, WebSocket) plus the requests in
progress, and its event loop reads each request whole before a thread serves
it (``worker.py``: half-sent requests hold no thread). The master binds the
port; the worker builds the app (nothing stateful crosses the fork) and prints
the login URL. On SIGTERM the worker
stops accepting, cancels (or, ``graceful``, awaits) every in-flight run and
records it, lets answers in progress finish for a few seconds and exits; on
Ctrl-C (SIGINT, SIGQUIT) it records the runs and exits at once. Should the
worker die anyway, the master records its runs as ``interrupted`` on exit.
See docs/serving.md.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import re
import resource
import signal
import socket
import sys
import threading
import webbrowser
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger
from gunicorn.workers import base

from controlplane.ui.web.security import login_url
from controlplane.ui.web.worker import BufferingThreadWorker

log = logging.getLogger(__name__)

DRAIN_SECONDS = 5  # a stopping worker lets answers in progress finish this long
RUN_STOP_SECONDS = 30  # the executor's own wait for running runs on shutdown
STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGQUIT, signal.SIGTERM})
TOKEN_IN_TEXT = re.compile(r"(token=)[^&\s\"']+", re.IGNORECASE)
FD_RESERVE = 256  # descriptors kept for files, pipes, git and SQLite beside the connections
MAX_CONNECTIONS = 10_000  # open connections per worker, at most (each may buffer 64 KiB)


@dataclass(frozen=True, kw_only=True)
class ServeOptions:
    """What ``controlplane serve`` resolved: where, how, and the token the URL carries."""

    root: Path
    host: str
    port: int
    threads: int
    token: str
    workers: int = 1  # more than one needs a shared bus (CONTROLPLANE_BUS=redis://…)
    settings: dict[str, Any] = field(default_factory=dict)  # flag-level settings for the app
    graceful: bool = False
    open_browser: bool = False

    @property
    def url(self) -> str:
        return login_url(self.host, self.port, self.token)

    @property
    def bind(self) -> str:
        host = self.host.strip("[]")
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_bindable(host: str, port: int) -> None:
    """Raise ``OSError`` if *host*:*port* cannot be listened on (in use, no such address)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host.strip("[]") or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
        probe.bind(address)


class RunRecorder:
    """Cancels (or, graceful, awaits) every in-flight run of the app and records it, once.

    Always called in the worker's main thread, with the stop signals blocked (a
    signal handler that runs anyway returns at once), so it is never re-entered.
    """

    def __init__(self, graceful: bool) -> None:
        self.graceful = graceful
        self.app: Flask | None = None
        self.done = False

    def record(self) -> None:
        from controlplane.ui.web.app import shutdown_app

        if self.done or self.app is None:
            return
        try:
            shutdown_app(self.app, graceful=self.graceful)
            if self.graceful:  # what outlived the wait is cancelled, so it is recorded too
                shutdown_app(self.app, graceful=False)
        except Exception:
            log.exception("could not record every in-flight run")
        self.done = True


def block_stop_signals() -> None:
    """From now on a stop signal stays pending, so none interrupts the recording of runs."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


class Worker(BufferingThreadWorker):
    """The buffering gthread worker; its stop signals record in-flight runs before it exits.

    SIGTERM stops accepting and records the runs from the main loop while answers
    drain; SIGINT (Ctrl-C) and SIGQUIT record them in ``worker_int`` and exit. A
    second signal while leaving (Ctrl-C reaches the worker and makes the master
    send SIGQUIT) is ignored instead of re-entering gunicorn's handler.
    """

    quitting = False

    def handle_exit(self, sig: int, frame: Any) -> None:
        super().handle_exit(sig, frame)
        queue = getattr(self, "method_queue", None)  # recent gunicorn; else worker_exit records
        if queue is not None and not self.quitting:
            queue.defer(self.record_runs)

    def handle_quit(self, sig: int, frame: Any) -> None:
        if self.quitting:
            return
        self.quitting = True
        block_stop_signals()
        # Not ThreadWorker.handle_quit: its tpool.shutdown() deadlocks when the signal lands
        # while the main loop holds the pool's lock in submit(); worker_exit ends us anyway.
        base.Worker.handle_quit(self, sig, frame)  # worker_int records the runs, sys.exit(0)

    def run(self) -> None:
        try:
            super().run()
        finally:  # on to worker_exit, undisturbed
            self.quitting = True
            block_stop_signals()

    def record_runs(self) -> None:
        """Main loop, after SIGTERM."""
        self.quitting = True
        block_stop_signals()
        self.app.recorder.record()


class TokenScrubbingLogger(Logger):
    """gunicorn's logger, minus any ``token=…`` (its error messages may quote a request line)."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        self.error_log.addFilter(scrub_tokens)
        self.access_log.addFilter(scrub_tokens)


def scrub_tokens(record: logging.LogRecord) -> bool:
    """A logging filter that masks ``token=…`` in a record's message; keeps every record."""
    try:
        message = record.getMessage()
    except Exception:  # a malformed record is logging's to report, not ours
        return True
    if "token=" in message.lower():
        record.msg, record.args = TOKEN_IN_TEXT.sub(r"\1***", message), None
    return True


class ControlPlaneServer(BaseApplication):
    """The gunicorn application: its configuration, the app it loads and its hooks."""

    def __init__(self, options: ServeOptions) -> None:
        self.options = options
        self.recorder = RunRecorder(options.graceful)
        self.flask_app: Flask | None = None
        super().__init__(prog="controlplane serve")

    def gunicorn_settings(self) -> dict[str, Any]:
        opts = self.options
        runs_stop = RUN_STOP_SECONDS * (2 if opts.graceful else 1)
        return {
            "bind": [opts.bind],
            "workers": opts.workers,  # >1 only with a shared (Redis) bus, locks and slots
            "worker_class": Worker,
            "threads": opts.threads,
            "worker_connections": worker_connections(opts.threads),
            "keepalive": 5,
            "timeout": 0,  # gthread's timeout is a heartbeat; never restart a worker with streams
            "graceful_timeout": runs_stop + DRAIN_SECONDS + 10,  # the master's wait, then SIGKILL
            "accesslog": None,  # an access line would carry /login?token=…
            "errorlog": "-",
            "loglevel": "warning",
            "logger_class": TokenScrubbingLogger,
            "forwarded_allow_ips": "",  # no proxy may set the scheme: Origin checks rely on it
            "proc_name": "controlplane",
            "control_socket_disable": True,
            "post_worker_init": self.post_worker_init,
            "worker_int": self.worker_int,
            "worker_exit": self.worker_exit,
            "on_exit": self.on_exit,
        }

    def load_config(self) -> None:
        for name, value in self.gunicorn_settings().items():
            if name in self.cfg.settings:  # control_socket_disable is new in gunicorn 25
                self.cfg.set(name, value)

    def load(self) -> Flask:
        """Build the app, in the worker."""
        from controlplane.ui.web.app import create_app

        opts = self.options
        self.flask_app = create_app({"REPO": str(opts.root), "TOKEN": opts.token,
                                     "SETTINGS": opts.settings})
        self.recorder.app = self.flask_app
        return self.flask_app

    # -- hooks ---------------------------------------------------------------

    def post_worker_init(self, worker: Any) -> None:
        """Worker, app loaded: print the login URL (the one place the token appears), once."""
        worker.cfg.set("graceful_timeout", DRAIN_SECONDS)  # the master's grace is for the runs
        if worker.age != 1:
            return  # a replacement for a worker that died: the URL has not changed
        print(f"Control plane for {self.options.root} at {self.options.url}", flush=True)
        if self.options.open_browser:  # a console browser would block: not in the main thread
            threading.Thread(target=webbrowser.open, args=(self.options.url,), daemon=True,
                             name="open-browser").start()

    def worker_int(self, worker: Any) -> None:
        """Worker, Ctrl-C or SIGQUIT: record every in-flight run before gunicorn exits."""
        self.recorder.record()

    def worker_exit(self, arbiter: Any, worker: Any) -> None:
        """Worker, leaving: record what is still in flight, then exit without awaiting streams."""
        if worker.pid != os.getpid() or self.flask_app is None:
            return  # called in the master, or the app never loaded
        block_stop_signals()
        self.recorder.record()
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)  # an open SSE/WebSocket thread would otherwise hold the process

    def on_exit(self, arbiter: Any) -> None:
        """Master, leaving: record as ``interrupted`` the runs of a worker that died."""
        from controlplane.core.ledger import Ledger

        try:
            Ledger.open(self.options.root)
        except Exception:
            log.exception("could not check for interrupted runs")


def raise_fd_limit() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit (held connections need a descriptor each)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):  # some systems refuse an infinite one
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def worker_connections(threads: int) -> int:
    """Open connections a worker accepts: what its descriptors allow, up to MAX_CONNECTIONS."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    allowed = MAX_CONNECTIONS if soft == resource.RLIM_INFINITY else soft - FD_RESERVE
    return max(threads + 64, min(MAX_CONNECTIONS, allowed))


def configure_logging() -> None:
    """Warnings and errors of the app on stderr, tokens masked."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: "
                               "%(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(scrub_tokens)


def serve(options: ServeOptions) -> None:
    """Serve until SIGTERM or Ctrl-C, in this process (gunicorn master) and one worker."""
    configure_logging()
    descriptors = raise_fd_limit()
    if descriptors < 1024 + FD_RESERVE:
        log.warning("only %d file descriptors: fewer than 1,024 connections can be held open; "
                    "raise the hard limit (ulimit -Hn)", descriptors)
    ControlPlaneServer(options).run()
