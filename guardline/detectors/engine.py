"""Running detectors over text: fast ones inline, heavy ones on worker threads so the
event loop never runs them; a detector that raises is reported, never raised."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from guardline.detectors.base import Detector, Direction, Finding

log = logging.getLogger("guardline.detectors")


@dataclass(slots=True)
class Scan:
    findings: list[Finding] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    """Detector name -> exception type, for detectors that raised."""

    def extend(self, other: Scan) -> None:
        self.findings += other.findings
        self.errors.update(other.errors)


class Scanner:
    def __init__(self, detectors: Mapping[str, Detector], workers: int = 2) -> None:
        self.detectors = dict(detectors)
        heavy = any(d.cost == "heavy" for d in self.detectors.values())
        self._pool = (
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix="guardline-detector")
            if heavy
            else None
        )

    def health(self) -> dict[str, dict[str, str]]:
        return {n: {"backend": d.backend, "cost": d.cost} for n, d in self.detectors.items()}

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    async def scan(
        self,
        text: str,
        names: Iterable[str],
        direction: Direction,
        start: int = 0,
        end: int | None = None,
    ) -> Scan:
        """Findings in ``text[start:end]``, offsets into ``text``. Each detector also sees
        its ``context_chars`` of text before ``start``; findings there belong to an
        earlier window and are dropped."""
        result = Scan()
        heavy = []
        for name in names:
            detector = self.detectors[name]
            if detector.cost == "heavy" and self._pool is not None:
                heavy.append(name)
            else:
                result.extend(self._run(detector, text, direction, start, end))
        if heavy:
            loop = asyncio.get_running_loop()
            done = await asyncio.gather(
                *(
                    loop.run_in_executor(
                        self._pool, self._run, self.detectors[n], text, direction, start, end
                    )
                    for n in heavy
                )
            )
            for scan in done:
                result.extend(scan)
        return result

    def scan_sync(self, text: str, names: Iterable[str], direction: Direction = "response") -> Scan:
        """The same, on the calling thread (evaluation, benchmarks)."""
        result = Scan()
        for name in names:
            result.extend(self._run(self.detectors[name], text, direction, 0, None))
        return result

    @staticmethod
    def _run(
        detector: Detector, text: str, direction: Direction, start: int, end: int | None
    ) -> Scan:
        stop = len(text) if end is None else end
        begin = max(0, start - detector.context_chars)
        try:
            window = text[begin:stop] if begin or stop < len(text) else text
            found = detector.detect(window, start - begin)
        except Exception as exc:
            log.warning("detector %s failed: %s", detector.name, type(exc).__name__)
            return Scan(errors={detector.name: type(exc).__name__})
        return Scan(
            [
                dataclasses.replace(
                    f, start=f.start + begin, end=f.end + begin, direction=direction
                )
                for f in found
                if f.start + begin >= start
            ]
        )
