"""PII with presidio, offline.

The analyzer is built here rather than by presidio's providers because those download
spaCy models when one is missing and its email recognizer asks tldextract, which fetches
the public suffix list over the network. Here: a blank English pipeline unless a model is
named (never downloaded), and tldextract's bundled suffix snapshot.

Speed: each entity has a *gate*, a necessary condition checked with one cheap regex (no
``@``: no email; no run of 5 digits: no phone), sentence by sentence. Presidio runs only
on sentences where some gate passes, only with the recognizers whose gates passed, and
with ``context_chars`` of text before the sentence for its context words. Ordinary prose
costs microseconds, nothing that could match is skipped, and scanning a text whole gives
the same findings as scanning it window by window at sentence boundaries: the same
sentences with the same context.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from guardline.detectors.base import Cost, Finding
from guardline.detectors.sentences import split
from guardline.errors import ConfigError
from guardline.settings import PiiSettings

_DIGIT = re.compile(r"\d")
_DIGIT_RUN = re.compile(r"\d(?:[\d \t().\-/_\u00a0\u2007\u2009\u202f]*\d)?")
_IBAN_START = re.compile(r"[A-Za-z]{2}\d{2}")
_IPV4 = re.compile(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}")
_IPV6 = re.compile(r"[0-9A-Fa-f]{0,4}:[0-9A-Fa-f]{0,4}:")


def _run_of(n: int) -> Callable[[str], bool]:
    """Some run of digits (with the separators numbers are written with) has n digits."""

    def gate(text: str) -> bool:
        return any(sum(c.isdigit() for c in m.group()) >= n for m in _DIGIT_RUN.finditer(text))

    return gate


GATES: dict[str, Callable[[str], bool]] = {
    "EMAIL_ADDRESS": lambda text: "@" in text,
    "PHONE_NUMBER": _run_of(5),
    "CREDIT_CARD": _run_of(12),
    "IBAN_CODE": lambda text: _IBAN_START.search(text) is not None,
    "IP_ADDRESS": lambda text: _IPV4.search(text) is not None or _IPV6.search(text) is not None,
    "US_SSN": _run_of(9),
    "US_ITIN": _run_of(9),
    "US_BANK_NUMBER": _run_of(8),
    "US_PASSPORT": _run_of(8),
    "UK_NHS": _run_of(10),
    "URL": lambda text: "." in text,
    "CRYPTO": lambda text: len(text) >= 26,
}
NER_ENTITIES = ("PERSON", "LOCATION", "ORGANIZATION", "NRP", "DATE_TIME")
_NER_LABELS = {
    "PERSON": "PERSON",
    "PER": "PERSON",
    "NORP": "NRP",
    "FAC": "LOCATION",
    "LOC": "LOCATION",
    "GPE": "LOCATION",
    "LOCATION": "LOCATION",
    "ORG": "ORGANIZATION",
    "ORGANIZATION": "ORGANIZATION",
    "DATE": "DATE_TIME",
    "TIME": "DATE_TIME",
}


class PiiDetector:
    name = "pii"
    context_chars = 100  # presidio looks up to 5 words to the left for context words

    def __init__(self, settings: PiiSettings) -> None:
        self.settings = settings
        unknown = sorted(set(settings.entities) - set(GATES) - set(NER_ENTITIES))
        if unknown:
            raise ConfigError(
                f"detectors.pii.entities: unknown entity {', '.join(unknown)}; supported: "
                + ", ".join(sorted([*GATES, *NER_ENTITIES]))
            )
        ner = [e for e in settings.entities if e in NER_ENTITIES]
        if ner and not settings.spacy_model:
            raise ConfigError(
                f"detectors.pii.entities: {', '.join(ner)} need an NER model; set "
                "detectors.pii.spacy_model to an installed spaCy model (e.g. en_core_web_lg)"
            )
        self.cost: Cost = "heavy" if settings.spacy_model else "fast"
        self.backend = f"presidio (spaCy {settings.spacy_model or 'blank:en'})"
        self._thresholds = {name: e.threshold for name, e in settings.entities.items()}
        self._floor = min(self._thresholds.values(), default=1.0)
        self._gated = [(name, GATES[name]) for name in settings.entities if name in GATES]
        self._ner = ner
        self._analyzer = _build_analyzer(settings)

    def detect(self, text: str, start: int = 0) -> list[Finding]:
        found: list[Finding] = []
        for begin, end in split(text, start):
            sentence = text[begin:end]
            entities = [name for name, gate in self._gated if gate(sentence)] + self._ner
            if not entities:
                continue
            left = max(0, begin - self.context_chars)
            # The left context is there for its words; its numbers belong to earlier
            # sentences and would only be parsed again (and crowd out context words).
            context = _DIGIT.sub("#", text[left:begin]) if not self._ner else text[left:begin]
            results = self._analyzer.analyze(
                context + sentence, language="en", entities=entities, score_threshold=self._floor
            )
            found += [
                Finding(self.name, r.entity_type, float(r.score), left + r.start, left + r.end)
                for r in results
                if r.score >= self._thresholds.get(r.entity_type, 1.0) and left + r.start >= begin
            ]
        return _settle(found)


def _settle(found: list[Finding]) -> list[Finding]:
    """Across entity types, a span claimed by a higher-scoring finding is that entity
    (a Luhn-valid card is not also a phone number); same-type overlaps merge."""
    kept = [
        f
        for f in found
        if not any(
            o.category != f.category and o.score > f.score and o.start < f.end and f.start < o.end
            for o in found
        )
    ]
    kept.sort(key=lambda f: (f.category, f.start))
    out: list[Finding] = []
    for f in kept:
        last = out[-1] if out else None
        if last is not None and last.category == f.category and f.start < last.end:
            out[-1] = Finding(
                last.detector,
                last.category,
                max(last.score, f.score),
                last.start,
                max(last.end, f.end),
            )
        else:
            out.append(f)
    out.sort(key=lambda f: f.start)
    return out


def hash_salt(settings: PiiSettings) -> bytes | None:
    """The configured salt for the hash operator; a missing one stops startup."""
    uses_hash = any(e.operator == "hash" for e in settings.entities.values())
    if not uses_hash:
        return None
    value = os.environ.get(settings.hash_salt_env or "")
    if not value or len(value.encode()) < 16:
        raise ConfigError(
            "detectors.pii.hash_salt_env: the hash operator needs a fixed salt of at least "
            "16 bytes; name an environment variable that holds one"
        )
    return value.encode()


def _build_analyzer(settings: PiiSettings) -> Any:
    # Imported here: presidio and spaCy take about a second to import.
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry  # noqa: PLC0415

    nlp_engine = _nlp_engine(settings.spacy_model)
    registry = RecognizerRegistry(supported_languages=["en"])
    vocab = nlp_engine.nlp["en"].vocab
    for recognizer in _recognizers(settings):
        registry.add_recognizer(recognizer)
        # presidio ignores stop words as context, and spaCy's English list has "call"
        # and "number": presidio's own phone context words could never count.
        for word in recognizer.context or ():
            vocab[word].is_stop = False
    return AnalyzerEngine(registry=registry, nlp_engine=nlp_engine, supported_languages=["en"])


def _recognizers(settings: PiiSettings) -> list[Any]:
    from presidio_analyzer import predefined_recognizers as pr  # noqa: PLC0415

    factories: dict[str, Callable[[], Any]] = {
        "EMAIL_ADDRESS": _offline_email_recognizer,
        "PHONE_NUMBER": lambda: pr.PhoneRecognizer(supported_regions=settings.phone_regions),
        "CREDIT_CARD": pr.CreditCardRecognizer,
        # IBANs are written in lower case too; the checksum validation upper-cases.
        "IBAN_CODE": lambda: pr.IbanRecognizer(
            regex_flags=re.DOTALL | re.MULTILINE | re.IGNORECASE
        ),
        "IP_ADDRESS": pr.IpRecognizer,
        "US_SSN": pr.UsSsnRecognizer,
        "US_ITIN": pr.UsItinRecognizer,
        "US_BANK_NUMBER": pr.UsBankRecognizer,
        "US_PASSPORT": pr.UsPassportRecognizer,
        "UK_NHS": pr.NhsRecognizer,
        "URL": _offline_url_recognizer,
        "CRYPTO": pr.CryptoRecognizer,
    }
    out = [factories[name]() for name in settings.entities if name in factories]
    if "CREDIT_CARD" in settings.entities:
        out.append(_separated_card_recognizer())
    if "PHONE_NUMBER" in settings.entities:
        out.append(_phone_pattern_recognizer())
    if any(name in NER_ENTITIES for name in settings.entities):
        out.append(pr.SpacyRecognizer(supported_entities=list(NER_ENTITIES)))
    return out


_PHONE_SHAPE = (
    r"(?<![\w+.\-/])(?:\+\d{1,3}[ .\-]?|00\d{0,3}[ .\-]?)?(?:\(\d{1,5}\)[ .\-]?)?"
    r"\d{1,5}(?:[ .\-]\d{1,8}){0,5}(?:\s?(?:x|ext\.?|extension)\s?\d{1,6})?(?!\w)"
)
_PHONE_LABEL = r"(?=[ \t\-]{0,3}(?:office|fax|mobile|cell|home|work|phone|tel)\b)"
_PHONE_CONTEXT = [
    "phone",
    "telephone",
    "tel",
    "call",
    "mobile",
    "cell",
    "cellphone",
    "fax",
    "office",
    "number",
    "reach",
    "contact",
    "dial",
    "text",
    "answering",
    "whatsapp",
    "landline",
]
_EXTENSION = re.compile(r"(?i)\s?(?:x|ext\.?|extension)\s?\d")
_DATE_SHAPE = re.compile(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{4}")


def _phone_pattern_recognizer() -> Any:
    """Phone-shaped digit groups that libphonenumber cannot validate (local formats,
    odd groupings, extensions). Their base score is below any sensible threshold: they
    count only with a context word to the left (presidio's enhancer) or a label such as
    "office" right after them on the same line. Never date-shaped, 6 to 15 digits."""
    from presidio_analyzer import Pattern, PatternRecognizer  # noqa: PLC0415

    class PhonePatternRecognizer(PatternRecognizer):
        def validate_result(self, pattern_text: str) -> bool | None:
            core = _EXTENSION.split(pattern_text)[0]
            digits = sum(c.isdigit() for c in core)
            if not 6 <= digits <= 15 or _DATE_SHAPE.fullmatch(core):
                return False
            return None  # keep the pattern's score; context may raise it

    return PhonePatternRecognizer(
        supported_entity="PHONE_NUMBER",
        name="PhonePatternRecognizer",
        patterns=[
            Pattern("phone-shaped", _PHONE_SHAPE, 0.1),
            Pattern("phone-shaped, labelled", _PHONE_SHAPE + _PHONE_LABEL, 0.5),
        ],
        context=_PHONE_CONTEXT,
        global_regex_flags=re.IGNORECASE | re.MULTILINE,
    )


_CARD_SEPARATOR = "[./_\u00a0\u2007\u2009\u202f]"
_CARD_SHAPES = {
    # 16 digits in fours (19 with a last group of three), 15 (Amex) and 14 (Diners) digits
    "card, 4-4-4-4": r"(?:4\d{3}|5[0-5]\d{2}|2[2-7]\d{2}|6\d{3}|3\d{3})(?P<s>{sep})\d{4}(?P=s)"
    r"\d{4}(?P=s)\d{4}(?:(?P=s)\d{3})?",
    "card, 4-6-5": r"3[47]\d{2}(?P<s>{sep})\d{6}(?P=s)\d{5}",
    "card, 4-6-4": r"3(?:0[0-5]|[689]\d)\d(?P<s>{sep})\d{6}(?P=s)\d{4}",
}


def _separated_card_recognizer() -> Any:
    """Card numbers whose groups are separated by what presidio's recognizer does not
    accept (it takes ``-`` and spaces): dots, slashes, underscores, no-break and thin
    spaces, the same one between every group. Luhn-validated like presidio's; IP
    addresses and decimals do not have the shape."""
    from presidio_analyzer import Pattern  # noqa: PLC0415
    from presidio_analyzer.predefined_recognizers import CreditCardRecognizer  # noqa: PLC0415

    patterns = [
        Pattern(
            name,
            r"(?<![\w.,/])" + shape.replace("{sep}", _CARD_SEPARATOR) + r"(?![\w/]|[.,]\d)",
            0.3,
        )
        for name, shape in _CARD_SHAPES.items()
    ]
    separators = "-. /_\u00a0\u2007\u2009\u202f"
    return CreditCardRecognizer(
        patterns=patterns,
        replacement_pairs=[(c, "") for c in separators],
        name="SeparatedCreditCardRecognizer",
    )


def _offline_extractor() -> Any:
    import tldextract  # noqa: PLC0415

    # No suffix-list URLs and no cache: the snapshot bundled with tldextract, no network.
    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


def _offline_email_recognizer() -> Any:
    from presidio_analyzer.predefined_recognizers import EmailRecognizer  # noqa: PLC0415

    extract = _offline_extractor()

    class OfflineEmailRecognizer(EmailRecognizer):
        def validate_result(self, pattern_text: str) -> bool:
            return bool(extract(pattern_text).fqdn)

    return OfflineEmailRecognizer()


def _offline_url_recognizer() -> Any:
    from presidio_analyzer.predefined_recognizers import UrlRecognizer  # noqa: PLC0415

    return UrlRecognizer()


def _nlp_engine(model: str | None) -> Any:
    import spacy  # noqa: PLC0415
    from presidio_analyzer.nlp_engine import NerModelConfiguration, SpacyNlpEngine  # noqa: PLC0415
    from spacy.language import Language  # noqa: PLC0415

    if not Language.has_factory("guardline_lower_lemma"):

        @Language.component("guardline_lower_lemma")
        def _lower_lemma(doc: Any) -> Any:
            # A blank pipeline has no lemmatizer; presidio's context words match lemmas.
            for token in doc:
                if not token.lemma_:
                    token.lemma_ = token.lower_
            return doc

    if model is None:
        nlp = spacy.blank("en")
    elif spacy.util.is_package(model) or Path(model).exists():
        nlp = spacy.load(model)
    else:
        raise ConfigError(
            f"detectors.pii.spacy_model: spaCy model {model!r} is not installed; install it "
            "(pip install the model package) or give a pipeline directory. Guardline never "
            "downloads models at run time."
        )
    nlp.add_pipe("guardline_lower_lemma", last=True)

    class LocalSpacyNlpEngine(SpacyNlpEngine):
        def load(self) -> None:
            self.nlp = {"en": nlp}  # type: ignore[assignment]  # presidio types it as None

    ner_config = NerModelConfiguration(
        model_to_presidio_entity_mapping=_NER_LABELS,
        labels_to_ignore=[
            "CARDINAL",
            "ORDINAL",
            "QUANTITY",
            "MONEY",
            "PERCENT",
            "LANGUAGE",
            "PRODUCT",
            "EVENT",
            "WORK_OF_ART",
            "LAW",
        ],
    )
    engine = LocalSpacyNlpEngine(
        models=[{"lang_code": "en", "model_name": model or "blank"}],
        ner_model_configuration=ner_config,
    )
    engine.load()
    return engine
