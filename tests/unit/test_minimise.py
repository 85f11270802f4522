"""Data minimisation: quoted values and long numbers leave failure messages; sole proprietorships are counted in
a dry run's tally, never sampled."""

from __future__ import annotations

from worker.company import Company
from worker.retention.minimise import mask_values, sole_proprietor
from worker.sync.policies import RecordPlan
from worker.sync.preview import tally


def test_a_validation_message_loses_its_quoted_values_and_long_numbers() -> None:
    message = (
        "FIELD_CUSTOM_VALIDATION_EXCEPTION: Name 'Kari Nordmann' may not change; phone 98765432, code 1234"
    )

    masked = mask_values(message)

    assert "Kari" not in masked and "98765432" not in masked
    assert masked.startswith("FIELD_CUSTOM_VALIDATION_EXCEPTION: Name") and "code 1234" in masked


def test_double_and_typographic_quotes_are_masked_too() -> None:
    assert mask_values('Value "Storgata 1" and «Oslo» and “Bergen”') == 'Value "***" and "***" and "***"'


def test_sole_proprietorships_are_recognised_by_legal_form() -> None:
    enk = Company(org_number="923609016", country="NO", legal_form="ENK")
    assert sole_proprietor(enk) and not sole_proprietor(enk.model_copy(update={"legal_form": "AS"}))
    assert not sole_proprietor(None)


def test_a_sole_proprietors_change_is_counted_but_never_sampled() -> None:
    records = {"001A": {"Name": "Kari Nordmann"}, "001B": {"Name": "Acme"}}
    plans = {rid: RecordPlan(changes={"Name": f"{rec['Name']} X"}) for rid, rec in records.items()}

    tallies = tally(records, plans, private={"001A"})

    assert tallies["Name"].count == 2 and tallies["Name"].withheld == 1
    assert [s["record_id"] for s in tallies["Name"].samples] == ["001B"]
    assert "Kari" not in str(tallies["Name"].samples)
