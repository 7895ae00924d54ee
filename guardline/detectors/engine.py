"""Running detectors over text: fast ones inline, heavy ones on worker threads so the
event loop never runs them; a detector that raises is reported, never raised.

Detectors scan the normalised view of the text (normalization.py: escapes decoded,
NFKC, invisible characters removed, ...), one view per scan shared by every detector;
their findings are mapped back to spans of the original text. Plain ASCII text is its
own view and costs nothing more.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from guardline.detectors.base import Detector, Direction, Finding
from guardline.detectors.normalization import View, is_plain

log = logging.getLogger("guardline.detectors")
_MARGIN = 32
"""Original characters normalised before a window's left context, so the view there is
the whole text's view (an escape or a cluster cut at the edge only changes the margin)."""


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
        self._context = max((d.context_chars for d in self.detectors.values()), default=0)
        """The widest left context: one view of each window serves every detector."""

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
        its ``context_chars`` of text before ``start`` (characters of the view, when the
        text is not plain); findings there belong to an earlier window and are dropped."""
        result = Scan()
        stop = len(text) if end is None else end
        view = _view(text, start, stop, self._context)
        heavy = []
        for name in names:
            detector = self.detectors[name]
            if detector.cost == "heavy" and self._pool is not None:
                heavy.append(detector)
            else:
                result.extend(self._run(detector, text, (start, stop), view, direction))
        if heavy:
            loop = asyncio.get_running_loop()
            done = await asyncio.gather(
                *(
                    loop.run_in_executor(
                        self._pool, self._run, d, text, (start, stop), view, direction
                    )
                    for d in heavy
                )
            )
            for scan in done:
                result.extend(scan)
        return result

    def scan_sync(self, text: str, names: Iterable[str], direction: Direction = "response") -> Scan:
        """The same, on the calling thread (evaluation, benchmarks)."""
        result = Scan()
        view = _view(text, 0, len(text), self._context)
        for name in names:
            result.extend(self._run(self.detectors[name], text, (0, len(text)), view, direction))
        return result

    @staticmethod
    def _run(
        detector: Detector,
        text: str,
        window: tuple[int, int],
        view: tuple[View, int] | None,
        direction: Direction,
    ) -> Scan:
        """One detector over ``text[start:stop]`` (``window``), or over the view of it and
        the view's position where the window starts."""
        start, stop = window
        try:
            if view is None:
                begin = max(0, start - detector.context_chars)
                found = detector.detect(
                    text[begin:stop] if begin or stop < len(text) else text, start - begin
                )
            else:
                normal, first = view
                begin = max(0, first - detector.context_chars)
                found = detector.detect(normal.text[begin:], first - begin)
        except Exception as exc:
            log.warning("detector %s failed: %s", detector.name, type(exc).__name__)
            return Scan(errors={detector.name: type(exc).__name__})
        if view is None:
            return Scan(
                [
                    dataclasses.replace(
                        f, start=f.start + begin, end=f.end + begin, direction=direction
                    )
                    for f in found
                    if f.start + begin >= start
                ]
            )
        out = []
        for f in found:
            if f.start + begin >= first:
                s, e = normal.span(f.start + begin, f.end + begin)
                out.append(dataclasses.replace(f, start=s, end=e, direction=direction))
        return Scan(out)


def _view(text: str, start: int, stop: int, context: int) -> tuple[View, int] | None:
    """None when ``text[start - context:stop]`` is plain (its own view); else the view of
    the text from a little before the widest left context to ``stop``, and the view's
    position of ``start``."""
    begin = max(0, start - context)
    if is_plain(text[begin:stop] if begin or stop < len(text) else text):
        return None
    lead = max(0, start - 2 * context - _MARGIN)
    while True:
        view = View.of(text, lead, stop)
        first = view.index(start)
        # enough of the view before the window for the context, clear of the cut at lead
        probe = first - context
        if lead == 0 or (probe >= 0 and view.position(probe) >= lead + _MARGIN):
            return view, first
        lead = max(0, lead - max(2 * (start - lead), 256))
