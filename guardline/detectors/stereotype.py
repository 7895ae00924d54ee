"""Stereotypes, in three separately configurable parts, scored per sentence.

- ``generalization``: explicit generalisations about a social group, for the nine bias
  types CrowS-Pairs names: quantified groups ("all women", "most Muslims"), group +
  copula or generalising verb ("old people can't ...", "Mexicans are lazy"), "typical X",
  and attribution to membership ("because she's a woman"). Catches explicit statements;
  misses stereotypes carried by a story about one person ("the black man stole it"),
  sarcasm, and groups outside its lexicon. Descriptive predicates ("women are
  underrepresented", "immigrants are welcome") are not generalisations here.
- ``gendered_occupation``: which gendered pronoun attaches to which occupation in a
  sentence (the nearest occupation before the pronoun). One sentence is harmless; the
  finding's ``detail`` (``nurse:she``) feeds a skew metric across traffic.
- ``exclusionary_wording``: age-coded ("young and energetic", "digital native"),
  gender-coded, native-speaker, ableist and family-status wording; weaker phrases count
  only in job-related sentences ("candidates", "hiring", "the role", ...).
"""

from __future__ import annotations

import re

from guardline.detectors import lexicon
from guardline.detectors.base import Cost, Finding
from guardline.detectors.sentences import split
from guardline.settings import StereotypeSettings


class StereotypeDetector:
    name = "stereotype"
    cost: Cost = "fast"
    context_chars = 0
    backend = "rules (Guardline lexicons)"

    def __init__(self, settings: StereotypeSettings) -> None:
        self.settings = settings
        # Per bias type: its patterns, and the words one of which any match must contain
        # (checked first, as a set lookup: most sentences name no group at all).
        self._generalizations = [
            (bias, _triggers(group), _generalization_patterns(_alternatives(group)))
            for bias, group in lexicon.GROUPS.items()
        ]
        self._generic = re.compile(
            rf"\b(?:a|an|any|every|no)\s+(?:(?:{lexicon.SINGULAR_GROUP})\s+)?"
            rf"(?:{lexicon.SINGULAR_NOUN})\s+(?:{lexicon.GENERIC_MODALS})\b",
            re.IGNORECASE,
        )
        self._attribution = re.compile(
            rf"\b(?:because|since|just because|only because) (?:she|he|they)(?:'s| is|'re| are) "
            rf"(?:a |an )?(?:{lexicon.ATTRIBUTED})\b",
            re.IGNORECASE,
        )
        occupations = "|".join(lexicon.OCCUPATIONS)
        self._occupation = re.compile(rf"\b({occupations})(?:s|es)?\b", re.IGNORECASE)
        self._occupation_words = frozenset(
            form for o in lexicon.OCCUPATIONS for form in (o, o + "s", o + "es")
        )
        self._pronoun = re.compile(r"\b(he|him|his|himself|she|her|hers|herself)\b", re.IGNORECASE)
        self._exclusionary = [
            (kind, re.compile(rf"\b(?:{pattern})\b", re.IGNORECASE), needs_context)
            for kind, pattern, needs_context in lexicon.EXCLUSIONARY
        ]
        every_phrase = "|".join(pattern for _, pattern, _ in lexicon.EXCLUSIONARY)
        self._any_phrase = re.compile(rf"\b(?:{every_phrase})\b", re.IGNORECASE)
        self._job = re.compile(rf"\b(?:{lexicon.JOB_CONTEXT})\b", re.IGNORECASE)

    def detect(self, text: str, start: int = 0) -> list[Finding]:
        findings: list[Finding] = []
        for begin, stop in split(text, start):
            sentence = text[begin:stop]
            if not sentence.strip():
                continue
            end = begin + len(sentence.rstrip())  # the sentence, not its trailing space
            words = set(_WORD.findall(sentence.lower()))
            if self.settings.generalizations:
                findings += self._generalization(sentence, begin, end, words)
            if self.settings.gendered_occupations:
                findings += self._gendered(sentence, begin, words)
            if self.settings.exclusionary_wording:
                findings += self._wording(sentence, begin, words)
        return findings

    def _generalization(
        self, sentence: str, start: int, end: int, words: set[str]
    ) -> list[Finding]:
        matches: list[tuple[str, float, int, int]] = []  # bias, score, span in sentence
        for bias, triggers, patterns in self._generalizations:
            if not words.isdisjoint(triggers):
                best = None
                for score, pattern in patterns:
                    found = pattern.search(sentence)
                    if found and (best is None or score > best[1]):
                        best = (bias, score, found.start(), found.end())
                if best is not None:
                    matches.append(best)
        # "gay men are ..." is about gay men, not men: a match inside another's is dropped.
        kept = [
            m
            for m in matches
            if not any(
                o is not m and o[2] <= m[2] and m[3] <= o[3] and (o[2], o[3]) != (m[2], m[3])
                for o in matches
            )
        ]
        best_by_bias = {bias: score for bias, score, _, _ in kept}
        if self._generic.search(sentence):
            best_by_bias.setdefault("generic", 0.6)
        if self._attribution.search(sentence):
            best_by_bias.setdefault("attribution", 0.7)
        return [
            Finding(self.name, "generalization", score, start, end, detail=bias)
            for bias, score in best_by_bias.items()
        ]

    def _gendered(self, sentence: str, start: int, words: set[str]) -> list[Finding]:
        if words.isdisjoint(lexicon.PRONOUNS) or words.isdisjoint(self._occupation_words):
            return []
        occupations = [(m.start(), m.group(1).lower()) for m in self._occupation.finditer(sentence)]
        if not occupations:
            return []
        seen: set[str] = set()
        findings = []
        for match in self._pronoun.finditer(sentence):
            before = [occ for pos, occ in occupations if pos < match.start()]
            if not before:
                continue
            detail = f"{before[-1]}:{lexicon.PRONOUNS[match.group(1).lower()]}"
            if detail in seen:
                continue
            seen.add(detail)
            first = next(pos for pos, occ in occupations if occ == before[-1])
            findings.append(
                Finding(
                    self.name,
                    "gendered_occupation",
                    1.0,
                    start + first,
                    start + match.end(),
                    detail=detail,
                )
            )
        return findings

    def _wording(self, sentence: str, start: int, words: set[str]) -> list[Finding]:
        if words.isdisjoint(lexicon.FREE_WORDS) and words.isdisjoint(lexicon.JOB_WORDS):
            return []
        if not self._any_phrase.search(sentence):
            return []
        job = None
        findings = []
        for kind, pattern, needs_context in self._exclusionary:
            for match in pattern.finditer(sentence):
                if needs_context:
                    if job is None:
                        job = self._job.search(sentence) is not None
                    if not job:
                        break
                findings.append(
                    Finding(
                        self.name,
                        "exclusionary_wording",
                        0.8,
                        start + match.start(),
                        start + match.end(),
                        detail=kind,
                    )
                )
        return findings


