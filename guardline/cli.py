"""``guardline serve | simulate | demo | eval | datasets | reeval``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from guardline import __version__
from guardline.errors import GuardlineError
from guardline.logs import configure
from guardline.settings import Settings, load_settings, with_upstream

if TYPE_CHECKING:
    from datetime import datetime

log = logging.getLogger("guardline")

_CONFIG_HELP = (
    "YAML settings file (also GUARDLINE_CONFIG). GUARDLINE_* environment variables override "
    "it, and command-line options override both."
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        handler = {
            "serve": _serve,
            "simulate": _simulate,
            "demo": _demo,
            "eval": _eval,
            "datasets": _datasets,
            "reeval": _reeval,
        }[args.command]
        handler(args)
    except GuardlineError as exc:
        print(f"guardline: error: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="guardline",
        description="LLM guardrail proxy and online monitoring agent for OpenAI and Anthropic.",
    )
    parser.add_argument("--version", action="version", version=f"guardline {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="run the proxy",
        description="Run the proxy. Point an OpenAI SDK at http://HOST:PORT/v1 and an "
        "Anthropic SDK at http://HOST:PORT.",
    )
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    serve.add_argument(
        "--port", type=int, help="port to listen on (default 8080; 0 picks a free one)"
    )
    serve.add_argument(
        "--upstream",
        metavar="URL",
        help="send every route (OpenAI and Anthropic) to this base URL, e.g. the simulator",
    )
    serve.add_argument(
        "--workers",
        type=_positive_int,
        default=1,
        metavar="N",
        help="worker processes sharing the port (default 1; above 1 needs Linux); each loads "
        "its own detectors, and /metrics on any of them reports the sum over all",
    )
    _common(serve)

    simulate = commands.add_parser(
        "simulate",
        help="run the upstream simulator (a test and demo tool)",
        description="Run the built-in upstream simulator: OpenAI and Anthropic wire formats, "
        "deterministic replies, scripted content and fault injection. Not a model.",
    )
    _simulator_options(simulate, default_port="9000")
    _common(simulate)

    demo = commands.add_parser(
        "demo",
        help="run the proxy in front of the simulator, and print how to call it",
        description="Run the proxy and the simulator together in one process.",
    )
    demo.add_argument("--host", help="proxy address (default 127.0.0.1)")
    demo.add_argument("--port", type=int, help="proxy port (default 8080)")
    demo.add_argument("--sim-port", type=int, default=0, help="simulator port (default: any free)")
    _common(demo)
    _simulator_options(demo, default_port=None)

    evaluate = commands.add_parser("eval", help="measure detectors on labeled data")
    targets = evaluate.add_subparsers(dest="target", required=True, metavar="TARGET")
    detectors = targets.add_parser(
        "detectors",
        help="precision, recall, F1, F2 per category, and throughput",
        description="Run one detector, as configured, over a labeled dataset and report "
        "precision, recall, F1 and F2 per category and throughput (KB/s, one thread).",
    )
    detectors.add_argument(
        "--kind", required=True, choices=["pii", "toxicity", "stereotype"], help="which detector"
    )
    detectors.add_argument(
        "--dataset",
        required=True,
        metavar="PATH",
        help="presidio-research JSON (pii); JSON Lines {text, label} or CSV (toxicity, stereotype)",
    )
    detectors.add_argument(
        "--json", action="store_true", help="print one JSON object instead of a table"
    )
    _common(detectors)

    _datasets_parser(commands)
    from guardline.reeval.command import add_parser  # noqa: PLC0415

    add_parser(commands, _common, _when)
    return parser


def _datasets_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    datasets = commands.add_parser(
        "datasets",
        help="sample datasets: export them for offline evaluation",
        description="Work with the sample datasets (JSON Lines) Guardline writes.",
    )
    actions = datasets.add_subparsers(dest="action", required=True, metavar="ACTION")
    export = actions.add_parser(
        "export",
        help="write samples as an FMEval or Bedrock model-evaluation dataset",
        description="Read every writer's files in a sample dataset directory, join feedback "
        "(a correction becomes the reference), drop duplicates, filter, and write JSON Lines "
        "for AWS FMEval or an Amazon Bedrock model-evaluation job. A one-line summary goes "
        "to stderr.",
    )
    export.add_argument(
        "--format",
        required=True,
        choices=["fmeval", "bedrock"],
        help="fmeval: AWS FMEval JSON Lines; bedrock: a Bedrock model-evaluation custom "
        "prompt dataset",
    )
    export.add_argument(
        "--out",
        required=True,
        metavar="PATH",
        help="output file, ending in .jsonl; a Bedrock export over 1000 prompts continues "
        "in parts beside it (out.jsonl, out-0002.jsonl, ...)",
    )
    export.add_argument(
        "--dir", metavar="DIR", help="dataset directory (default: samples.jsonl.directory)"
    )
    when = "ISO 8601 date or time (UTC unless it has an offset), or a duration back from now: "
    export.add_argument("--since", type=_when, metavar="T", help=when + "90m, 24h, 7d (inclusive)")
    export.add_argument("--until", type=_when, metavar="T", help=when + "90m, 24h, 7d (exclusive)")
    export.add_argument(
        "--category",
        action="append",
        default=[],
        metavar="C",
        help="only records with a finding of this category (repeatable; 'none': records "
        "without findings)",
    )
    export.add_argument(
        "--selected",
        choices=["flagged", "baseline", "feedback"],
        help="only records selected for this reason",
    )
    export.add_argument("--model", metavar="NAME", help="only records whose request named NAME")
    export.add_argument(
        "--with-reference",
        action="store_true",
        help="only records with a reference (a feedback correction): accuracy evaluations "
        "need one on every line",
    )
    export.add_argument(
        "--byoi",
        action="store_true",
        help="Bedrock bring-your-own-inference: add each recorded response as modelResponses",
    )
    export.add_argument(
        "--model-identifier",
        metavar="NAME",
        help="the modelIdentifier for --byoi (default: the records' model, sanitised)",
    )
    _common(export)

    consume = actions.add_parser(
        "consume",
        help="materialise the Kafka samples topic into JSON Lines datasets (a consumer group)",
        description="Read the samples topic in a consumer group and write the records into "
        "the same JSON Lines datasets the proxy writes, so a cluster of replicas produces one "
        "dataset. Offsets are committed only once records are on disk (at least once: "
        "readers drop duplicates). Runs until SIGTERM/SIGINT, or --max-idle.",
    )
    consume.add_argument("--topic", help="the samples topic (default: samples.kafka.topic)")
    consume.add_argument(
        "--out", metavar="DIR", help="dataset directory (default: samples.jsonl.directory)"
    )
    consume.add_argument(
        "--bootstrap-servers",
        action="append",
        metavar="HOST:PORT",
        help="a broker (repeatable; default: samples.kafka.bootstrap_servers)",
    )
    consume.add_argument(
        "--group", default="guardline-datasets", help="consumer group (default guardline-datasets)"
    )
    consume.add_argument(
        "--prefix", help="this consumer's file prefix (default samples-c-<host>-<pid>)"
    )
    consume.add_argument(
        "--max-idle",
        type=float,
        metavar="SECONDS",
        help="stop after this long without a record once partitions are assigned (batch or "
        "cron use); default: run on",
    )
    _common(consume)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help=_CONFIG_HELP)
    parser.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        help="log verbosity (default info); logs never carry message content or keys",
    )


def _simulator_options(parser: argparse.ArgumentParser, default_port: str | None) -> None:
    if default_port is not None:
        parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
        parser.add_argument("--port", type=int, help=f"port to listen on (default {default_port})")
    parser.add_argument("--seed", type=int, help="seed for generated replies (default 0)")
    parser.add_argument("--ttft-ms", type=float, help="time to first token (default 100)")
    parser.add_argument("--token-delay-ms", type=float, help="delay between tokens (default 10)")
    parser.add_argument(
        "--scenario",
        help="default content: default, echo, pii, toxic, stereotype (per request: x-sim-scenario)",
    )
    parser.add_argument("--script", metavar="FILE", help="YAML rules {match, scenario|reply|fault}")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _when(text: str) -> datetime:
    from guardline.exporters.datasets import parse_when  # noqa: PLC0415 - keep --help fast

    try:
        return parse_when(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _overrides(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    """The named options the user actually gave (argparse leaves the rest None)."""
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


def _settings(args: argparse.Namespace, *, proxy: bool) -> Settings:
    overrides: dict[str, Any] = _overrides(args, "log_level")
    if proxy:
        overrides.update(_overrides(args, "host", "port"))
    simulator = _overrides(args, "seed", "ttft_ms", "token_delay_ms", "scenario", "script")
    if not proxy:
        simulator.update(_overrides(args, "host", "port"))
    if simulator:
        overrides["simulator"] = simulator
    return load_settings(args.config, overrides)


def _serve(args: argparse.Namespace) -> None:
    settings = _settings(args, proxy=True)
    if args.upstream:
        settings = with_upstream(settings, args.upstream)
    configure(settings.log_level, settings.log_format)
    if args.workers > 1:
        from guardline.workers import serve_workers  # noqa: PLC0415 - keep --help fast

        serve_workers(settings, args.workers)
        return

    from guardline.proxy.app import create_app  # noqa: PLC0415
    from guardline.server import announce, bind, make_server, run, serve_all  # noqa: PLC0415

    sock = bind(settings.host, settings.port)  # before loading detectors: fail fast
    app = create_app(settings)
    announce(sock)
    server = make_server(app, log_level=settings.log_level, ingress=settings.ingress)
    run(serve_all([(server, sock)]))


def _simulate(args: argparse.Namespace) -> None:
    from guardline.server import bind, bound_url, make_server, run, serve_all  # noqa: PLC0415
    from guardline.simulator import create_simulator  # noqa: PLC0415

    settings = _settings(args, proxy=False)
    configure(settings.log_level, settings.log_format)
    sim = settings.simulator
    app = create_simulator(sim)
    sock = bind(sim.host, sim.port)
    log.info(
        "guardline simulator (a test and demo tool, not a model) listening on %s "
        "(ttft %g ms, token delay %g ms, scenario %s, seed %d)",
        bound_url(sock),
        sim.ttft_ms,
        sim.token_delay_ms,
        sim.scenario,
        sim.seed,
    )
    run(serve_all([(make_server(app, log_level=settings.log_level), sock)]))


def _demo(args: argparse.Namespace) -> None:
    from guardline.proxy.app import create_app  # noqa: PLC0415
    from guardline.server import bind, bound_url, make_server, run, serve_all  # noqa: PLC0415
    from guardline.simulator import create_simulator  # noqa: PLC0415

    settings = _settings(args, proxy=True)
    configure(settings.log_level, settings.log_format)
    sim_sock = bind(settings.simulator.host, args.sim_port)
    sim_url = bound_url(sim_sock)
    settings = with_upstream(settings, sim_url)
    proxy_sock = bind(settings.host, settings.port)
    proxy = create_app(settings)
    url = bound_url(proxy_sock)
    print(_DEMO_BANNER.format(url=url, sim=sim_url), flush=True)
    simulator = create_simulator(settings.simulator)
    run(
        serve_all(
            [
                (
                    make_server(proxy, log_level=settings.log_level, ingress=settings.ingress),
                    proxy_sock,
                ),
                (make_server(simulator, log_level=settings.log_level), sim_sock),
            ]
        )
    )


def _eval(args: argparse.Namespace) -> None:
    import json  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    from guardline.evaluation.detectors import evaluate, table  # noqa: PLC0415

    settings = load_settings(args.config, _overrides(args, "log_level"))
    configure("warning" if args.log_level is None else settings.log_level, settings.log_format)
    report = evaluate(args.kind, Path(args.dataset), settings)
    print(json.dumps(report) if args.json else table(report))


def _reeval(args: argparse.Namespace) -> None:
    from guardline.reeval.command import main as reeval  # noqa: PLC0415

    reeval(args, _overrides(args, "log_level"))


def _datasets(args: argparse.Namespace) -> None:
    {"export": _datasets_export, "consume": _datasets_consume}[args.action](args)


def _datasets_export(args: argparse.Namespace) -> None:
    from pathlib import Path  # noqa: PLC0415

    from guardline.exporters.datasets import Filters, export  # noqa: PLC0415

    settings = load_settings(args.config, _overrides(args, "log_level"))
    configure("warning" if args.log_level is None else settings.log_level, settings.log_format)
    filters = Filters(
        since=args.since,
        until=args.until,
        categories=frozenset(args.category),
        selected=args.selected,
        model=args.model,
        with_reference=args.with_reference,
    )
    directory = Path(args.dir) if args.dir else settings.samples.jsonl.directory
    stats = export(
        directory,
        Path(args.out),
        args.format,
        filters,
        byoi=args.byoi,
        identifier=args.model_identifier,
    )
    print(f"guardline: {stats.summary()}", file=sys.stderr)


_DEMO_BANNER = """
Guardline demo: proxy {url}  ->  upstream simulator {sim}

