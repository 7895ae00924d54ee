"""Deterministic benchmark text that looks like an assistant's answers: paragraphs of
sentences with the numbers ordinary prose has (years, amounts, versions), a list now and
then, and a PII value in about one sentence in twenty."""

from __future__ import annotations

import random

_SUBJECTS = [
    "The report",
    "Our team",
    "This release",
    "The customer",
    "Your account",
    "The model",
    "The new policy",
    "Each region",
    "The dashboard",
    "The travel plan",
    "Most users",
]
_VERBS = [
    "shows",
    "needs",
    "includes",
    "describes",
    "improves",
    "reduces",
    "changes",
    "supports",
    "explains",
    "tracks",
    "compares",
    "summarises",
]
_OBJECTS = [
    "the quarterly results",
    "a shorter onboarding flow",
    "the delivery schedule",
    "several open questions",
    "the budget for next year",
    "clear next steps",
    "the weather for the weekend",
    "a list of recommended hotels",
    "the main risks",
    "an updated recipe with fewer steps",
    "the changes since version 2.4",
]
_TAILS = [
    "",
    " in 2024",
    " by about 15 percent",
    " for 3 of our 12 offices",
    " before March",
    " at a cost of $1,250",
    " across 40 countries",
    " within two weeks",
    " after the review",
]


def _pii(rng: random.Random) -> str:
    return rng.choice(
        [
            f"You can email the coordinator at alex.morgan{rng.randrange(100)}@example.com.",
            f"Call the front desk on +1 (415) 555-{rng.randrange(1000, 9999):04d}.",
            f"The card ending {rng.randrange(1000, 9999)} was charged; "
            "full number 4111 1111 1111 1111.",
            f"The server at 10.{rng.randrange(255)}.{rng.randrange(255)}.7 handles the traffic.",
            "Refunds go to IBAN GB82 WEST 1234 5698 7654 32.",
        ]
    )


def prose(size: int, seed: int = 7) -> str:
    """About ``size`` characters of answer-like text."""
    rng = random.Random(seed)
    parts: list[str] = []
    length = 0
    while length < size:
        sentences = []
        for _ in range(rng.randint(3, 6)):
            if rng.random() < 0.05:
                sentences.append(_pii(rng))
            else:
                subject, verb = rng.choice(_SUBJECTS), rng.choice(_VERBS)
                sentences.append(f"{subject} {verb} {rng.choice(_OBJECTS)}{rng.choice(_TAILS)}.")
        paragraph = " ".join(sentences)
        if rng.random() < 0.2:
            paragraph += "\n" + "\n".join(
                f"- {rng.choice(_OBJECTS).capitalize()}" for _ in range(3)
            )
        parts.append(paragraph)
        length += len(paragraph) + 2
    return "\n\n".join(parts)
