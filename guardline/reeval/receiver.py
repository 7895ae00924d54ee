"""The HTTP face of re-evaluation: Alertmanager's webhook and job status.

    POST /v1/reeval/alerts      Alertmanager webhook (payload version 4)
    GET  /v1/reeval/jobs        every job, newest first
    GET  /v1/reeval/jobs/{id}   one job: state, progress, report location
    GET  /v1/reeval/jobs/{id}/report   its HTML report
    GET  /healthz, /readyz, /metrics (the jobs' results; no token, as Prometheus scrapes)

Every route but the health checks needs the token (``Authorization: Bearer <token>``, or
basic auth with ``reeval.username`` and the token as password, as Alertmanager's
``http_config`` sends them). The webhook answers as soon as the job is stored: the job
runs elsewhere (a local worker thread, or a worker group through Kafka).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from guardline import __version__
from guardline.errors import ConfigError
from guardline.reeval.alerts import PayloadError, describe, evaluation_for, parse_payload, window_of
from guardline.reeval.jobs import Job, JobError, JobStore, new_id
from guardline.reeval.queue import QueueError
from guardline.reeval.results import ResultMetrics
from guardline.settings import ReevalSettings, env_secret

log = logging.getLogger("guardline.reeval")

_PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"
MAX_BODY = 1 << 20
"""Alertmanager's payloads are a few KB per alert; anything near this is not one."""


def _error(status: int, kind: str, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "message": message}}, status, headers=headers)


class Receiver:
    def __init__(
        self,
        settings: ReevalSettings,
        store: JobStore,
        submit: Callable[[Job], None],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        metrics: ResultMetrics | None = None,
    ) -> None:
        token = env_secret(settings.token_env)
        if token is None:
            raise ConfigError(
                f"reeval: set ${settings.token_env} to the token Alertmanager sends "
                "(http_config.authorization.credentials, or the basic_auth password)"
            )
        self._token = token.encode()
        self._username = settings.username
        self.settings = settings
        self.store = store
        self._submit = submit
        self._clock = clock
        self.metrics = metrics
        self.resolved: list[dict[str, Any]] = []
        """Resolved notifications of alerts that started no job (bounded)."""

    def authorised(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() == "bearer" and self._username is None:
            return hmac.compare_digest(credentials.strip().encode(), self._token)
        if scheme.lower() == "basic" and self._username is not None:
            try:
                user, _, password = base64.b64decode(credentials, validate=True).partition(b":")
            except (binascii.Error, ValueError):
                return False
            same_user = hmac.compare_digest(user, self._username.encode())
            return same_user & hmac.compare_digest(password, self._token)
        return False

    def _unauthorised(self) -> JSONResponse:
        scheme = "Basic" if self._username is not None else "Bearer"
        return _error(
            401,
            "authentication_error",
            f"missing or wrong credentials ({scheme} auth with the token in "
            f"${self.settings.token_env})",
            **{"www-authenticate": f'{scheme} realm="guardline-reeval"'},
        )

    async def alerts(self, request: Request) -> Response:
        if not self.authorised(request):
            return self._unauthorised()
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                return _error(413, "request_too_large", f"body over {MAX_BODY} bytes")
        try:
            payload = parse_payload(body)
        except PayloadError as exc:
            return _error(400, "invalid_request_error", f"not an Alertmanager v4 payload: {exc}")
        answer: dict[str, list[str]] = {
            "started": [],
            "repeated": [],
            "resolved": [],
            "ignored": [],
        }
        now = self._clock()
        for alert in payload.alerts:
            job_id = new_id(alert.key())
            if alert.status == "resolved":
                self._resolve(job_id, alert.name, now)
                answer["resolved"].append(job_id)
                continue
            wanted = evaluation_for(alert, self.settings)
            if wanted is None:
                answer["ignored"].append(alert.name)
                continue
            since, until = window_of(alert, wanted[1], now)
            job = Job(
                id=job_id,
                evaluation=wanted[0],
                since=since.isoformat(),
                until=until.isoformat(),
                trigger=dict(describe(alert)),
            )
            if self.store.create(job):
                try:
                    await run_in_threadpool(self._submit, job)  # Kafka: waits for the ack
                except QueueError as exc:
                    self.store.remove(job_id)  # Alertmanager retries a 5xx: nothing lost
                    log.error("%s", exc)
                    return _error(503, "api_error", f"job not queued, retry: {exc}")
                log.info("alert %s started re-evaluation job %s", alert.name, job_id)
                answer["started"].append(job_id)
            else:
                self.store.update(job_id, _repeat)
                answer["repeated"].append(job_id)
        return JSONResponse(answer, 202)

    def _resolve(self, job_id: str, name: str, now: datetime) -> None:
        try:
            self.store.update(job_id, lambda j: _resolved(j, now))
        except JobError:  # an alert no trigger matched, or before this store existed
            self.resolved = [*self.resolved[-99:], {"alertname": name, "at": now.isoformat()}]

    async def jobs(self, request: Request) -> Response:
        if not self.authorised(request):
            return self._unauthorised()
        return JSONResponse({"jobs": [job.public() for job in self.store.all()]})

    def _stored(self, request: Request) -> Job | Response:
        """The job the path names, or the error response (401, 404) to send instead."""
        if not self.authorised(request):
            return self._unauthorised()
        try:
            return self.store.get(request.path_params["job_id"])
        except JobError as exc:
            return _error(404, "not_found_error", str(exc))

    async def job(self, request: Request) -> Response:
        job = self._stored(request)
        return job if isinstance(job, Response) else JSONResponse(job.public())

    async def report(self, request: Request) -> Response:
        job = self._stored(request)
        if isinstance(job, Response):
            return job
        if job.report is None or not await run_in_threadpool(os.path.isfile, job.report):
            return _error(404, "not_found_error", f"job {job.id} has no report yet ({job.state})")
        return FileResponse(job.report, media_type="text/html")


def _repeat(job: Job) -> None:
    job.notifications += 1


def _resolved(job: Job, now: datetime) -> None:
    job.resolved = now.isoformat()


def create_receiver_app(receiver: Receiver, ready: Callable[[], bool] = lambda: True) -> Starlette:
    async def healthz(_: Request) -> Response:
        return JSONResponse({"version": __version__, "jobs": len(receiver.store.all())})

    async def readyz(_: Request) -> Response:
        ok = ready()
        return JSONResponse({"ready": ok}, 200 if ok else 503)

    async def metrics(_: Request) -> Response:
        if receiver.metrics is None:
            return _error(404, "not_found_error", "metrics are off")
        return Response(receiver.metrics.scrape(), media_type=_PROMETHEUS_TEXT)

    async def not_found(request: Request, _: Exception) -> Response:
        return _error(404, "not_found_error", f"no route {request.method} {request.url.path}")

    async def not_allowed(request: Request, _: Exception) -> Response:
        return _error(405, "invalid_request_error", f"{request.method} not allowed here")

    routes: Sequence[Route] = [
        Route("/v1/reeval/alerts", receiver.alerts, methods=["POST"]),
        Route("/v1/reeval/jobs", receiver.jobs, methods=["GET"]),
        Route("/v1/reeval/jobs/{job_id}", receiver.job, methods=["GET"]),
        Route("/v1/reeval/jobs/{job_id}/report", receiver.report, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    return Starlette(routes=list(routes), exception_handlers={404: not_found, 405: not_allowed})
