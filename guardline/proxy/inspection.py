"""Applying the policy to one exchange: guard-mode scans inline, monitor-mode scans in one
background task per exchange, started once the response is on its way to the client
(``release``) and drained before the exchange is recorded."""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
import itertools
import logging
from collections import Counter, deque
from collections.abc import Sequence
from typing import Any

from guardline.detectors.base import Direction, Finding
from guardline.detectors.guardrails import Guardrails
from guardline.detectors.policy import Policy, Verdict, judge
from guardline.detectors.redaction import resolve
from guardline.errors import GuardrailBlockedError, GuardrailError
from guardline.exchange import Exchange
from guardline.proxy.adapters import Text, fields
from guardline.settings import Provider

log = logging.getLogger("guardline.proxy")

FINDINGS_HEADER = b"x-guardline-findings"
_DRAIN_SECONDS = 30.0


class Inspector:
    def __init__(self, guardrails: Guardrails, policy: Policy, exchange: Exchange) -> None:
        self.guardrails = guardrails
        self.policy = policy
        self.exchange = exchange
        self._queue: deque[tuple[Direction, str, int, int | None]] = deque()
        self._task: asyncio.Task[None] | None = None
        # Held until the response's first bytes are sent: the loop has one thread, so a
        # prompt scanned while the upstream answers would delay relaying that answer.
        self._held = True

    def guarding(self, direction: Direction) -> bool:
        return bool(self.policy.names(direction, "guard"))

    def monitoring(self, direction: Direction) -> bool:
        return bool(self.policy.names(direction, "monitor"))

    async def verdict(
        self, direction: Direction, text: str, start: int = 0, end: int | None = None
    ) -> Verdict:
        """Guard-mode scan of ``text[start:end]`` and the policy's verdict (no side effects)."""
        names = self.policy.names(direction, "guard")
        if not names:
            return Verdict()
        scan = await self.guardrails.scanner.scan(text, names, direction, start, end)
        return judge(scan, self.policy.rules(direction))

    def enforce(self, direction: Direction, verdict: Verdict, until: int | None = None) -> None:
        """Record the verdict's findings (those ending by ``until``); raise when the policy
        stops the call."""
        self.exchange.findings += [f for f in verdict.findings if until is None or f.end <= until]
        if verdict.failed is not None:
            raise GuardrailError(verdict.failed)
        if verdict.blocked is not None:
            self.exchange.act("block")
            raise GuardrailBlockedError(
                verdict.blocked.detector, verdict.blocked.category, direction
            )

    def watch(
        self, direction: Direction, text: str, start: int = 0, end: int | None = None
    ) -> None:
        """Monitor-mode scan of ``text[start:end]``, off the critical path."""
        if not self.monitoring(direction) or start >= (len(text) if end is None else end):
            return
        self._queue.append((direction, text, start, end))
        if not self._held:
            self._start()

    def release(self) -> None:
        """The response is on its way: monitor scans may take the loop now."""
        if self._held:
            self._held = False
            if self._queue:
                self._start()

    def _start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._work())

    async def guard_texts(self, direction: Direction, refs: Sequence[Text]) -> list[Text]:
        """Watch and guard ``refs`` inline, as one text (joined by newlines, so each
        keeps its own sentences); rewrite those the policy redacts. Returns the rewritten
        ones. A redaction in signed text follows ``policy.signed_thinking``."""
        texts = [ref.get() for ref in refs]
        if not any(texts):
            return []
        joined = "\n".join(texts)
        self.watch(direction, joined)
        verdict = await self.verdict(direction, joined)
        self.enforce(direction, verdict)
        if not verdict.redact:
            return []
        starts = list(itertools.accumulate((len(t) + 1 for t in texts), initial=0))
        spans: dict[int, list[Finding]] = {}
        for finding in resolve(verdict.redact):
            # A finding is cut at the newlines that join texts: each text redacts its part.
            first = bisect.bisect_right(starts, finding.start) - 1
            for i in range(first, len(texts)):
                if starts[i] >= finding.end:
                    break
                begin = max(finding.start, starts[i])
                end = min(finding.end, starts[i] + len(texts[i]))
                if begin >= end:
                    continue
                local = dataclasses.replace(finding, start=begin - starts[i], end=end - starts[i])
                spans.setdefault(i, []).append(local)
        changed: list[Text] = []
        for i, found in spans.items():
            ref = refs[i]
            if ref.signed and self.guardrails.signed_thinking == "block":
                self.exchange.act("block")
                raise GuardrailBlockedError(found[0].detector, found[0].category, direction)
            ref.set(self.guardrails.redactor.apply(texts[i], found))
            changed.append(ref)
        self.exchange.act("redact", sum(len(found) for found in spans.values()))
        return changed

    async def guard_body(
        self,
        direction: Direction,
        body: dict[str, Any],
        provider: Provider,
        extra: Sequence[Text] = (),
    ) -> bool:
        """Guard every string of a parsed body (``fields``), the tokens of its
        log-probabilities and ``extra`` texts of the same call (query, headers), in one
        pass; logprobs beside rewritten text are dropped. True when something was
        rewritten."""
        scopes = fields.logprob_scopes(body)
        tokens = [fields.TokensRef(scope) for scope in scopes]
        refs = [*fields.texts(body, provider), *tokens, *extra]
        changed = await self.guard_texts(direction, refs)
        if changed and scopes:
            altered = {id(getattr(ref, "holder", None)) for ref in changed}
            for scope in scopes:
                if altered & fields.holders(scope):
                    fields.drop_logprobs(scope)
        return bool(changed)

    async def drain(self) -> None:
        """Wait for background scans (bounded); a request never fails because of them."""
        self.release()
        task = self._task
        if task is None or task.done():
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), _DRAIN_SECONDS)
        except TimeoutError:
            log.warning(
                "monitor scans of request %s did not finish in time", self.exchange.request_id
            )
            task.cancel()
        except asyncio.CancelledError:
            task.cancel()
            raise

    async def _work(self) -> None:
        scanner = self.guardrails.scanner
        while self._queue:
            direction, text, start, end = self._queue.popleft()
            names = self.policy.names(direction, "monitor")
            scan = await scanner.scan(text, names, direction, start, end)
            self.exchange.findings += judge(scan, self.policy.rules(direction)).findings
            await asyncio.sleep(0)  # inline detectors never yield: let other calls move


def findings_header(findings: Sequence[Finding]) -> bytes:
    """Categories and counts, never content: ``request.pii.EMAIL_ADDRESS=1,...``."""
    counts = Counter(f"{f.direction}.{f.detector}.{f.category}" for f in findings)
    return ",".join(f"{k}={v}" for k, v in sorted(counts.items())).encode()
