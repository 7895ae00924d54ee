"""``POST /v1/feedback``: explicit feedback on a call, attributed by its signed request id.

The body is ``{"request_id", "outcome", "score"?, "retained_fraction"?, "comment"?}``:

``request_id``
    The ``x-guardline-request-id`` the proxy answered the call with (a signed token).
``outcome``
    ``accepted``, ``rejected`` or ``edited``.
``score``, ``retained_fraction``
    Optional numbers in [0, 1] (``null`` is the same as absent).
``comment``
    Optional text, at most 2000 characters. Free text may hold personal data: it is handed
    to the sinks only (PII-redacted in samples), never exported as a label, never logged.
``correction``
    Optional text, at most 20000 characters: what the answer should have been (an edited
    response, say). It becomes the sample's reference answer (FMEval ``target_output``,
    Bedrock ``referenceResponse``); redacted like the comment.

Unknown fields are refused, so a misspelt field is an error rather than lost data. The
endpoint answers ``202`` with ``{"status": "accepted", "request_id": <plain id>,
"replaced": <bool>}``: the feedback is recorded, and reaches the exporters at their next
collection.

One call counts once. A later post on the same request id replaces the earlier one: the
metrics count every post and, for a post that replaced one, the earlier post as
superseded (``guardline.feedback.superseded``, by its outcome), so counters only grow and
each call's latest feedback is the difference; ``replaced`` says so in the answer. Each
process remembers the last feedback of ``feedback.memory`` request ids (outcome and
numbers, never text) for at most ``feedback.max_age`` (:class:`FeedbackMemory`). There is
no shared store: a second post that lands on another replica, or another worker of
``serve --workers N``, or after the first was forgotten, is not recognised and both posts
count. Sample records carry every post either way, and dataset readers keep the latest
one, so datasets are right even then.
"""

from __future__ import annotations

import logging
import math
import time
import traceback
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, cast

import orjson
from starlette.types import Receive, Scope, Send

from guardline.errors import GuardlineError, MalformedRequestError, RequestError
from guardline.proxy.adapters import ADAPTERS, provider_for
from guardline.proxy.endpoint import ClientDisconnectedError, body_chunks, send_error, send_json
from guardline.proxy.headers import new_request_id
from guardline.proxy.signing import Attribution, RequestSigner
from guardline.proxy.transport import Header

log = logging.getLogger("guardline.proxy")

Outcome = Literal["accepted", "rejected", "edited"]
OUTCOMES: tuple[Outcome, ...] = ("accepted", "rejected", "edited")
MAX_COMMENT_CHARS = 2000
MAX_CORRECTION_CHARS = 20_000
_FIELDS = frozenset(
    {"request_id", "outcome", "score", "retained_fraction", "comment", "correction"}
)


@dataclass(frozen=True, slots=True)
class Feedback:
    """One feedback post, validated."""

    outcome: Outcome
    score: float | None
    """In [0, 1]."""
    retained_fraction: float | None
    """Share of the response the user kept, in [0, 1]."""
    comment: str | None
    """Free text: never a label, never logged."""
    correction: str | None = None
    """What the answer should have been: never a label, never logged."""

    def __repr__(self) -> str:
        # Keeps free text out of logs and tracebacks that print the object.
        comment = None if self.comment is None else f"<{len(self.comment)} chars>"
        correction = None if self.correction is None else f"<{len(self.correction)} chars>"
        return (
            f"Feedback(outcome={self.outcome!r}, score={self.score!r}, "
            f"retained_fraction={self.retained_fraction!r}, comment={comment}, "
            f"correction={correction})"
        )


FeedbackSink = Callable[[Attribution, Feedback, Feedback | None], None]
"""Records one attributed feedback (updates metrics), with the earlier feedback on the same
request id it replaces (None: none known); expected not to raise."""
FeedbackSamples = Callable[[str, Feedback], Awaitable[None]]
"""Hands feedback on a request id to the samples pipeline; expected not to raise."""


DEFAULT_MEMORY = 50_000
"""Request ids remembered by default (``feedback.memory``): about 15 MB per process."""
_Entry = tuple[float, Outcome, float | None, float | None]