Point your SDK at the proxy; nothing else changes:
  OpenAI:    OpenAI(base_url="{url}/v1", api_key="sk-demo")
  Anthropic: Anthropic(base_url="{url}", api_key="demo")

Or with curl:
  curl -s {url}/v1/chat/completions -H 'content-type: application/json' \\
       -H 'authorization: Bearer sk-demo' \\
       -d '{{"model": "gpt-4o-mini", "messages": [{{"role": "user", "content": "Hello"}}]}}'

  curl -sN {url}/v1/messages -H 'content-type: application/json' \\
       -H 'x-api-key: demo' -H 'anthropic-version: 2023-06-01' \\
       -d '{{"model": "claude-haiku-4-5", "max_tokens": 64, "stream": true,
            "messages": [{{"role": "user", "content": "Hello [sim:pii]"}}]}}'

The simulator answers deterministically. Put [sim:pii], [sim:toxic] or [sim:stereotype] in a
prompt (or send x-sim-scenario) for scripted content; x-sim-fault: 429|500|slow|hang|
disconnect|malformed|truncate injects faults. Health: {url}/healthz. Ctrl+C stops.

Guardrails monitor by default (traffic unchanged, findings recorded). To see guard mode:
  GUARDLINE_POLICY__RESPONSE__PII__MODE=guard \
  GUARDLINE_POLICY__RESPONSE__TOXICITY__MODE=guard \
  GUARDLINE_POLICY__RESPONSE__TOXICITY__ACTION=block make demo
"""


def _datasets_consume(args: argparse.Namespace) -> None:
    import signal  # noqa: PLC0415
    import threading  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    from guardline.exporters.consumer import DatasetConsumer, source_from_settings  # noqa: PLC0415

    settings = load_settings(args.config, _overrides(args, "log_level"))
    configure(settings.log_level, settings.log_format)
    source = source_from_settings(
        settings, bootstrap_servers=args.bootstrap_servers, topic=args.topic
    )
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    out = Path(args.out) if args.out else settings.samples.jsonl.directory
    log.info(
        "consuming %s from %s into %s", source["topic"], ",".join(source["bootstrap_servers"]), out
    )
    consumer = DatasetConsumer(
        **source,
        out_dir=out,
        group=args.group,
        prefix=args.prefix,
        max_file_bytes=settings.samples.jsonl.max_file_bytes,
    )
    stats = consumer.run(stop=stop, max_idle=args.max_idle)
    print(
        f"guardline: consumed {stats.consumed}, written {stats.written}, rejected "
        f"{stats.rejected}, outages {stats.outages}",
        file=sys.stderr,
    )
