"""``guardline serve --workers N``: one listening socket, N forked worker processes.

The parent binds the port, then forks workers that each build the app (detectors load
per worker, after the fork, so the parent stays single-threaded and small) and accept on
the inherited socket. The parent only supervises: it forwards SIGTERM/SIGINT, restarts a
worker that dies, and removes the directory where workers leave their metric snapshots
(``guardline.exporters.multiprocess``). Linux only (fork, /proc).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import logging
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import NoReturn

from guardline.errors import GuardlineError, StartupError
from guardline.server import announce, bind, make_server, run, serve_all
from guardline.settings import Settings

log = logging.getLogger("guardline")

RESTART_LIMIT = 5
"""Restarts allowed within ``RESTART_WINDOW`` seconds; one more stops the server."""
RESTART_WINDOW = 60.0
KILL_AFTER = 45.0
"""Seconds after SIGTERM before a worker still running is killed (uvicorn gives in-flight
requests 30 s)."""

_STARTUP_FAILED = 3  # a worker's exit status: it never served (bad config, lifespan error)
_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGCHLD}
_PR_SET_PDEATHSIG = 1


def serve_workers(settings: Settings, workers: int) -> None:
    """Serve with ``workers`` processes until SIGTERM/SIGINT (returns after a clean stop)."""
    if not sys.platform.startswith("linux"):
        raise StartupError(
            "--workers above 1 needs Linux (workers are forked); run one process per port "
            "behind a load balancer instead"
        )
    with contextlib.closing(bind(settings.host, settings.port)) as sock:  # fails fast
        _share_feedback_secret(settings)
        try:
            directory = Path(tempfile.mkdtemp(prefix="guardline-metrics-"))
        except OSError as exc:
            raise StartupError(f"cannot create a directory for worker metrics: {exc}") from None
        telemetry = settings.telemetry.model_copy(update={"multiprocess_dir": directory})
        settings = settings.model_copy(update={"telemetry": telemetry})
        try:
            announce(sock)
            _Supervisor(sock, settings, workers).run()
        finally:
            shutil.rmtree(directory, ignore_errors=True)


def _share_feedback_secret(settings: Settings) -> None:
    """Request ids are signed; every worker must use the same secret to verify the
    others' ids, so an unset one is made here, before the fork."""
    name = settings.feedback.secret_env
    if not os.environ.get(name):
        os.environ[name] = secrets.token_urlsafe(32)
        log.warning(
            "feedback: $%s is not set, so the workers share a random secret made for this "
            "run; feedback only reaches this server, until it restarts",
            name,
        )


