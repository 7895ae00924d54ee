"""The price table: shipped prices, lookup by normalised name, cost arithmetic, user files."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
import yaml

from guardline.errors import ConfigError
from guardline.exchange import Usage
from guardline.exporters.cost import Price, PriceTable
from guardline.exporters.models import normalise_model

SHIPPED = Path(__file__).resolve().parents[2] / "guardline" / "exporters" / "prices.yaml"

EXPECTED_MODELS = [
    "gpt-5", "gpt-5-mini", "gpt-5-nano", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano",
    "gpt-4o", "gpt-4o-mini", "o1", "o3", "o3-mini", "o4-mini", "gpt-3.5-turbo",
    "gpt-3.5-turbo-instruct", "text-embedding-3-small", "text-embedding-3-large",
    "claude-opus-4-5", "claude-opus-4-1", "claude-opus-4", "claude-sonnet-4-5",
    "claude-sonnet-4", "claude-3-7-sonnet", "claude-3-5-sonnet", "claude-haiku-4-5",
    "claude-3-5-haiku", "claude-3-haiku",
]  # fmt: skip


@pytest.fixture(scope="module")
def table() -> PriceTable:
    return PriceTable.load()


# --- the shipped table ------------------------------------------------------------------


def test_shipped_table_loads_with_its_date(table: PriceTable) -> None:
    datetime.date.fromisoformat(table.as_of)
    assert set(EXPECTED_MODELS) <= set(table.prices)


def test_shipped_keys_are_normalised_names() -> None:
    # Read the file itself: load() would reject a bad key, but this names every offender.
    keys = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))["models"]
    assert [k for k in keys if normalise_model(k) != k] == []


def test_shipped_prices_are_sane(table: PriceTable) -> None:
    for name, price in table.prices.items():
        assert price.input > 0, name
        assert price.output >= 0, name
        if price.cached_input is not None:
            assert price.cached_input < price.input, name  # cache hits are a discount
        if price.cache_write is not None:
            assert price.cache_write > price.input, name  # Anthropic cache writes cost extra
        if name.startswith("claude-"):
            assert price.cached_input is not None, name
            assert price.cache_write is not None, name
    embeddings = [name for name in table.prices if name.startswith("text-embedding-")]
    assert embeddings
    assert all(table.prices[name].output == 0 for name in embeddings)


def test_spot_prices(table: PriceTable) -> None:
    assert table.lookup("gpt-4o") == Price(2.50, 10.00, cached_input=1.25)
    assert table.lookup("gpt-4o-mini") == Price(0.15, 0.60, cached_input=0.075)
    assert table.lookup("claude-sonnet-4-5") == Price(3.00, 15.00, 0.30, 3.75)
    assert table.lookup("claude-opus-4-5") == Price(5.00, 25.00, 0.50, 6.25)
    assert table.lookup("claude-3-haiku") == Price(0.25, 1.25, 0.03, 0.30)


@pytest.mark.parametrize(
    ("raw", "base"),
    [
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("openai/gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("us.anthropic.claude-haiku-4-5-20251001-v1:0", "claude-haiku-4-5"),
        ("claude-3-5-haiku-latest", "claude-3-5-haiku"),
        ("ft:gpt-4o-mini-2024-07-18:org::abc", "gpt-4o-mini"),
    ],
)
def test_dated_and_prefixed_names_resolve_to_the_base_price(
    table: PriceTable, raw: str, base: str
) -> None:
    assert table.lookup(raw) is not None
    assert table.lookup(raw) == table.prices[base]


@pytest.mark.parametrize(
    ("raw", "base"),
    [
        ("claude-3-5-sonnet-v2@20241022", "claude-3-5-sonnet"),
        ("gpt-3.5-turbo-0125", "gpt-3.5-turbo"),
        ("gpt-5-chat-latest", "gpt-5"),
        ("gpt-4o-mini-something", "gpt-4o-mini"),  # the longest key, not gpt-4o
        ("gpt-3.5-turbo-instruct-0914", "gpt-3.5-turbo-instruct"),
    ],
)
def test_extensions_of_a_priced_model_share_its_price(
    table: PriceTable, raw: str, base: str
) -> None:
    assert table.lookup(raw) == table.prices[base]


@pytest.mark.parametrize(
    "raw",
    [
        "gpt-5-pro",  # another tier: 12x gpt-5
        "o1-pro",
        "gpt-4o-realtime-preview",
        "gpt-4o-mini-search-preview",  # tokens plus a per-call search fee
        "gpt-4o-mini-tts",
        "o4-mini-deep-research",
        "gpt-3.5-turbo-16k",
        "claude-opus-4-6",  # a newer version, priced on its own
        "gpt-4o1",  # not at a '-' boundary
        "gpt-4",  # a prefix of a key is not a match
        "some-unknown-model",
    ],
)
def test_other_models_have_no_price(table: PriceTable, raw: str) -> None:
    assert table.lookup(raw) is None
    assert table.cost(raw, Usage(input_tokens=1000, output_tokens=1000)) is None


@pytest.mark.parametrize("missing", [None, ""])
def test_a_missing_model_has_no_price(table: PriceTable, missing: str | None) -> None:
    assert table.lookup(missing) is None
    assert table.cost(missing, Usage(input_tokens=10)) is None


def test_prefix_match_only_at_a_dash() -> None:
    table = PriceTable({"foo": Price(1.0, 2.0), "foo-bar": Price(3.0, 4.0)}, "2026-01-01")
    assert table.lookup("foo-baz") == Price(1.0, 2.0)
    assert table.lookup("foo-bar-baz") == Price(3.0, 4.0)
    assert table.lookup("foobar") is None
    assert table.lookup("foo.1") is None
    assert table.lookup("fo") is None


# --- first_unpriced ---------------------------------------------------------------------


def test_first_unpriced_is_true_once_per_normalised_model() -> None:
    table = PriceTable.load()  # fresh memory
    assert table.first_unpriced("acme-llm") is True
    assert table.first_unpriced("acme-llm") is False
    assert table.first_unpriced("vendor/ACME-LLM-2025-01-01") is False  # same model
    assert table.first_unpriced(None) is True
    assert table.first_unpriced(None) is False
    assert table.first_unpriced("gpt-4o") is False  # priced


def test_first_unpriced_memory_is_bounded() -> None:
    table = PriceTable.load()
    assert all(table.first_unpriced(f"acme-{i}") for i in range(1000))
    # Full: new names are no longer reported (nor remembered), old ones stay quiet.
    assert table.first_unpriced("acme-new") is False
    assert table.first_unpriced("acme-new") is False
    assert table.first_unpriced("acme-0") is False

    small = PriceTable({}, "2026-01-01", unpriced_memory=2)
    assert [small.first_unpriced(m) for m in ["a", "b", "c", "a"]] == [True, True, False, False]


# --- cost arithmetic --------------------------------------------------------------------


def test_cost_plain(table: PriceTable) -> None:
    usage = Usage(input_tokens=1000, output_tokens=500)
    assert table.cost("gpt-4o", usage) == pytest.approx((1000 * 2.50 + 500 * 10.00) / 1e6)


def test_cost_with_cached_input_openai_semantics(table: PriceTable) -> None:
    # input_tokens includes the 200 cached ones: 800 at 2.50, 200 at 1.25.
    usage = Usage(input_tokens=1000, output_tokens=500, cached_input_tokens=200)
    assert table.cost("gpt-4o", usage) == pytest.approx(0.00725)


def test_cost_with_cache_writes(table: PriceTable) -> None:
    # 10k input: 6k cache reads at 0.30, 3k cache writes at 3.75, 1k plain at 3.00.
    usage = Usage(
        input_tokens=10_000, output_tokens=200, cached_input_tokens=6000, cache_write_tokens=3000
    )
    expected = (1000 * 3.00 + 6000 * 0.30 + 3000 * 3.75 + 200 * 15.00) / 1e6
    assert expected == pytest.approx(0.01905)
    assert table.cost("claude-sonnet-4-5-20250929", usage) == pytest.approx(expected)


def test_missing_cache_rates_bill_as_input(table: PriceTable) -> None:
    # gpt-3.5-turbo has no cached price: cached tokens cost what plain input costs.
    usage = Usage(input_tokens=1000, output_tokens=100, cached_input_tokens=400)
    assert table.cost("gpt-3.5-turbo", usage) == pytest.approx((1000 * 0.50 + 100 * 1.50) / 1e6)

    price = Price(input=2.0, output=4.0, cached_input=1.0)  # no cache_write price
    usage = Usage(input_tokens=1000, cached_input_tokens=100, cache_write_tokens=300)
    assert price.cost(usage) == pytest.approx((600 * 2.0 + 100 * 1.0 + 300 * 2.0) / 1e6)


def test_reasoning_tokens_are_not_billed_twice(table: PriceTable) -> None:
    usage = Usage(input_tokens=0, output_tokens=1000, reasoning_tokens=800)
    assert table.cost("o3", usage) == pytest.approx(1000 * 8.00 / 1e6)


def test_embeddings_bill_input_only(table: PriceTable) -> None:
    usage = Usage(input_tokens=1_000_000)
    assert table.cost("text-embedding-3-small", usage) == pytest.approx(0.02)


def test_cost_is_never_negative() -> None:
    price = Price(input=2.0, output=4.0, cached_input=1.0, cache_write=3.0)
    # Inconsistent counts (more cached than total): the uncached remainder clamps at 0.
    usage = Usage(input_tokens=100, cached_input_tokens=150, cache_write_tokens=50)
    assert price.cost(usage) == pytest.approx((150 * 1.0 + 50 * 3.0) / 1e6)
    assert price.cost(Usage(input_tokens=-5, output_tokens=-5, cached_input_tokens=-5)) == 0.0


def test_zero_usage_costs_zero_for_a_priced_model(table: PriceTable) -> None:
    cost = table.cost("gpt-4o", Usage())
    assert cost is not None
    assert cost == 0.0


# --- the user's file --------------------------------------------------------------------


def test_user_file_overrides_and_extends(tmp_path: Path, table: PriceTable) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(
        "models:\n"
        "  gpt-4o: {input: 2.00, output: 8.00}\n"
        "  acme-llm: {input: 0.5, output: 1, cached_input: 0.05, cache_write: 0.6}\n",
        encoding="utf-8",
    )
    merged = PriceTable.load(path)
    assert merged.lookup("gpt-4o-2024-08-06") == Price(2.00, 8.00)  # replaced whole
    assert merged.lookup("acme-llm") == Price(0.5, 1.0, 0.05, 0.6)
    assert merged.lookup("gpt-4o-mini") == table.lookup("gpt-4o-mini")  # others kept
    assert merged.as_of == table.as_of
    usage = Usage(input_tokens=1000, output_tokens=1000)
    assert merged.cost("openai/gpt-4o", usage) == pytest.approx((2000 + 8000) / 1e6)


def test_a_copy_of_the_shipped_file_is_a_valid_user_file(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(SHIPPED.read_text(encoding="utf-8"), encoding="utf-8")
    assert PriceTable.load(path).prices == PriceTable.load().prices


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("models: {gpt-4o: {input: 1, output: [}", ["invalid YAML", "line 1"]),
        ("- gpt-4o\n", ["models:"]),
        ("gpt-4o: {input: 1, output: 2}\n", ["'gpt-4o'", "models"]),
        ("models: [gpt-4o]\n", ["models must be a mapping"]),
        ("models:\n  gpt-4o: 2.5\n", ["'gpt-4o'", "mapping"]),
        ("models:\n  gpt-4o: {input: -1, output: 10}\n", ["'gpt-4o'", "input", "non-negative"]),
        ("models:\n  gpt-4o: {input: 1, output: 10, cache_read: 1}\n", ["'gpt-4o'", "cache_read"]),
        ("models:\n  gpt-4o: {input: 1}\n", ["'gpt-4o'", "output is required"]),
        ("models:\n  gpt-4o: {input: yes, output: 1}\n", ["'gpt-4o'", "input", "True"]),
        ("models:\n  gpt-4o: {input: '2.5', output: 1}\n", ["'gpt-4o'", "input", "'2.5'"]),
        ("models:\n  gpt-4o: {input: .nan, output: 1}\n", ["'gpt-4o'", "input"]),
        (
            "models:\n  gpt-4o-2024-05-13: {input: 5, output: 15}\n",
            ["'gpt-4o-2024-05-13'", "write 'gpt-4o'"],
        ),
        ("models:\n  OpenAI/GPT-4o: {input: 5, output: 15}\n", ["'OpenAI/GPT-4o'", "'gpt-4o'"]),
        ("as_of: [1]\nmodels: {}\n", ["as_of"]),
    ],
)
def test_malformed_user_file(tmp_path: Path, text: str, fragments: list[str]) -> None:
    path = tmp_path / "my-prices.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        PriceTable.load(path)
    message = info.value.message
    assert str(path) in message
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


def test_missing_user_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        PriceTable.load(path)
    assert str(path) in info.value.message
    assert "telemetry.prices_file" in info.value.message


def test_user_file_may_set_as_of_and_an_empty_models_map(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text("as_of: 2026-01-31\nmodels: {}\n", encoding="utf-8")
    assert PriceTable.load(path).prices == PriceTable.load().prices
