"""Running jobs: ``execute`` runs one stored job to its end exactly once (a job already
done is not run again; one a killed worker left ``running`` is run again), and
``LocalWorker`` runs them on threads of this process, taking up on start whatever an
earlier process left unfinished."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from guardline.reeval import runner
from guardline.reeval.evaluators import Evaluators, build
from guardline.reeval.jobs import FINAL, Job, JobStore, now
from guardline.reeval.results import EvaluationEvents
from guardline.settings import Settings

log = logging.getLogger("guardline.reeval")

ReportWriter = Callable[[Mapping[str, Any], Path], tuple[Path, Path]]
Listener = Callable[[Job], None]


def _write_report(summary: Mapping[str, Any], directory: Path) -> tuple[Path, Path]:
    from guardline.reeval.report import write_report  # noqa: PLC0415 - matplotlib is heavy

    return write_report(summary, directory)


class Executor:
    """Runs stored jobs with one set of evaluators (loaded once, on first use)."""

    def __init__(
        self,
        settings: Settings,
        store: JobStore,
        *,
        evaluators: Callable[[Settings], Evaluators] = build,
        write_report: ReportWriter = _write_report,
        on_update: Listener | None = None,
        events: EvaluationEvents | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self._build = evaluators
        self._evaluators: Evaluators | None = None
        self._lock = threading.Lock()
        self._write_report = write_report
        self._on_update = on_update
        self.events = events
        """Told every stored change of a job it runs (a Kafka worker publishes them)."""

    def evaluators(self) -> Evaluators:
        with self._lock:
            if self._evaluators is None:
                self._evaluators = self._build(self.settings)
            return self._evaluators

    def close(self) -> None:
        with self._lock:
            if self._evaluators is not None:
                self._evaluators.close()
                self._evaluators = None
        if self.events is not None:
            self.events.shutdown()  # sends what is batched

    def execute(self, job_id: str, progress: Callable[[float, str], None] | None = None) -> Job:
        job = self.store.get(job_id)
        if job.state in FINAL:
            return job

        def start(j: Job) -> None:
            j.state, j.stage, j.progress = "running", "starting", 0.0
            j.started, j.attempts, j.error = now().isoformat(), j.attempts + 1, None

        job = self._update(job_id, start)
        began = time.monotonic()
        last = [0.0]

        def report(fraction: float, stage: str) -> None:
            if progress is not None:
                progress(fraction, stage)
            if fraction - last[0] >= 0.02 or stage != job.stage:  # not a write per sample
                last[0] = fraction
                job.stage = stage
                self._update(job_id, lambda j: _progress(j, fraction, stage))

        try:
            summary, results = runner.run(job, self.settings, self.evaluators(), report)
            if self.events is not None:
                summary["job"]["events"] = self.events.emit(job.evaluation, results)
            finished = now().isoformat()
            summary["job"].update(
                state="done", finished=finished, duration_seconds=time.monotonic() - began
            )
            html, data = self._write_report(
                summary, self.settings.reeval.directory / "reports" / job_id
            )
        except Exception as exc:  # a job's failure is its state, never the worker's end
            log.exception("re-evaluation job %s failed", job_id)
            message = f"{type(exc).__name__}: {exc}"
            job = self._update(job_id, lambda j: _failed(j, message))
        else:
            counts = {k: v for k, v in summary["counts"].items() if isinstance(v, int)}
            job = self._update(job_id, lambda j: _done(j, finished, html, data, counts))
            log.info("re-evaluation job %s done: %s", job_id, html)
        return job

    def _update(self, job_id: str, change: Callable[[Job], None]) -> Job:
        job = self.store.update(job_id, change)
        if self._on_update is not None:
            self._on_update(job)
        return job


def _progress(job: Job, fraction: float, stage: str) -> None:
    job.progress, job.stage = round(fraction, 4), stage


def _failed(job: Job, message: str) -> None:
    job.state, job.stage, job.error, job.finished = "failed", "failed", message, now().isoformat()


def _done(job: Job, finished: str, html: Path, data: Path, counts: dict[str, int]) -> None:
    job.state, job.stage, job.progress, job.finished = "done", "done", 1.0, finished
    job.report, job.summary, job.counts = str(html), str(data), counts


class LocalWorker:
    """Jobs on ``reeval.workers`` threads of this process."""

    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        self._pool = ThreadPoolExecutor(
            executor.settings.reeval.workers, thread_name_prefix="guardline-reeval"
        )
        self.futures: dict[str, Future[Job]] = {}

    def start(self) -> None:
        for job in self.executor.store.unfinished():
            log.info("re-evaluation job %s was %s: running it", job.id, job.state)
            self.submit(job.id)

    def submit(self, job_id: str) -> None:
        self.futures[job_id] = self._pool.submit(self.executor.execute, job_id)

    def close(self) -> None:
        """Queued jobs stay queued in the store for the next start; a running one finishes."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.executor.close()
