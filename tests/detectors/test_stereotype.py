"""The stereotype detector, part by part (table-driven)."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from guardline.detectors.stereotype import StereotypeDetector
from guardline.settings import StereotypeSettings
from tests.conftest import shared_data


@pytest.fixture(scope="module")
def detector() -> StereotypeDetector:
    return StereotypeDetector(StereotypeSettings())


GENERALIZATIONS = [
    ("Women are too emotional to lead engineering teams.", "gender"),
    ("All Muslims think the same way.", "religion"),
    ("Old people can't learn new technology.", "age"),
    ("Mexicans are lazy.", "nationality"),
    ("Typical immigrants, always complaining.", "nationality"),
    ("The poor are really ignorant about money.", "socioeconomic"),
    ("Gay men are so dramatic.", "sexual-orientation"),
    ("Black people aren't good at chess.", "race-color"),
    ("Fat people are lazy.", "physical-appearance"),
    ("Disabled people never finish anything.", "disability"),
    ("She only got promoted because she's a woman.", "attribution"),
    ("An immigrant would never get that job.", "generic"),
]
NOT_GENERALIZATIONS = [
    "Women are underrepresented in engineering.",
    "Immigrants are welcome to apply.",
    "A woman was elected mayor yesterday.",
    "The weather in Lisbon is mild in spring.",
    "Most of the servers were down last night.",
]


@pytest.mark.parametrize(("text", "bias"), GENERALIZATIONS)
def test_generalizations(detector: StereotypeDetector, text: str, bias: str) -> None:
    found = [f for f in detector.detect(text) if f.category == "generalization"]
    assert [f.detail for f in found] == [bias]
    assert (found[0].start, found[0].end) == (0, len(text))


@pytest.mark.parametrize("text", NOT_GENERALIZATIONS)
def test_descriptive_or_specific_sentences_are_not_generalizations(
    detector: StereotypeDetector, text: str
) -> None:
    assert [f for f in detector.detect(text) if f.category == "generalization"] == []


@pytest.mark.parametrize(
    ("text", "details"),
    [
        ("The nurse said she would be late.", ["nurse:she"]),
        ("The engineer fixed it himself, and the nurse thanked her.", ["engineer:he", "nurse:she"]),
        ("The developer argued with the designer and slapped him.", ["designer:he"]),
        ("She thanked the nurse.", []),  # the pronoun comes before any occupation
        ("The nurse was late.", []),
    ],
)
def test_gendered_occupations(detector: StereotypeDetector, text: str, details: list[str]) -> None:
    assert [
        f.detail for f in detector.detect(text) if f.category == "gendered_occupation"
    ] == details


@pytest.mark.parametrize(
    ("text", "kinds"),
    [
        ("We want someone young and energetic.", ["age"]),
        ("Digital natives preferred.", ["age"]),
        ("Candidates must be native English speakers.", ["native_language"]),
        ("We are hiring a salesman for the role.", ["gender"]),
        ("Ideal candidates have no children.", ["family_status"]),
        ("The team is energetic.", []),  # weak wording counts only in job context
        ("We are hiring energetic people.", ["age"]),
    ],
)
def test_exclusionary_wording(detector: StereotypeDetector, text: str, kinds: list[str]) -> None:
    assert [
        f.detail for f in detector.detect(text) if f.category == "exclusionary_wording"
    ] == kinds


def test_parts_are_separately_configurable() -> None:
    text = "Women are too emotional. The nurse said she was young and energetic."
    only = StereotypeDetector(StereotypeSettings(generalizations=False, exclusionary_wording=False))
    assert {f.category for f in only.detect(text)} == {"gendered_occupation"}
    none = StereotypeDetector(
        StereotypeSettings(
            generalizations=False, gendered_occupations=False, exclusionary_wording=False
        )
    )
    assert none.detect(text) == []


def test_winobias_skew_shows_over_traffic(detector: StereotypeDetector) -> None:
    """Pro-stereotyped text attaches "she" to female-majority occupations far more often
    than anti-stereotyped text does: the skew a metric over traffic would show."""
    winobias = shared_data("winobias")
    female = set((winobias / "female_occupations.txt").read_text().split())

    def share_she_for_female_jobs(name: str) -> float:
        counts: Counter[str] = Counter()
        for line in (winobias / name).read_text().splitlines():
            text = re.sub(r"[\[\]]", "", line.split(" ", 1)[1])
            for f in detector.detect(text):
                if (
                    f.category == "gendered_occupation"
                    and f.detail
                    and f.detail.split(":")[0] in female
                ):
                    counts[f.detail.split(":")[1]] += 1
        return counts["she"] / max(1, sum(counts.values()))

    pro = share_she_for_female_jobs("pro_stereotyped_type2.txt.dev")
    anti = share_she_for_female_jobs("anti_stereotyped_type2.txt.dev")
    assert pro > 0.9
    assert anti < 0.1


@pytest.mark.parametrize(
    "phrase",
    [
        "hire",
        "hires",
        "hired",
        "hiring",
        "candidate",
        "applicants",
        "apply",
        "application",
        "the role",
        "position",
        "job",
        "vacancies",
        "recruiting",
        "recruiter",
        "we are looking for",
        "we're seeking",
        "seeking",
        "join our",
        "requirements",
        "qualification",
        "ideal person",
        "employees",
        "staff",
        "team members",
    ],
)
def test_job_words_cover_the_job_context(phrase: str) -> None:
    """The word gate before exclusionary wording must never skip a job-related sentence."""
    import re as _re

    from guardline.detectors import lexicon

    assert _re.search(rf"\b(?:{lexicon.JOB_CONTEXT})\b", phrase, _re.IGNORECASE)
    assert set(_re.findall(r"[a-z]+", phrase)) & lexicon.JOB_WORDS
