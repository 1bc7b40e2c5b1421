"""common/addresses.py: English country names, the country select, addresses laid out per country."""

from __future__ import annotations

import pytest
from django.utils import translation

from common.addresses import address_lines, country_choices, country_name


def _address(**fields: str) -> dict[str, str]:
    base = {
        "first_name": "Ada",
        "last_name": "Lovelace",
        "company": "",
        "address_1": "",
        "address_2": "",
        "city": "",
        "province": "",
        "postal_code": "",
        "country_code": "",
        "phone": "",
    }
    return {**base, **fields}


@pytest.mark.parametrize(
    ("code", "name"),
    [
        ("US", "United States of America"),
        ("GB", "United Kingdom"),
        ("DE", "Germany"),
        ("JP", "Japan"),
        ("KW", "Kuwait"),
        ("KR", "South Korea"),
        ("de", "Germany"),
        ("XX", "XX"),
        ("", ""),
    ],
)
def test_country_name_english(code, name):
    assert country_name(code=code) == name


def test_country_name_is_english_in_another_language():
    with translation.override("de"):
        assert country_name(code="DE") == "Germany"
        assert dict(country_choices())["AT"] == "Austria"


def test_country_choices_sorted_by_name_with_codes():
    choices = country_choices()
    names = [name for _, name in choices]
    assert names == sorted(names, key=str.casefold)
    assert len(choices) == len({code for code, _ in choices}) >= 249
    assert ("US", "United States of America") in choices
    assert all(len(code) == 2 and code.isupper() for code, _ in choices)
    choices.clear()  # callers get their own list
    assert country_choices()


def test_address_lines_us_keeps_the_state():
    address = _address(
        company="Acme Inc.",
        address_1="100 Main St",
        address_2="Suite 5",
        city="Springfield",
        province="IL",
        postal_code="62701",
        country_code="US",
        phone="+1 217 555 0100",
    )
    assert address_lines(address=address) == [
        "Ada Lovelace",
        "Acme Inc.",
        "100 Main St",
        "Suite 5",
        "Springfield, IL 62701",
        "United States of America",
    ]


def test_address_lines_canada():
    address = _address(address_1="24 Sussex Dr", city="Ottawa", province="ON", postal_code="K1M 1M4", country_code="CA")
    assert address_lines(address=address) == ["Ada Lovelace", "24 Sussex Dr", "Ottawa, ON K1M 1M4", "Canada"]


def test_address_lines_australia():
    address = _address(address_1="1 Macquarie St", city="Sydney", province="NSW", postal_code="2000", country_code="AU")
    assert address_lines(address=address) == ["Ada Lovelace", "1 Macquarie St", "Sydney NSW 2000", "Australia"]


def test_address_lines_gb_town_and_postcode_on_their_own_lines():
    address = _address(address_1="10 Downing Street", city="London", postal_code="SW1A 2AA", country_code="GB")
    assert address_lines(address=address) == [
        "Ada Lovelace",
        "10 Downing Street",
        "London",
        "SW1A 2AA",
        "United Kingdom",
    ]


def test_address_lines_gb_with_county():
    address = _address(
        address_1="1 High St", city="Guildford", province="Surrey", postal_code="GU1 3AA", country_code="GB"
    )
    assert address_lines(address=address) == [
        "Ada Lovelace",
        "1 High St",
        "Guildford",
        "Surrey",
        "GU1 3AA",
        "United Kingdom",
    ]


def test_address_lines_germany_postcode_before_city():
    address = _address(address_1="Unter den Linden 1", city="Berlin", postal_code="10115", country_code="DE")
    assert address_lines(address=address) == ["Ada Lovelace", "Unter den Linden 1", "10115 Berlin", "Germany"]


def test_address_lines_france_postcode_before_city():
    address = _address(address_1="5 Avenue Anatole France", city="Paris", postal_code="75007", country_code="FR")
    assert address_lines(address=address) == ["Ada Lovelace", "5 Avenue Anatole France", "75007 Paris", "France"]


def test_address_lines_italy_province_after_city():
    address = _address(address_1="Via Roma 1", city="Roma", province="RM", postal_code="00144", country_code="IT")
    assert address_lines(address=address) == ["Ada Lovelace", "Via Roma 1", "00144 Roma RM", "Italy"]


def test_address_lines_japan_postcode_mark_prefecture_city_family_name_first():
    address = _address(
        first_name="Taro",
        last_name="Yamada",
        address_1="1-1 Chiyoda",
        city="Chiyoda-ku",
        province="Tokyo",
        postal_code="100-0001",
        country_code="JP",
    )
    assert address_lines(address=address) == ["〒100-0001", "Tokyo Chiyoda-ku", "1-1 Chiyoda", "Yamada Taro", "Japan"]


def test_address_lines_japan_in_japanese_runs_prefecture_and_city_together():
    address = _address(
        first_name="太郎",
        last_name="山田",
        address_1="千代田1-1",
        city="千代田区",
        province="東京都",
        postal_code="100-0001",
        country_code="JP",
    )
    assert address_lines(address=address) == ["〒100-0001", "東京都千代田区", "千代田1-1", "山田 太郎", "Japan"]


def test_address_lines_kuwait_default_layout_with_governorate():
    address = _address(
        address_1="Block 3, Street 12, House 7",
        city="Salmiya",
        province="Hawalli",
        postal_code="22003",
        country_code="KW",
    )
    assert address_lines(address=address) == [
        "Ada Lovelace",
        "Block 3, Street 12, House 7",
        "22003 Salmiya",
        "Hawalli",
        "Kuwait",
    ]


def test_address_lines_default_without_province():
    address = _address(address_1="Rua Augusta 100", city="Lisboa", postal_code="1100-053", country_code="PT")
    assert address_lines(address=address) == ["Ada Lovelace", "Rua Augusta 100", "1100-053 Lisboa", "Portugal"]


def test_address_lines_us_without_state():
    address = _address(address_1="100 Main St", city="Springfield", postal_code="62701", country_code="US")
    assert address_lines(address=address) == [
        "Ada Lovelace",
        "100 Main St",
        "Springfield 62701",
        "United States of America",
    ]


def test_address_lines_skips_blank_and_missing_optional_fields():
    address = {
        "first_name": "  Ada ",
        "last_name": "",
        "company": "   ",
        "address_1": "Unter den Linden 1",
        "address_2": None,
        "city": "Berlin",
        "postal_code": "10115",
        "country_code": "de",
    }
    assert address_lines(address=address) == ["Ada", "Unter den Linden 1", "10115 Berlin", "Germany"]


def test_address_lines_not_a_mapping_is_empty():
    assert address_lines(address=None) == []  # type: ignore[arg-type]
    assert address_lines(address={}) == []