_WORD = re.compile(r"[a-z]+")


def _alternatives(group: lexicon.Group) -> list[str]:
    """Regex alternatives naming the group, from its plain words."""
    out = []
    if group.adjectives:
        adjectives = "|".join(map(re.escape, group.adjectives))
        out.append(f"(?:{adjectives}) (?:{'|'.join(lexicon.NOUNS)})")
    if group.terms:
        out.append("|".join(map(re.escape, group.terms)))
    if group.singulars:
        out.append(f"(?:most|all|every|no) (?:{'|'.join(map(re.escape, group.singulars))})")
    return out


def _triggers(group: lexicon.Group) -> frozenset[str]:
    phrases = (*group.adjectives, *group.terms, *group.singulars)
    return frozenset(w for p in phrases for w in _WORD.findall(p)) - lexicon.FUNCTION_WORDS


def _generalization_patterns(alternatives: list[str]) -> list[tuple[float, re.Pattern[str]]]:
    group = "|".join(alternatives)
    g = rf"(?:the )?(?:{group})"
    flags = re.IGNORECASE
    return [
        (
            0.8,
            re.compile(
                rf"\b(?:all|most|every|no|many)\s+(?:of\s+(?:the\s+)?)?(?:{group})\b", flags
            ),
        ),
        (0.8, re.compile(rf"\b(?:typical|like all|like most|like other)\s+(?:{group})\b", flags)),
        (
            0.8,
            re.compile(
                rf"\b(?:that's|that is|this is|thats) (?:what|how) (?:{group}) "
                r"(?:do|are|act|behave|think)\b",
                flags,
            ),
        ),
        (
            0.7,
            re.compile(
                rf"\b{g}\s+(?:(?:{lexicon.INTENSIFIERS})\s+)*(?:{lexicon.GENERALISING_VERBS})\b",
                flags,
            ),
        ),
        (
            0.6,
            re.compile(
                rf"\b{g}\s+(?:{lexicon.COPULAS})\s+(?:(?:{lexicon.INTENSIFIERS}|not)\s+)*"
                rf"(?!(?:{lexicon.NEUTRAL_PREDICATES})\b)[a-z]{{3,}}",
                flags,
            ),
        ),
    ]
