"""Alertmanager's webhook (payload version 4): validation, and which alerts start which
evaluation.

Alertmanager sends a group's alerts again on every ``group_interval`` change, every
``repeat_interval`` and on each retry; an alert's *firing* is identified by its
``fingerprint`` (a hash of its labels) and ``startsAt`` (when it began firing), so the
job key built from both is the same for every repeat of one firing and new for the next.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from guardline.errors import GuardlineError
from guardline.settings import ReevalSettings

MAX_ALERTS = 1000
"""More than Alertmanager's own ``max_alerts`` default (0 = all) ever sends in practice;
a body beyond it is refused, not truncated."""


class PayloadError(GuardlineError):
    """A webhook body that is not Alertmanager's payload version 4."""


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Alert(_Strict):
    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime  # noqa: N815 - Alertmanager's field names
    endsAt: datetime | None = None  # noqa: N815
    generatorURL: str = ""  # noqa: N815
    fingerprint: str = Field(min_length=1, max_length=64)

    @field_validator("labels")
    @classmethod
    def _named(cls, labels: dict[str, str]) -> dict[str, str]:
        if "alertname" not in labels:
            raise ValueError("every alert needs an 'alertname' label")
        return labels

    @field_validator("startsAt", "endsAt")
    @classmethod
    def _utc(cls, when: datetime | None) -> datetime | None:
        if when is not None and when.tzinfo is None:
            raise ValueError("times must carry a time zone (RFC 3339)")
        return None if when is None else when.astimezone(UTC)

    @property
    def name(self) -> str:
        return self.labels["alertname"]

    def key(self) -> str:
        """The same for every notification of this firing, new for the next one."""
        raw = f"{self.fingerprint}|{self.startsAt.isoformat()}"
        return hashlib.sha256(raw.encode()).hexdigest()[:24]


class Payload(_Strict):
    version: Literal["4"]
    status: Literal["firing", "resolved"]
    receiver: str = ""
    groupKey: str  # noqa: N815
    alerts: list[Alert] = Field(max_length=MAX_ALERTS)
    externalURL: str = ""  # noqa: N815
    truncatedAlerts: int = 0  # noqa: N815


def parse_payload(body: bytes) -> Payload:
    """The webhook body, or PayloadError saying what is wrong and where."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PayloadError(f"body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise PayloadError("body must be a JSON object (Alertmanager webhook payload)")
    try:
        return Payload.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        message = str(first["msg"]).removeprefix("Value error, ")
        raise PayloadError(f"{where}: {message}{more}") from None


def evaluation_for(alert: Alert, settings: ReevalSettings) -> tuple[str, float] | None:
    """(evaluation, window seconds) the first matching trigger asks for, or None."""
    for trigger in settings.triggers:
        if trigger.alertnames and alert.name not in trigger.alertnames:
            continue
        if any(alert.labels.get(k) != v for k, v in trigger.labels.items()):
            continue
        evaluation = trigger.evaluation or alert.labels.get("reeval")
        if evaluation:
            return evaluation, trigger.window or settings.window
    return None


def window_of(alert: Alert, seconds: float, now: datetime) -> tuple[datetime, datetime]:
    """The samples to look at: ``seconds`` before the alert began firing, up to the
    notification (the rule's ``for:`` and rate window both lie before ``startsAt``)."""
    since = alert.startsAt - timedelta(seconds=seconds)
    return since, max(now, alert.startsAt)


def describe(alert: Alert) -> Mapping[str, Any]:
    """What a job and its report keep of the alert that started it."""
    return {
        "source": "alertmanager",
        "alertname": alert.name,
        "status": alert.status,
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "fingerprint": alert.fingerprint,
        "starts_at": alert.startsAt.isoformat(),
        "generator_url": alert.generatorURL,
    }
