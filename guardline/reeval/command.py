"""``guardline reeval run | receiver``: a job from the command line, and the Alertmanager
receiver with its local worker."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from guardline.logs import configure
from guardline.settings import Settings, load_settings

log = logging.getLogger("guardline.reeval")


def add_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: Callable[[argparse.ArgumentParser], None],
    when: Callable[[str], datetime],
) -> None:
    reeval = commands.add_parser(
        "reeval",
        help="re-evaluate samples: a job now, or the Alertmanager receiver",
        description="Re-score the samples of a time window with the strongest evaluators "
        "available, compare them with the samples before it, and write a report.",
    )
    actions = reeval.add_subparsers(dest="action", required=True, metavar="ACTION")
    run = actions.add_parser(
        "run",
        help="run one re-evaluation job now, with a progress bar",
        description="Re-evaluate the samples from --since to --until against a same-size "
        "baseline from before --since; print where the report is.",
    )
    hint = "ISO 8601 (2026-11-21T10:00Z) or an age such as 90m, 24h, 7d"
    run.add_argument("--since", type=when, required=True, metavar="T", help=f"{hint} (inclusive)")
    run.add_argument("--until", type=when, metavar="T", help=f"{hint} (exclusive; default now)")
    run.add_argument(
        "--dataset",
        metavar="DIR",
        help="sample dataset directory (default: samples.jsonl.directory)",
    )
    run.add_argument(
        "--evaluation", default="manual", help="what the report leads with, e.g. toxicity"
    )
    run.add_argument(
        "--out", metavar="DIR", help="jobs, reports and datasets (default: reeval.directory)"
    )
    common(run)
    receiver = actions.add_parser(
        "receiver",
        help="serve the Alertmanager webhook and job status, running jobs locally",
        description="POST /v1/reeval/alerts takes Alertmanager's webhook (token in "
        "$GUARDLINE_REEVAL_TOKEN); GET /v1/reeval/jobs[/ID] shows jobs. Jobs run on worker "
        "threads of this process; unfinished ones are taken up again on start.",
    )
    receiver.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    receiver.add_argument("--port", type=int, help="port to listen on (default 8090)")
    common(receiver)
    worker = actions.add_parser(
        "worker",
        help="run jobs from the Kafka job topic (reeval.queue: kafka), one at a time",
        description="Consume reeval.topic in consumer group reeval.group; run each job, "
        "publish its progress and report to <topic>.status, and commit it only once it has "
        "finished (a worker killed mid-job leaves it to the next). Runs until SIGTERM/SIGINT.",
    )
    common(worker)


def main(args: argparse.Namespace, overrides: dict[str, Any]) -> None:
    reeval: dict[str, Any] = {}
    if getattr(args, "dataset", None):
        reeval["datasets"] = args.dataset
    if getattr(args, "out", None):
        reeval["directory"] = args.out
    for name in ("host", "port"):
        if getattr(args, name, None) is not None:
            reeval[name] = getattr(args, name)
    if reeval:
        overrides["reeval"] = reeval
    settings = load_settings(args.config, overrides)
    configure(settings.log_level, settings.log_format)
    {"run": _run, "receiver": _receiver, "worker": _worker}[args.action](args, settings)


def _bar(fraction: float, stage: str) -> None:
    """One line on stderr, rewritten in place."""
    filled = int(fraction * 30)
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {fraction:6.1%} {stage:<10}")
    sys.stderr.flush()


def _run(args: argparse.Namespace, settings: Settings) -> None:
    from guardline.errors import GuardlineError  # noqa: PLC0415
    from guardline.reeval.jobs import Job, JobStore, new_id  # noqa: PLC0415
    from guardline.reeval.results import EvaluationEvents  # noqa: PLC0415
    from guardline.reeval.worker import Executor  # noqa: PLC0415

    until = args.until or datetime.now(UTC)
    store = JobStore(settings.reeval.directory)
    job = Job(
        id=new_id(),
        evaluation=args.evaluation,
        since=args.since.isoformat(),
        until=until.isoformat(),
        trigger={
            "source": "cli",
            "alertname": None,
            "status": None,
            "labels": {},
            "annotations": {},
        },
    )
    store.create(job)
    executor = Executor(settings, store, events=EvaluationEvents(settings.telemetry))
    try:
        done = executor.execute(job.id, progress=_bar)
    finally:
        executor.close()
    _bar(1.0 if done.state == "done" else done.progress, done.state)
    sys.stderr.write("\n")
    if done.state != "done":
        raise GuardlineError(f"job {done.id} failed: {done.error}")
    print(f"guardline: job {done.id}: {done.counts} -> {done.report}", file=sys.stderr)
    print(Path(done.report or ""))


def _receiver(args: argparse.Namespace, settings: Settings) -> None:
    from guardline.reeval.jobs import JobStore  # noqa: PLC0415
    from guardline.reeval.receiver import Receiver, create_receiver_app  # noqa: PLC0415
    from guardline.reeval.results import EvaluationEvents, ResultMetrics  # noqa: PLC0415
    from guardline.reeval.worker import Executor, LocalWorker  # noqa: PLC0415
    from guardline.server import announce, bind, make_server, run, serve_all  # noqa: PLC0415

    store = JobStore(settings.reeval.directory)
    sock = bind(settings.reeval.host, settings.reeval.port)
    metrics = ResultMetrics(settings.telemetry)
    for job in store.all():  # the last evaluations before a restart
        metrics.record(job)
    close: Callable[[], None]
    if settings.reeval.queue == "kafka":
        from guardline.reeval.queue import KafkaQueue  # noqa: PLC0415

        queue = KafkaQueue(settings, store, on_update=metrics.record)
        receiver = Receiver(settings.reeval, store, queue.submit, metrics=metrics)
        close = queue.close
    else:
        events = EvaluationEvents(settings.telemetry)
        executor = Executor(settings, store, on_update=metrics.record, events=events)
        worker = LocalWorker(executor)
        receiver = Receiver(
            settings.reeval, store, lambda job: worker.submit(job.id), metrics=metrics
        )
        worker.start()
        close = worker.close
    try:
        announce(sock)
        app = create_receiver_app(receiver)
        run(serve_all([(make_server(app, log_level=settings.log_level), sock)]))
    finally:
        close()


def _worker(args: argparse.Namespace, settings: Settings) -> None:
    import signal  # noqa: PLC0415
    import threading  # noqa: PLC0415

    from guardline.reeval.jobs import JobStore  # noqa: PLC0415
    from guardline.reeval.queue import KafkaWorker  # noqa: PLC0415

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    done = KafkaWorker(settings, JobStore(settings.reeval.directory), stop).run()
    print(f"guardline: re-evaluation worker stopped after {done} jobs", file=sys.stderr)
