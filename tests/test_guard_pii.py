"""PII detection: each entity found and validated, masked in the caller's text."""

from pathlib import Path

import pytest

from bastion.guard.scanners.pii import PiiScanner, iban_valid, luhn, ssn_valid

PII = PiiScanner()


def found(text: str) -> list[tuple[str, str]]:
    return [(s.label, text[s.start : s.end]) for s in PII.scan(text).spans]


@pytest.mark.parametrize(
    ("text", "entity", "value"),
    [
        ("write to jane.doe+x@mail.example.co.uk today", "EMAIL", "jane.doe+x@mail.example.co.uk"),
        ("call (415) 555-2671 now", "PHONE", "(415) 555-2671"),
        ("call +44 20 7946 0958 now", "PHONE", "+44 20 7946 0958"),
        # with a + country code, a possible length is enough (fake or unassigned ranges)
        ("on +55 (11) 9998-3425 today", "PHONE", "+55 (11) 9998-3425"),
        ("card 4111-1111-1111-1111 ok", "CREDIT_CARD", "4111-1111-1111-1111"),
        ("card 378282246310005 ok", "CREDIT_CARD", "378282246310005"),
        ("pay DE89 3704 0044 0532 0130 00 now", "IBAN", "DE89 3704 0044 0532 0130 00"),
        ("ssn 078-05-1120.", "US_SSN", "078-05-1120"),
        ("host 10.0.0.254 up", "IP_ADDRESS", "10.0.0.254"),
        ("host fe80::1ff:fe23:4567:890a up", "IP_ADDRESS", "fe80::1ff:fe23:4567:890a"),
        ("db postgres://admin:s3cret@db.internal:5432/app", "URL_CREDENTIALS", "postgres://admin:s3cret@db.internal:5432"),
    ],
)  # fmt: skip
def test_each_entity_is_found(text: str, entity: str, value: str) -> None:
    assert (entity, value) in found(text)


@pytest.mark.parametrize(
    "text",
    [
        "card 4111 1111 1111 1112",  # fails Luhn
        "IBAN DE89 3704 0044 0532 0130 01",  # fails mod-97
        "ssn 666-05-1120 or 078-00-1120 or 900-12-3456",  # impossible SSNs
        "version 1.2.3.4567 and time 12:30:45",  # not IP addresses
        "call 555-0000",  # too short to be a valid number
        "score was +12 3 points",  # a plus sign alone does not make a phone number
    ],
)
def test_invalid_lookalikes_are_not_flagged(text: str) -> None:
    assert found(text) == []


def test_validators_on_known_values() -> None:
    assert luhn("79927398713") and not luhn("79927398710")
    assert iban_valid("GB82WEST12345698765432") and not iban_valid("GB82WEST1234569876543")
    assert ssn_valid("078", "05", "1120") and not ssn_valid("000", "05", "1120")


def test_masking_uses_original_offsets_through_invisible_characters() -> None:
    text = "mail ｊａｎｅ@example.com or jo\u200bhn@example.org please"
    result = PII.scan(text)
    assert result.flagged
    assert result.sanitized == "mail <EMAIL> or <EMAIL> please"


def test_overlaps_go_to_the_more_specific_entity() -> None:
    # a card number is also a plausible digit run for the phone matcher: one detection only
    assert found("4111111111111111") == [("CREDIT_CARD", "4111111111111111")]


def test_entity_selection_and_unknown_entities() -> None:
    only_email = PiiScanner(entities=["EMAIL"])
    assert [s.label for s in only_email.scan("a@b.io 10.0.0.1").spans] == ["EMAIL"]
    with pytest.raises(ValueError, match="unknown entities"):
        PiiScanner(entities=["SHOE_SIZE"])


def test_clean_text_is_returned_unchanged_as_sanitized() -> None:
    result = PII.scan("nothing personal here")
    assert not result.flagged and result.sanitized == "nothing personal here"


def _ner_model(tmp_path: Path) -> str:
    """A real spaCy pipeline saved to disk: a rule-based entity recognizer (no statistical
    model can be downloaded here; the scanner loads either kind the same way)."""
    import spacy

    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns(
        [
            {"label": "PERSON", "pattern": [{"LOWER": "ann"}, {"LOWER": "lee"}]},
            {"label": "GPE", "pattern": "Lyon"},
            {"label": "ORG", "pattern": "Acme"},
        ]
    )
    nlp.to_disk(tmp_path / "ner")
    return str(tmp_path / "ner")


def test_names_and_places_with_a_spacy_model(tmp_path: Path) -> None:
    scanner = PiiScanner(ner=_ner_model(tmp_path))
    text = "Ann\u200b Lee of Acme moved to Lyon; mail ann.lee@acme.example."
    result = scanner.scan(text)
    found = [(s.label, text[s.start : s.end]) for s in result.spans]
    assert found == [
        ("PERSON", "Ann\u200b Lee"),
        ("LOCATION", "Lyon"),
        ("EMAIL", "ann.lee@acme.example"),
    ]  # the organisation is not personal data; the e-mail wins over any name inside it
    assert result.sanitized == "<PERSON> of Acme moved to <LOCATION>; mail <EMAIL>."
    # a model may take its time: the pipeline runs it in a worker thread, never on a loop
    assert not scanner.is_bounded() and PiiScanner(ner="off").is_bounded()


def test_ner_is_optional_and_a_named_model_must_load(tmp_path: Path) -> None:
    assert PiiScanner().ner is None  # auto: en_core_web_sm is not installed here
    assert PiiScanner(ner="off").scan("Ann Lee").spans == ()
    with pytest.raises(ValueError, match="cannot load the spaCy model"):
        PiiScanner(ner=str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="need a spaCy model"):
        PiiScanner(entities=["EMAIL", "PERSON"], ner="off")
