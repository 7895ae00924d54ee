"""Monitor mode stays off the critical path: its scans start once the response's first
bytes are sent, so a prompt scanned on the event loop never delays relaying the answer."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from guardline.detectors.base import FakeDetector, Finding
from guardline.detectors.guardrails import Guardrails
from guardline.exchange import Endpoint, Exchange
from guardline.proxy.app import create_app
from guardline.proxy.inspection import Inspector
from tests.conftest import eventually, openai_client
from tests.servers import proxy_settings, running, simulator

MONITOR = {"request": {"fake": {"mode": "monitor"}}, "response": {"fake": {"mode": "monitor"}}}


@dataclass
class Ordered(FakeDetector):
    """Notes, at each scan, how many response bodies the client had been sent by then."""

    sent: list[int] = field(default_factory=lambda: [0])
    when: list[tuple[str, int]] = field(default_factory=list)

    def detect(self, text: str, start: int = 0) -> list[Finding]:
        self.when.append((text[start:], self.sent[0]))
        return super().detect(text, start)


def test_monitor_scans_wait_for_release_then_all_run() -> None:
    detector = Ordered(name="fake")
    guardrails = Guardrails(proxy_settings("http://unused", policy=MONITOR), {"fake": detector})
    policy = guardrails.policies.resolve("openai", "/v1/chat/completions", "m", None)
    exchange = Exchange("rid", "openai", Endpoint.CHAT_COMPLETIONS, "POST", "/v1/x", 0.0)

    async def main() -> list[str]:
        inspector = Inspector(guardrails, policy, exchange)
        inspector.watch("request", "FLAG the prompt")
        for _ in range(5):
            await asyncio.sleep(0)
        before = list(detector.calls)
        inspector.release()
        inspector.watch("response", "FLAG the answer")
        await inspector.drain()
        return before

    assert asyncio.run(main()) == []
    assert detector.calls == ["FLAG the prompt", "FLAG the answer"]
    assert [f.direction for f in exchange.findings] == ["request", "response"]


def test_the_prompt_is_scanned_after_the_answer_leaves() -> None:
    """Through a real proxy: the request-side monitor scan runs only once the body has
    been handed to the server (before the change it ran while the upstream answered)."""
    detector = Ordered(name="fake")
    with simulator() as sim:
        settings = proxy_settings(sim.url, policy=MONITOR)
        app = create_app(settings, guardrails=Guardrails(settings, {"fake": detector}))

        async def counting(scope: Any, receive: Any, send: Any) -> None:
            async def send_counted(message: Any) -> None:
                await send(message)
                if message["type"] == "http.response.body" and message.get("body"):
                    detector.sent[0] += 1

            await app(scope, receive, send_counted if scope["type"] == "http" else send)

        with running(counting) as gw, openai_client(gw.url) as client:
            for stream in (False, True):
                before = detector.sent[0]
                reply = client.chat.completions.create(
                    model="m",
                    messages=[{"role": "user", "content": f"FLAG prompt {stream}"}],
                    stream=stream,
                )
                if stream:
                    list(reply)  # type: ignore[call-overload]
                prompt = eventually(
                    lambda s=stream: [n for text, n in detector.when if text == f"FLAG prompt {s}"]
                )
                assert prompt, detector.when
                assert prompt[0] > before, (stream, prompt, before)