class _Supervisor:
    def __init__(self, sock: socket.socket, settings: Settings, workers: int) -> None:
        self.sock = sock
        self.settings = settings
        self.workers = workers
        self.children: dict[int, int] = {}
        """pid -> slot: a restarted worker takes its predecessor's slot, and with it
        its sample files and Kafka spool (``samples.writer``)."""
        self.restarts: deque[float] = deque()
        self.stopping: float | None = None
        self.killed = False
        self.failure: GuardlineError | None = None

    def run(self) -> None:
        # Signals wait in the mask until sigtimedwait takes them: no handler runs between
        # a fork and the bookkeeping of its pid. They stay blocked after the last worker is
        # gone, so a late duplicate SIGTERM cannot turn a clean exit into death by signal.
        signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        try:
            for slot in range(self.workers):
                if self.stopping is None:
                    self._spawn(slot)
            while self.children:
                info = signal.sigtimedwait(_SIGNALS, 0.5)  # the timeout also covers a lost SIGCHLD
                if info is not None and info.si_signo != signal.SIGCHLD:
                    self._stop(signal.Signals(info.si_signo))
                self._reap()
                self._kill_stragglers()
        finally:
            if self.children:  # only after a bug here: leave no worker behind
                self._signal(signal.SIGKILL)
                for pid in self.children:
                    with contextlib.suppress(ChildProcessError):
                        os.waitpid(pid, 0)
        if self.failure is not None:
            raise self.failure

    def _spawn(self, slot: int) -> None:
        parent = os.getpid()
        try:
            pid = os.fork()
        except OSError as exc:
            self._fail(StartupError(f"cannot start a worker: {exc.strerror or exc}"))
            return
        if pid == 0:
            samples = self.settings.samples.model_copy(update={"writer": f"w{slot}"})
            _worker(self.sock, self.settings.model_copy(update={"samples": samples}), parent)
        self.children[pid] = slot
        log.info("worker started (pid %d)", pid)

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.children.clear()
                return
            if pid == 0:
                return
            if pid in self.children:
                slot = self.children.pop(pid)
                self._exited(pid, slot, os.waitstatus_to_exitcode(status))

    def _exited(self, pid: int, slot: int, code: int) -> None:
        how = _describe(code)
        if code == _STARTUP_FAILED:  # it logged why; another try would fail the same way
            if self.failure is None:
                self._fail(StartupError(f"a worker (pid {pid}) could not start; see above"))
            return
        if self.stopping is not None:
            # Killed by our SIGTERM/SIGINT while still loading is a clean stop as well.
            if code not in (0, -signal.SIGTERM, -signal.SIGINT, 130):
                log.warning("worker (pid %d) stopped with %s", pid, how)
                if self.failure is None:
                    self.failure = GuardlineError(f"a worker (pid {pid}) stopped with {how}")
            return
        now = time.monotonic()
        while self.restarts and now - self.restarts[0] > RESTART_WINDOW:
            self.restarts.popleft()
        if len(self.restarts) >= RESTART_LIMIT:
            self._fail(
                GuardlineError(
                    f"workers exited {RESTART_LIMIT + 1} times within {RESTART_WINDOW:g} s "
                    f"(the last, pid {pid}, with {how}); stopped"
                )
            )
            return
        log.warning("worker (pid %d) exited with %s; starting another", pid, how)
        self.restarts.append(now)
        self._spawn(slot)

    def _fail(self, error: GuardlineError) -> None:
        log.error("%s", error.message)
        self.failure = self.failure or error
        self._stop(signal.SIGTERM)

    def _stop(self, sig: signal.Signals) -> None:
        if self.stopping is None:
            self.stopping = time.monotonic()
            log.info("stopping workers (%d running)", len(self.children))
            # SIGTERM even for Ctrl+C: workers in the terminal's process group got that
            # SIGINT already, and a second SIGINT would force them to exit at once.
            self._signal(signal.SIGTERM)
        elif sig == signal.SIGINT:
            self._signal(signal.SIGINT)  # Ctrl+C twice: workers drop what is in flight

    def _kill_stragglers(self) -> None:
        if self.stopping is None or self.killed:
            return
        if time.monotonic() - self.stopping > KILL_AFTER:
            log.warning("workers still running %g s after SIGTERM; killing them", KILL_AFTER)
            self._signal(signal.SIGKILL)
            self.killed = True

    def _signal(self, sig: signal.Signals) -> None:
        for pid in self.children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)


def _worker(sock: socket.socket, settings: Settings, parent: int) -> NoReturn:
    """The forked child: serve, then leave with ``os._exit`` (never unwind into the
    parent's stack, whose cleanup removes the directory other workers still use)."""
    code = 1
    try:
        code = _serve(sock, settings, parent)
    except KeyboardInterrupt:
        code = 130
    except SystemExit as exc:
        code = 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        log.exception("worker (pid %d) crashed", os.getpid())
    finally:
        # What a normal exit runs (OpenTelemetry providers push their last export).
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _serve(sock: socket.socket, settings: Settings, parent: int) -> int:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
    _die_with(parent)
    from guardline.proxy.app import create_app  # noqa: PLC0415 - loaded per worker

    try:
        app = create_app(settings)
    except GuardlineError as exc:
        print(f"guardline: error: {exc.message}", file=sys.stderr)
        return _STARTUP_FAILED
    server = make_server(app, log_level=settings.log_level, ingress=settings.ingress)
    run(serve_all([(server, sock)]))
    return 0 if server.started else _STARTUP_FAILED


def _die_with(parent: int) -> None:
    """Get SIGTERM when the parent dies (SIGKILL, OOM killer) rather than serve on the
    port unsupervised."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, ctypes.c_ulong(signal.SIGTERM))
    if os.getppid() != parent:  # it died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _describe(code: int) -> str:
    if code < 0:
        return f"signal {signal.Signals(-code).name}"
    return f"exit status {code}"
