"""Sample datasets out for offline evaluation: AWS FMEval and Amazon Bedrock JSON Lines.

Reading (``read_dataset``): every writer's files in a dataset directory (``jsonl.files``).
Exchange records are joined with their feedback by ``request_id``; the joined record's
``reference`` is the feedback's ``correction``. Delivery is at least once, so an exchange
record seen again (same ``request_id``) is dropped and counted, and so is a feedback record
identical to one already read; of distinct feedback records for one exchange the latest (by
``time``; of equal times, the last read) wins, as a later post replaces an earlier one in
the proxy's metrics. A line that is not a version-1 record is skipped, counted and logged by
file and line number, never by content.

Exporting (``export``): filters, then one JSON object per line, UTF-8 without a BOM, no
blank lines, written to temporary files and renamed into place. Records with a reference
come first, then those without, each in time order: FMEval takes a file's columns from its
first line, so a first line without ``target_output`` would lose that column altogether.

``fmeval``
    ``model_input`` (prompt), ``model_output`` (response), ``target_output`` (only when a
    reference is known), ``category`` and ``request_id``.
``bedrock``
    ``prompt``, ``referenceResponse`` (only when known), ``category``; with ``byoi``
    also ``modelResponses: [{"response", "modelIdentifier"}]`` (exactly one entry, one
    identifier for the whole export). Bedrock takes at most 1000 prompts per dataset, so
    a longer export is split into parts: ``out.jsonl``, ``out-0002.jsonl``, ...

A record's ``category`` is the category of its highest-scoring finding (among the
findings whose category was asked for, when the export is filtered by category; the
first such finding on a tie), or ``none`` when it has no finding.

Text that redaction withheld (``content.WITHHELD``) is never exported as if it were real
text: a record whose exported prompt or response is (or contains) the marker is skipped
and counted; a withheld correction is simply no reference.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, get_args

import orjson

from guardline.errors import GuardlineError
from guardline.exporters.content import WITHHELD
from guardline.exporters.jsonl import files
from guardline.exporters.samples import SCHEMA_VERSION, Reason

log = logging.getLogger("guardline.samples")

Format = Literal["fmeval", "bedrock"]
FORMATS: tuple[Format, ...] = get_args(Format)
NO_CATEGORY = "none"
"""The category of a record without findings, in the output and in ``--category``."""
BEDROCK_MAX_PROMPTS = 1000
"""Prompts per dataset file Bedrock model evaluation accepts."""
IDENTIFIER = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9._-]{0,255}")
"""Bedrock's pattern for a precomputed inference source, which ``modelIdentifier`` must
match (the job names its source by it)."""

_DURATION = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_NOT_IDENTIFIER = re.compile(r"[^a-zA-Z0-9._-]+")
_BAD_LINES_LOGGED = 20
_SKIPS = ("withheld prompt", "withheld response", "empty prompt", "empty response")


class DatasetError(GuardlineError):
    """A dataset cannot be read or exported as asked; the message says why and what to do."""

    code = "dataset_error"


# time ---------------------------------------------------------------------------------


def parse_when(text: str, now: datetime | None = None) -> datetime:
    """An instant from ISO 8601 (a date is its midnight UTC; a time without an offset is
    UTC) or a duration back from ``now`` (``90m``, ``24h``, ``7d``; also ``s`` and ``w``)."""
    text = text.strip()
    duration = _DURATION.fullmatch(text)
    if duration:
        amount, unit = duration.groups()
        ago = timedelta(**{_UNITS[unit]: int(amount)})
        return (now or datetime.now(UTC)) - ago
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"not an ISO 8601 date or time, nor a duration like 90m, 24h or 7d: {text!r}"
        ) from None
    return _utc(when)


def _utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


# filtering ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    """Which samples to export. ``since`` is inclusive and ``until`` exclusive, both on the
    record's ``time``; ``categories`` match a record with any finding of one of them (a
    record without findings matches ``none``); ``selected`` is the reason a record was
    kept; ``model`` the model the request named; ``with_reference`` keeps only records
    whose feedback gave a reference (accuracy evaluations need one on every line). Unset
    filters match everything."""

    since: datetime | None = None
    until: datetime | None = None
    categories: frozenset[str] = frozenset()
    selected: Reason | None = None
    model: str | None = None
    with_reference: bool = False

    def match(self, sample: Sample) -> bool:
        """All but ``with_reference``, which only the joined record can answer."""
        record = sample.record
        return (
            (self.since is None or sample.time >= self.since)
            and (self.until is None or sample.time < self.until)
            and (self.selected is None or record["selected"] == self.selected)
            and (self.model is None or record.get("model") == self.model)
            and (not self.categories or bool(self.categories & _categories(record)))
        )


# reading ------------------------------------------------------------------------------


@dataclass
class ReadStats:
    files: int = 0
    bad_lines: int = 0
    """Lines that are not version-1 sample records (not JSON, a field of the wrong type,
    an unknown kind or schema version): skipped."""
    duplicates: int = 0
    """Exchange records seen again (at-least-once delivery): dropped."""
    duplicate_feedback: int = 0
    orphan_feedback: int = 0
    """Feedback whose exchange is not in the directory (not selected, or not yet written)."""
    outside: int = 0
    """Exchange records the filters left out."""


@dataclass(frozen=True)
class Sample:
    """A joined exchange record and its parsed time."""

    record: dict[str, Any]
    time: datetime


def read_dataset(directory: Path, filters: Filters | None = None) -> tuple[list[Sample], ReadStats]:
    """The exchange records of every writer's files in ``directory`` that pass
    ``filters``, joined with their feedback and de-duplicated, ordered by time (then
    request id). Only those (and the feedback) are held in memory."""
    if not directory.is_dir():
        raise DatasetError(
            f"no dataset directory {str(directory)!r} (--dir, or samples.jsonl.directory "
            "in the settings)"
        )
    paths = files(directory)
    lines = ((f"{path} line", n, line) for path in paths for n, line in _lines(path))
    samples, stats = join_records(lines, filters)
    stats.files = len(paths)
    if stats.bad_lines > _BAD_LINES_LOGGED:
        log.warning("%d bad lines skipped in %s in all", stats.bad_lines, directory)
    return samples, stats


def join_records(
    lines: Iterable[tuple[str, int, bytes]], filters: Filters | None = None
) -> tuple[list[Sample], ReadStats]:
    """``read_dataset`` over any source of ``(where, position, line)`` (``("<file> line",
    12, ...)``, ``("<topic> partition 0 offset", 812, ...)``): the sample records joined,
    de-duplicated and filtered."""
    filters = filters or Filters()
    stats = ReadStats()
    seen: set[str] = set()
    exchanges: dict[str, Sample] = {}
    feedback: dict[str, list[tuple[datetime, dict[str, Any]]]] = {}
    for where, number, line in lines:
        record, problem = _parse(line)
        if record is None:
            stats.bad_lines += 1
            if stats.bad_lines <= _BAD_LINES_LOGGED:
                log.warning("%s %d skipped: %s", where, number, problem)
            continue
        rid = record["request_id"]
        when = _utc(datetime.fromisoformat(record["time"]))
        if record["kind"] == "exchange":
            sample = Sample(record, when)
            if rid in seen:
                stats.duplicates += 1
            elif filters.match(sample):
                exchanges[rid] = sample
            else:
                stats.outside += 1
            seen.add(rid)
        else:
            posts = feedback.setdefault(rid, [])
            if any(record == earlier for _, earlier in posts):
                stats.duplicate_feedback += 1
            else:
                posts.append((when, record))
    for rid, posts in feedback.items():
        if rid not in seen:
            stats.orphan_feedback += len(posts)
        if rid not in exchanges:
            continue
        # The latest by time; of a tie, the last read (a writer's file and a Kafka
        # partition, where one id's records all go, are in the order they were posted).
        latest = max(reversed(posts), key=lambda post: post[0])[1]["feedback"]
        exchanges[rid].record["feedback"] = latest
        if _real(latest.get("correction")):
            exchanges[rid].record["reference"] = latest["correction"]
    joined: list[Sample] = []
    for sample in exchanges.values():
        if not _real(sample.record.get("reference")):  # a withheld text is no reference
            sample.record["reference"] = None
        if filters.with_reference and sample.record["reference"] is None:
            stats.outside += 1
        else:
            joined.append(sample)
    return sorted(joined, key=lambda s: (s.time, s.record["request_id"])), stats


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as file:
        for number, line in enumerate(file, 1):
            if line.strip():  # a blank line carries nothing to count
                yield number, line


def _parse(line: bytes) -> tuple[dict[str, Any] | None, str]:
    """The record of a line, or None and why not."""
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None, "not JSON (a torn or foreign line)"
    if not isinstance(record, dict):
        return None, "not a JSON object"
    version = record.get("schema_version")
    if version != SCHEMA_VERSION:
        return None, f"schema_version {version!r} (this reader knows {SCHEMA_VERSION})"
    kind = record.get("kind")
    if kind == "exchange":
        problem = _check(record, _EXCHANGE) or _check_findings(record["findings"])
    elif kind == "feedback":
        problem = _check(record, _FEEDBACK) or _check(record["feedback"], _FEEDBACK_BODY)
    else:
        problem = f"unknown kind {kind!r}"
    if problem is None and not _is_time(record["time"]):
        problem = "time is not ISO 8601"
    return (None, problem) if problem else (record, "")


# Field -> (required, types). Required strings must not be empty either.
_Types = Mapping[str, tuple[bool, tuple[type, ...]]]
_EXCHANGE: _Types = {
    "request_id": (True, (str,)),
    "client_request_id": (False, (str,)),  # absent from records written before it existed
    "time": (True, (str,)),
    "selected": (True, (str,)),
    "model": (False, (str,)),
    "prompt": (False, (str,)),
    "response": (False, (str,)),
    "reference": (False, (str,)),
    "findings": (True, (list,)),
}
_FEEDBACK: _Types = {
    "request_id": (True, (str,)),
    "time": (True, (str,)),
    "feedback": (True, (dict,)),
}
_FEEDBACK_BODY: _Types = {"correction": (False, (str,))}


def _check(record: Mapping[str, Any], types: _Types) -> str | None:
    for key, (required, allowed) in types.items():
        value = record.get(key)
        if value is None and not required:
            continue
        if not isinstance(value, allowed) or (required and value == ""):
            names = " or ".join(t.__name__ for t in allowed)
            return f"{key} is {'missing or ' if required else ''}not a {names}"
    return None


def _check_findings(findings: list[Any]) -> str | None:
    for finding in findings:
        if not (
            isinstance(finding, dict)
            and isinstance(finding.get("category"), str)
            and isinstance(finding.get("score"), int | float)
        ):
            return "a finding without a category or a score"
    return None


def _is_time(text: str) -> bool:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def _real(text: object) -> bool:
    """True for text worth exporting: not empty, not (or not partly) withheld."""
    return isinstance(text, str) and bool(text.strip()) and WITHHELD not in text


def _categories(record: Mapping[str, Any]) -> set[str]:
    return {f["category"] for f in record["findings"]} or {NO_CATEGORY}


def category(record: Mapping[str, Any], wanted: Iterable[str] = ()) -> str:
    """The category of the highest-scoring finding (among those of a ``wanted`` category,
    if any are given; the first on a tie); ``none`` without findings."""
    wanted = frozenset(wanted)
    findings = [f for f in record["findings"] if not wanted or f["category"] in wanted]
    if not findings:
        return NO_CATEGORY
    return str(max(findings, key=lambda f: f["score"])["category"])


# rows ---------------------------------------------------------------------------------


def fmeval_row(record: Mapping[str, Any], wanted: Iterable[str] = ()) -> dict[str, str]:
    row = {"model_input": record["prompt"], "model_output": record["response"]}
    if record.get("reference") is not None:
        row["target_output"] = record["reference"]
    row["category"] = category(record, wanted)
    row["request_id"] = record["request_id"]
    return row


def bedrock_row(
    record: Mapping[str, Any], wanted: Iterable[str] = (), identifier: str | None = None
) -> dict[str, Any]:
    """A custom prompt dataset line; with ``identifier``, a bring-your-own-inference one.
    Only the documented keys (Bedrock does not say it tolerates others)."""
    row: dict[str, Any] = {"prompt": record["prompt"]}
    if record.get("reference") is not None:
        row["referenceResponse"] = record["reference"]
    row["category"] = category(record, wanted)
    if identifier is not None:
        row["modelResponses"] = [{"response": record["response"], "modelIdentifier": identifier}]
    return row


def model_identifier(model: str | None) -> str:
    """A record's model as a Bedrock ``modelIdentifier``: characters outside
    ``[a-zA-Z0-9._-]`` become ``-``, leading punctuation goes, 256 characters at most."""
    text = _NOT_IDENTIFIER.sub("-", model or "").lstrip("._-")[:256]
    if not IDENTIFIER.fullmatch(text):
        raise DatasetError(
            f"cannot make a Bedrock model identifier of model {model!r}: pass --model-identifier"
        )
    return text


# exporting ----------------------------------------------------------------------------


@dataclass
class ExportStats:
    read: ReadStats = field(default_factory=ReadStats)
    skipped: Counter[str] = field(default_factory=Counter)
    """Records that matched but cannot be exported, by reason."""
    written: int = 0
    paths: list[Path] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)
    """Parts of an earlier, longer export to the same name, deleted."""

    def summary(self) -> str:
        """One line: written, where, and what was skipped why."""
        names = ", ".join(str(p) for p in self.paths)
        text = (
            f"wrote {self.written} records to {names} "
            f"({len(self.paths)} {'file' if len(self.paths) == 1 else 'files'}); " + self.accounts()
        )
        if self.removed:
            text += f"; removed {len(self.removed)} stale parts of an earlier export"
        return text

    def accounts(self) -> str:
        """What was skipped why, what the filters left out, and files read."""
        skipped = Counter(self.skipped)
        skipped.update(
            {
                "bad lines": self.read.bad_lines,
                "duplicate records": self.read.duplicates,
                "duplicate feedback": self.read.duplicate_feedback,
                "feedback without its exchange": self.read.orphan_feedback,
            }
        )
        order = {reason: n for n, reason in enumerate(_SKIPS)}
        reasons = ", ".join(
            f"{skipped[reason]} {reason}"
            for reason in sorted(skipped, key=lambda r: (order.get(r, len(order)), r))
            if skipped[reason]
        )
        return (
            f"skipped: {reasons or 'none'}; {self.read.outside} outside the filters; "
            f"read {self.read.files} dataset files"
        )


def export(
    directory: Path,
    out: Path,
    fmt: Format,
    filters: Filters | None = None,
    *,
    byoi: bool = False,
    identifier: str | None = None,
) -> ExportStats:
    """Write the samples of ``directory`` that pass ``filters`` to ``out`` (and, for
    Bedrock over 1000 prompts, its numbered parts) in format ``fmt``."""
    filters = filters or Filters()
    _check_options(directory, out, fmt, byoi, identifier)
    samples, read = read_dataset(directory, filters)
    stats = ExportStats(read=read)
    chosen: list[dict[str, Any]] = []
    with_response = fmt == "fmeval" or byoi
    for sample in samples:
        reason = _unexportable(sample.record, with_response)
        if reason:
            stats.skipped[reason] += 1
        else:
            chosen.append(sample.record)
    if not chosen:
        raise DatasetError(f"nothing to export from {directory}: {stats.accounts()}")
    if byoi and identifier is None:
        identifier = _one_identifier(chosen)
    # FMEval's loader takes a file's columns from its first line: were it to lack a
    # reference, every target_output would be lost. So records with one come first.
    chosen.sort(key=lambda r: r["reference"] is None)  # stable: each part in time order
    wanted = filters.categories
    if fmt == "fmeval":
        rows: list[Mapping[str, Any]] = [fmeval_row(r, wanted) for r in chosen]
        per_file = len(rows)  # FMEval has no limit
    else:
        rows = [bedrock_row(r, wanted, identifier if byoi else None) for r in chosen]
        per_file = BEDROCK_MAX_PROMPTS
    stats.paths, stats.removed = write_parts(out, rows, per_file)
    stats.written = len(rows)
    return stats


def _check_options(
    directory: Path, out: Path, fmt: Format, byoi: bool, identifier: str | None
) -> None:
    if fmt not in FORMATS:
        raise DatasetError(f"unknown format {fmt!r}: one of {', '.join(FORMATS)}")
    if out.suffix != ".jsonl":
        # Bedrock takes only .jsonl, FMEval .jsonl or .json.
        raise DatasetError(f"--out must end in .jsonl, not {out.name!r}")
    if out.resolve().parent == directory.resolve():
        # Parts of an export could look like (and their cleanup touch) dataset files.
        raise DatasetError(f"--out {out} is inside the dataset directory: write it elsewhere")
    if byoi and fmt != "bedrock":
        raise DatasetError("--byoi is for --format bedrock (FMEval rows always hold the response)")
    if identifier is not None:
        if not byoi:
            raise DatasetError("--model-identifier needs --byoi")
        if not IDENTIFIER.fullmatch(identifier):
            raise DatasetError(
                f"--model-identifier {identifier!r} must match {IDENTIFIER.pattern} "
                "(Bedrock's pattern for the inference source it names)"
            )


def _unexportable(record: Mapping[str, Any], with_response: bool) -> str | None:
    prompt = record.get("prompt")
    if isinstance(prompt, str) and WITHHELD in prompt:
        return "withheld prompt"
    if not _real(prompt):
        return "empty prompt"
    if with_response:
        response = record.get("response")
        if isinstance(response, str) and WITHHELD in response:
            return "withheld response"
        if not _real(response):
            return "empty response"
    return None


def _one_identifier(records: Sequence[Mapping[str, Any]]) -> str:
    """Bedrock allows one model identifier per job, so the records must share a model."""
    models = sorted({str(r.get("model")) for r in records})
    if len(models) > 1:
        shown = ", ".join(models[:5]) + (", ..." if len(models) > 5 else "")
        raise DatasetError(
            f"the records come from {len(models)} models ({shown}) and a Bedrock evaluation "
            "job takes one: export one at a time with --model, or name them all with "
            "--model-identifier"
        )
    return model_identifier(records[0].get("model"))


def part_paths(out: Path, count: int) -> list[Path]:
    """``out``, then ``<stem>-0002.jsonl``, ``<stem>-0003.jsonl``, ..."""
    return [out] + [out.with_name(f"{out.stem}-{n:04d}{out.suffix}") for n in range(2, count + 1)]


def write_parts(
    out: Path, rows: Sequence[Mapping[str, Any]], per_file: int
) -> tuple[list[Path], list[Path]]:
    """Write ``rows``, at most ``per_file`` to a file, each file to a temporary name first
    and all renamed only once all are written; delete higher-numbered parts left by an
    earlier export to the same name (they would be taken for part of this one). The
    files written and the stale parts deleted."""
    out.parent.mkdir(parents=True, exist_ok=True)
    chunks = [rows[i : i + per_file] for i in range(0, len(rows), max(per_file, 1))] or [rows]
    paths = part_paths(out, len(chunks))
    temporaries: list[str] = []
    try:
        for chunk in chunks:
            fd, name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
            temporaries.append(name)
            os.fchmod(fd, 0o640)  # as the dataset files are (mkstemp makes 0600)
            with os.fdopen(fd, "wb") as file:
                file.writelines(orjson.dumps(row) + b"\n" for row in chunk)
                file.flush()
                os.fsync(file.fileno())
        for name, path in zip(temporaries, paths, strict=True):
            os.replace(name, path)
    finally:
        for name in temporaries:
            Path(name).unlink(missing_ok=True)
    stale = re.compile(re.escape(out.stem) + r"-(\d{4})" + re.escape(out.suffix))
    removed: list[Path] = []
    for path in sorted(out.parent.glob(f"{out.stem}-*{out.suffix}")):
        numbered = stale.fullmatch(path.name)
        if numbered and int(numbered.group(1)) > len(paths):
            path.unlink()
            removed.append(path)
    return paths, removed
