"""The price table: costs by hand, alias resolution, overrides, and the unknown-model error."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetlab.errors import ConfigError, UserError
from fleetlab.models import Usage, cost_usd, load_price_overrides, price_for
from fleetlab.models.prices import PRICES_ENV, Price, clear_price_overrides

# 1,200 fresh input, 350 output, 5,000 read from the cache, 2,000 written to it
USAGE = Usage(
    input_tokens=1200,
    output_tokens=350,
    cache_read_input_tokens=5000,
    cache_creation_input_tokens=2000,
)


@pytest.fixture(autouse=True)
def _clean_overrides(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(PRICES_ENV, raising=False)
    clear_price_overrides()
    yield
    clear_price_overrides()


@pytest.mark.parametrize(
    ("model_id", "expected"),
    [
        # 1200*3 + 350*15 + 5000*0.30 + 2000*3.75 = 3600 + 5250 + 1500 + 7500 = 17,850 micro-$
        ("claude-sonnet-4-5", 0.017850),
        # 1200*1 + 350*5 + 5000*0.10 + 2000*1.25 = 1200 + 1750 + 500 + 2500 = 5,950
        ("claude-haiku-4-5", 0.005950),
        # 1200*5 + 350*25 + 5000*0.50 + 2000*6.25 = 6000 + 8750 + 2500 + 12500 = 29,750
        ("claude-opus-4-5", 0.029750),
        # 1200*15 + 350*75 + 5000*1.50 + 2000*18.75 = 18000 + 26250 + 7500 + 37500 = 89,250
        ("claude-opus-4-1", 0.089250),
    ],
)
def test_cost_matches_a_hand_computation(model_id: str, expected: float) -> None:
    assert cost_usd(model_id, USAGE) == pytest.approx(expected)


def test_published_list_prices() -> None:
    assert price_for("claude-sonnet-4-5") == Price(3.0, 15.0, 3.75, 0.30)
    assert price_for("claude-haiku-4-5") == Price(1.0, 5.0, 1.25, 0.10)
    assert price_for("claude-opus-4-5") == Price(5.0, 25.0, 6.25, 0.50)
    assert price_for("claude-opus-4-1") == Price(15.0, 75.0, 18.75, 1.50)
    assert cost_usd("claude-sonnet-4-5", Usage()) == 0.0


@pytest.mark.parametrize(
    ("alias", "model_id"),
    [
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("anthropic:claude-sonnet-4-5", "claude-sonnet-4-5"),
        ("  Claude-Sonnet-4-5 ", "claude-sonnet-4-5"),
        ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5"),
        ("claude-opus-4-1@20250805", "claude-opus-4-1"),
        ("claude-haiku-4-5-20251001", "claude-haiku-4-5"),
        ("claude-opus-4-0", "claude-opus-4"),
        ("claude-opus-4-20250514", "claude-opus-4"),
        ("claude-3-7-sonnet-latest", "claude-3-7-sonnet"),
    ],
)
def test_dated_and_aliased_ids_resolve_to_their_model(alias: str, model_id: str) -> None:
    assert price_for(alias) == price_for(model_id)


def test_a_newer_model_is_not_priced_as_its_prefix() -> None:
    # claude-opus-4-9 must not fall back to claude-opus-4's $15/$75
    with pytest.raises(UserError) as caught:
        price_for("claude-opus-4-9")
    message = str(caught.value)
    assert "'claude-opus-4-9'" in message
    assert "claude-sonnet-4-5" in message  # lists the known ids
    assert PRICES_ENV in message
    assert '[models."claude-opus-4-9"]' in message


def test_simulated_models_are_priced_like_sonnet_and_labelled() -> None:
    sim = price_for("sim:default")
    sonnet = price_for("claude-sonnet-4-5")
    assert sim.simulated
    assert "simulated" in sim.note
    assert (sim.input, sim.output, sim.cache_write, sim.cache_read) == (
        sonnet.input,
        sonnet.output,
        sonnet.cache_write,
        sonnet.cache_read,
    )
    assert cost_usd("sim:eager", USAGE) == pytest.approx(cost_usd("claude-sonnet-4-5", USAGE))
    assert price_for("scripted:anything").simulated


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_an_override_file_adds_and_replaces_prices(tmp_path: Path) -> None:
    path = write(
        tmp_path / "prices.toml",
        """
        [models."my-model"]
        input = 2.0
        output = 8.0
        cache_write = 2.5
        cache_read = 0.2

        [models."claude-haiku-4-5"]  # a negotiated rate
        input = 0.5
        output = 2.5
        """,
    )
    loaded = load_price_overrides(path)
    assert set(loaded) == {"my-model", "claude-haiku-4-5"}
    # 1200*2 + 350*8 + 5000*0.2 + 2000*2.5 = 2400 + 2800 + 1000 + 5000 = 11,200
    assert cost_usd("my-model", USAGE) == pytest.approx(0.0112)
    # cache prices default to 1.25x and 0.1x input
    haiku = price_for("claude-haiku-4-5-20251001")
    assert (haiku.input, haiku.output, haiku.cache_write, haiku.cache_read) == (
        0.5,
        2.5,
        0.625,
        0.05,
    )
    clear_price_overrides()
    assert price_for("claude-haiku-4-5").input == 1.0


def test_the_env_var_names_an_override_file_and_changes_are_picked_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "prices.toml", '[models."house-model"]\ninput = 1\noutput = 2\n')
    monkeypatch.setenv(PRICES_ENV, str(path))
    assert price_for("house-model").output == 2.0
    write(path, '[models."house-model"]\ninput = 1\noutput = 4\n')
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert price_for("house-model").output == 4.0


def test_the_simulated_price_can_be_overridden(tmp_path: Path) -> None:
    load_price_overrides(write(tmp_path / "p.toml", '[models."sim:*"]\ninput = 0\noutput = 0\n'))
    assert cost_usd("sim:default", USAGE) == 0.0
    assert price_for("sim:default").simulated


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ('[models."m"]\ninput = 1\n', "missing output"),
        ('[models."m"]\ninput = -1\noutput = 2\n', "input must be a non-negative number"),
        ('[models."m"]\ninput = "cheap"\noutput = 2\n', "input must be a non-negative number"),
        ('[models."m"]\ninput = 1\noutput = 2\ncache = 3\n', "unknown field(s) cache"),
        ("[models]\n", "expected one or more"),
        ("models = [", "not valid TOML"),
    ],
)
def test_a_malformed_override_file_names_the_file_and_field(
    tmp_path: Path, text: str, complaint: str
) -> None:
    path = write(tmp_path / "bad.toml", text)
    with pytest.raises(ConfigError) as caught:
        load_price_overrides(path)
    assert str(path) in str(caught.value)
    assert complaint in str(caught.value)


def test_a_missing_override_file_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PRICES_ENV, str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match=PRICES_ENV):
        price_for("claude-sonnet-4-5")
