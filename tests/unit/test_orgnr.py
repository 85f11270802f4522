"""Org-number validation per country (worker.orgnr, python-stdnum): NO, SE, DK, FI.

For each country: a valid number, the same number with a wrong check digit, the formats people type (spaces,
dashes, the country prefix), and blanks. A valid number comes back in the compact form the registry request
uses (digits only); a refused one raises InvalidOrgNumber (code ORGNR_INVALID), whose message names the
country and the reason but never the number (it is stored on the failure row).
"""

from __future__ import annotations

import pytest

from worker.errors import InvalidOrgNumber
from worker.orgnr import SUPPORTED_COUNTRIES, normalise

#: One valid number per country (checksums verified by hand: mod 11 for NO/DK/FI, Luhn for SE).
VALID = {"NO": "923609016", "SE": "5560360793", "DK": "13585628", "FI": "20774740"}
#: The same numbers with the last digit changed, so that only the check digit is wrong.
BAD_CHECK_DIGIT = {"NO": "923609017", "SE": "5560360794", "DK": "13585627", "FI": "20774741"}

#: (country, as typed in the CRM, compact form).
FORMATTED = [
    ("NO", "923 609 016", "923609016"),  # as brreg prints it
    ("NO", " 923609016 ", "923609016"),
    ("SE", "556036-0793", "5560360793"),  # as Bolagsverket prints it
    ("SE", "556036 0793", "5560360793"),
    ("DK", "13 58 56 28", "13585628"),
    ("DK", "DK13585628", "13585628"),  # the CVR as part of the Danish VAT number
    ("DK", "DK-13585628", "13585628"),
    ("FI", "2077474-0", "20774740"),  # Y-tunnus as the Finnish register prints it
    ("FI", "2077474 0", "20774740"),
    ("FI", "FI20774740", "20774740"),  # the Finnish VAT number
    ("FI", "FI 2077474-0", "20774740"),
]


def reason(country: str | None, raw: str | None) -> str:
    with pytest.raises(InvalidOrgNumber) as caught:
        normalise(country, raw)
    assert caught.value.code == "ORGNR_INVALID"
    return caught.value.message


def test_the_four_countries_are_the_supported_ones() -> None:
    assert frozenset({"NO", "SE", "DK", "FI"}) == SUPPORTED_COUNTRIES


@pytest.mark.parametrize("country", sorted(VALID))
def test_a_valid_number_is_returned_in_compact_form(country: str) -> None:
    assert normalise(country, VALID[country]) == VALID[country]
    assert normalise(country.lower(), VALID[country]) == VALID[country]  # country codes from the CRM vary
    assert normalise(f" {country} ", VALID[country]) == VALID[country]


@pytest.mark.parametrize("country", sorted(BAD_CHECK_DIGIT))
def test_a_wrong_check_digit_is_refused_without_echoing_the_number(country: str) -> None:
    message = reason(country, BAD_CHECK_DIGIT[country])

    assert message.startswith(f"{country} organisation number fails validation")
    assert "check" in message.lower()
    assert BAD_CHECK_DIGIT[country] not in message


@pytest.mark.parametrize(
    ("country", "typed", "compact"), FORMATTED, ids=[f"{c}-{t}" for c, t, _ in FORMATTED]
)
def test_a_formatted_number_is_accepted_and_compacted(country: str, typed: str, compact: str) -> None:
    assert normalise(country, typed) == compact


@pytest.mark.parametrize(
    ("country", "typed"),
    [("NO", "923-609-016"), ("NO", "NO923609016"), ("SE", "SE5560360793")],
    ids=["NO-dashes", "NO-prefix", "SE-prefix"],
)
def test_the_noise_accepted_for_dk_and_fi_is_accepted_for_no_and_se_too(country: str, typed: str) -> None:
    assert normalise(country, typed) == VALID[country]


@pytest.mark.parametrize("country", sorted(VALID))
@pytest.mark.parametrize("raw", [None, "", "   "], ids=["none", "empty", "spaces"])
def test_a_blank_number_is_missing(country: str, raw: str | None) -> None:
    assert reason(country, raw) == "organisation number is missing"


@pytest.mark.parametrize("country", sorted(VALID))
def test_a_number_of_the_wrong_length_or_with_letters_is_refused(country: str) -> None:
    number = VALID[country]
    for wrong in (number[:-1], number + "0", number[:-1] + "X"):
        assert reason(country, wrong).startswith(f"{country} organisation number fails validation")


def test_a_number_is_checked_against_its_own_country_only() -> None:
    # A valid Norwegian number is not a Swedish, Danish or Finnish one (lengths differ: 9, 10, 8, 8).
    for other in ("SE", "DK", "FI"):
        reason(other, VALID["NO"])
    reason("NO", VALID["SE"])


@pytest.mark.parametrize("country", ["", None, "XX", "DE"])
def test_an_unsupported_or_blank_country_is_refused(country: str | None) -> None:
    assert "is not supported (use one of NO, SE, DK, FI)" in reason(country, VALID["NO"])
