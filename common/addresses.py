"""Country names and postal addresses as a person reads them (issue 11 item 7).

Country names come from ``django-countries`` (pinned in requirements.txt). It was chosen
over ``pycountry`` and Babel because it ships its ISO 3166-1 table inside the package (no
download at run time), has no dependencies beyond Django's own, and gives the names people
use ("Bolivia", "South Korea") instead of ISO's formal ones ("Bolivia, Plurinational State
of"); Babel's CLDR data would be a much larger install for a single table. Names are always
English here, whatever language a request is in.

``address_lines`` formats the address shape the store API accepts
(``carts.serializers.AddressSerializer``) the way the destination country writes it: the
locality line(s) follow the country's order, blank fields are skipped, and the last line is
the country's name. The phone number is not part of a postal address: show it beside.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cache

from django.utils import translation
from django_countries import countries

# Locality layouts. Each takes (city, province, postal_code), already stripped, and returns lines.
_Layout = Callable[[str, str, str], list[str]]


def _join(*parts: str, sep: str = " ") -> str:
    return sep.join(p for p in parts if p)


def _city_province_postal(city: str, province: str, postal: str) -> list[str]:
    # "Springfield, IL 62701" (US, Canada): the comma separates the city from the state.
    if not (city and province):
        return [_join(city, province, postal)]
    return [f"{city}, {_join(province, postal)}"]


def _city_province_postal_no_comma(city: str, province: str, postal: str) -> list[str]:
    # Australia Post: "Sydney NSW 2000".
    return [_join(city, province, postal)]


def _city_then_postcode(city: str, province: str, postal: str) -> list[str]:
    # Royal Mail / An Post: post town, county (optional), postcode, each on its own line.
    return [city, province, postal]


def _postal_city_province(city: str, province: str, postal: str) -> list[str]:
    # Italy: "00144 Roma RM".
    return [_join(postal, city, province)]


def _postal_city(city: str, province: str, postal: str) -> list[str]:
    # Most of Europe and the default: "10115 Berlin", then the region when there is one.
    return [_join(postal, city), province]


_LAYOUTS: dict[str, _Layout] = {
    "US": _city_province_postal,
    "CA": _city_province_postal,
    "AU": _city_province_postal_no_comma,
    "GB": _city_then_postcode,
    "IE": _city_then_postcode,
    "IT": _postal_city_province,
}


def country_name(*, code: str) -> str:
    """The English name of an ISO 3166-1 alpha-2 code ("DE" -> "Germany"); an unknown code as given."""
    code = (code or "").strip().upper()
    if not code:
        return ""
    with translation.override("en"):
        return countries.name(code) or code


@cache
def _country_choices() -> tuple[tuple[str, str], ...]:
    with translation.override("en"):
        pairs = [(code, str(name)) for code, name in countries]
    return tuple(sorted(pairs, key=lambda pair: pair[1].casefold()))


def country_choices() -> list[tuple[str, str]]:
    """Every country as ``(code, English name)``, sorted by name: for a form's select."""
    return list(_country_choices())


def _field(address: Mapping[str, str], key: str) -> str:
    value = address.get(key)
    return str(value).strip() if value is not None else ""


def _is_latin(text: str) -> bool:
    return all(ord(ch) < 0x2E80 for ch in text)


def _japan_lines(f: Callable[[str], str]) -> list[str]:
    # Japanese order, largest to smallest: 〒postcode, prefecture + city, street, then who.
    # Family name first; prefecture and city run together when written in Japanese.
    province, city = f("province"), f("city")
    locality = _join(province, city, sep="" if not (_is_latin(province) or _is_latin(city)) else " ")
    postal = f("postal_code")
    return [
        f"〒{postal}" if postal else "",
        locality,
        f("address_1"),
        f("address_2"),
        f("company"),
        _join(f("last_name"), f("first_name")),
    ]


def address_lines(*, address: Mapping[str, str]) -> list[str]:
    """The lines of a postal address as the destination country writes it, the country's name last.

    ``address`` has the store API's keys (first_name, last_name, company, address_1,
    address_2, city, province, postal_code, country_code, phone); missing or blank ones are
    skipped. The phone is not included.
    """
    if not isinstance(address, Mapping):
        return []

    def f(key: str) -> str:
        return _field(address, key)

    code = f("country_code").upper()
    if code == "JP":
        lines = _japan_lines(f)
    else:
        layout = _LAYOUTS.get(code, _postal_city)
        lines = [
            _join(f("first_name"), f("last_name")),
            f("company"),
            f("address_1"),
            f("address_2"),
            *layout(f("city"), f("province"), f("postal_code")),
        ]
    lines.append(country_name(code=code))
    return [line for line in lines if line]