class FeedbackMemory:
    """The last feedback on each recent request id, in this process: what a later post on
    the same id replaces.

    Bounded by count (least recently posted forgotten first) and by age: an id whose token
    has expired can take no more feedback, so it is forgotten once its ``issued +
    max_age`` has passed (at the latest ``max_age`` after its last post). Only outcome,
    score and retained fraction are kept, never the free text.
    """

    __slots__ = ("_clock", "_entries", "capacity", "max_age")

    def __init__(
        self, capacity: int, *, max_age: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.capacity = capacity
        self.max_age = max_age
        self._clock = clock
        # request id -> (unix time it expires, outcome, score, retained fraction): a
        # tuple is about half the size of a Feedback (~300 bytes an entry in all).
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def last(self, request_id: str) -> Feedback | None:
        """The feedback last remembered for ``request_id`` (no free text), if any."""
        entry = self._entries.get(request_id)
        if entry is None:
            return None
        expires, outcome, score, retained = entry
        if expires < self._clock():
            del self._entries[request_id]
            return None
        return Feedback(outcome, score, retained, None)

    def remember(self, attribution: Attribution, feedback: Feedback) -> None:
        """``feedback`` is now the last on ``attribution``'s request id."""
        if self.capacity <= 0:
            return
        entries = self._entries
        rid = attribution.request_id
        expires = float(attribution.issued + self.max_age)
        entries[rid] = (expires, feedback.outcome, feedback.score, feedback.retained_fraction)
        entries.move_to_end(rid)
        while len(entries) > self.capacity:
            entries.popitem(last=False)
        now = self._clock()
        while entries:
            oldest = next(iter(entries.values()))
            if oldest[0] >= now:
                break
            entries.popitem(last=False)


def parse_feedback(body: bytes) -> tuple[str, Feedback]:
    """The request-id token and the feedback of a body; MalformedRequestError naming the
    bad field otherwise."""
    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise MalformedRequestError("The feedback body is not valid UTF-8.") from None
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise MalformedRequestError(
            f"We could not parse the JSON body of your feedback ({exc.msg})."
        ) from None
    if not isinstance(parsed, dict):
        raise MalformedRequestError("The feedback body must be a JSON object.")
    unknown = sorted(set(parsed) - _FIELDS)
    if unknown:
        names = ", ".join(repr(name[:64]) for name in unknown[:5])
        raise _invalid(
            f"Unknown feedback field(s) {names}; the fields are request_id, outcome, score, "
            "retained_fraction, comment and correction."
        )
    token = parsed.get("request_id")
    if token is None:
        raise _invalid("'request_id' is required: the x-guardline-request-id of the call.")
    if not isinstance(token, str) or not token:
        raise _invalid("'request_id' must be a non-empty string.")
    outcome = parsed.get("outcome")
    if outcome is None:
        raise _invalid("'outcome' is required: one of accepted, rejected, edited.")
    if outcome not in OUTCOMES:
        raise _invalid("'outcome' must be one of accepted, rejected, edited.")
    feedback = Feedback(
        outcome=cast(Outcome, outcome),
        score=_fraction(parsed, "score"),
        retained_fraction=_fraction(parsed, "retained_fraction"),
        comment=_text(parsed, "comment", MAX_COMMENT_CHARS),
        correction=_text(parsed, "correction", MAX_CORRECTION_CHARS),
    )
    return token, feedback


def _text(parsed: dict[str, Any], name: str, limit: int) -> str | None:
    value = parsed.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _invalid(f"'{name}' must be a string.")
    if len(value) > limit:
        raise _invalid(f"'{name}' is longer than {limit} characters.")
    return value


def _fraction(parsed: dict[str, Any], name: str) -> float | None:
    value = parsed.get(name)
    if value is None:
        return None
    # bool is an int to Python, not a number to a client.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _invalid(f"'{name}' must be a number between 0 and 1.")
    number = float(value)
    if not math.isfinite(number) or not 0.0 <= number <= 1.0:
        raise _invalid(f"'{name}' must be between 0 and 1.")
    return number


def _invalid(message: str) -> MalformedRequestError:
    return MalformedRequestError(message, code="invalid_feedback")


class FeedbackEndpoint:
    """Raw ASGI endpoint for ``POST /v1/feedback``.

    Errors come in the caller's provider format (Anthropic's when the call carries
    ``anthropic-version``, OpenAI's otherwise).
    """

    def __init__(
        self,
        signer: RequestSigner,
        sink: FeedbackSink,
        *,
        samples: FeedbackSamples | None = None,
        max_body_bytes: int = 64 * 1024,
        memory: FeedbackMemory | None = None,
    ) -> None:
        self._signer = signer
        self._sink = sink
        self._samples = samples
        self._max_body_bytes = max_body_bytes
        if memory is None:
            memory = FeedbackMemory(DEFAULT_MEMORY, max_age=signer.max_age, clock=signer.clock)
        self.memory = memory

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers: list[Header] = scope["headers"]
        adapter = ADAPTERS[provider_for(scope["path"], headers)]
        rid = new_request_id()
        try:
            if scope["method"] != "POST":
                raise _method_not_allowed(scope["method"])
            chunks = body_chunks(receive, headers, self._max_body_bytes, "Feedback")
            body = b"".join([chunk async for chunk in chunks])
            token, feedback = parse_feedback(body)
            attribution = self._signer.verify(token)
            # No await from here to remember(): posts on one id cannot interleave.
            replaced = self.memory.last(attribution.request_id)
            self._record(attribution, feedback, replaced)
            self.memory.remember(attribution, feedback)  # only once it was recorded
            if self._samples is not None:
                await self._samples(attribution.request_id, feedback)
        except ClientDisconnectedError:
            return  # the client went away
        except GuardlineError as err:
            extra = [(b"allow", b"POST")] if err.status == 405 else []
            await send_error(send, adapter, err, rid, extra)
            return
        answer = {
            "status": "accepted",
            "request_id": attribution.request_id,
            "replaced": replaced is not None,
        }
        await send_json(send, 202, orjson.dumps(answer), rid)

    def _record(
        self, attribution: Attribution, feedback: Feedback, replaced: Feedback | None
    ) -> None:
        try:
            self._sink(attribution, feedback, replaced)
        except Exception as exc:
            # Neither the exception's text nor its traceback's source lines are logged:
            # either could quote the comment. Where it was raised is enough to find it.
            where = traceback.extract_tb(exc.__traceback__)[-1]
            log.error(
                "feedback sink failed with %s at %s:%s in %s; feedback for request_id=%s "
                "(route=%s model=%s app=%s outcome=%s) was not recorded",
                type(exc).__name__,
                where.filename,
                where.lineno,
                where.name,
                attribution.request_id,
                attribution.route,
                attribution.model,
                attribution.app,
                feedback.outcome,
            )
            raise GuardlineError(
                "Guardline could not record this feedback; please retry.", code="feedback_error"
            ) from None


def _method_not_allowed(method: str) -> RequestError:
    # errors.py has no 405 class: this is the one place that answers it.
    err = RequestError(f"/v1/feedback takes POST, not {method}.", code="method_not_allowed")
    err.status = 405
    return err
