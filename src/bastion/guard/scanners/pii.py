"""PII: find and mask personal data with patterns that are validated, not just matched.

Every pattern is a bounded character-class run (no nested quantifiers: no backtracking blow-up),
and every candidate is checked the way the issuer defines it:

* ``EMAIL`` — local part, ``@``, a dotted domain with a letter TLD;
* ``PHONE`` — Google's libphonenumber (``phonenumbers``): a number valid for its region, with the
  default region for numbers written without a country code;
* ``CREDIT_CARD`` — 13–19 digits (spaces or dashes allowed between them) passing the Luhn check;
* ``IBAN`` — country code, check digits, the country's length, and ISO 13616 mod-97 = 1;
* ``US_SSN`` — ``AAA-GG-SSSS`` with the SSA's rules (area not 000, 666 or 900–999; group not 00;
  serial not 0000);
* ``IP_ADDRESS`` — IPv4 or IPv6 that Python's ``ipaddress`` accepts;
* ``URL_CREDENTIALS`` — a URL carrying ``user:password@``;
* ``PERSON`` and ``LOCATION`` — names of people and places, when a spaCy model is installed
  (``ner: auto``, the default, uses ``en_core_web_sm`` if present; ``ner: MODEL`` names a
  package or folder and must load; ``ner: off``). Names come last in precedence.

Detection runs on the canonical text (so fullwidth digits or zero-width characters inside an
e-mail address do not hide it) and spans are mapped back to the caller's text, where masking
replaces each with a placeholder (numbered by the pipeline's vault, see
:mod:`bastion.guard.vault`). Overlaps go to the more specific entity (a card number is not
also a phone number).
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

import phonenumbers

from bastion.guard.scanners.base import register
from bastion.guard.scanners.patterns import DIGIT, Finder, PatternScanner, regex_finder

EMAIL = re.compile(
    r"(?<![\w.%+-])[\w.%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,24}(?![\w-])"
)
CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}(?![A-Za-z0-9])")
SSN = re.compile(r"(?<![\d-])(\d{3})([- ])(\d{2})\2(\d{4})(?![\d-])")
IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
IPV6 = re.compile(r"(?<![\w:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:])")
URL_CREDENTIALS = re.compile(
    r"\b[A-Za-z][A-Za-z0-9+.-]{1,15}://"  # scheme
    r"[^\s:@/]{1,128}:[^\s@/]{1,128}@[^\s/?#]{1,256}"  # user:password@host
)

# ISO 13616 lengths by country (the registry's list; a wrong length fails even if mod-97 passes)
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18,
    "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24,
    "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24,
    "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip

MIN_PHONE_DIGITS = 5  # fewer digits in the whole text: no number of any country fits

# the order of precedence when two detections overlap: the more specific wins; names last
ENTITIES = (
    "URL_CREDENTIALS",
    "EMAIL",
    "IBAN",
    "CREDIT_CARD",
    "US_SSN",
    "IP_ADDRESS",
    "PHONE",
    "PERSON",
    "LOCATION",
)
NER_ENTITIES = ("PERSON", "LOCATION")  # found by a spaCy model, when one is installed
SPACY_LABELS = {"PERSON": ("PERSON", "PER"), "LOCATION": ("GPE", "LOC")}
DEFAULT_NER_MODEL = "en_core_web_sm"


def luhn(digits: str) -> bool:
    """The Luhn (mod 10) check used by payment card numbers."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def iban_valid(candidate: str) -> bool:
    """ISO 13616: the country's length, then mod-97 of the rearranged number equals 1."""
    iban = candidate.replace(" ", "")
    if IBAN_LENGTHS.get(iban[:2]) != len(iban):
        return False
    rearranged = iban[4:] + iban[:4]
    number = "".join(str(int(c, 36)) for c in rearranged)
    return int(number) % 97 == 1


def ssn_valid(area: str, group: str, serial: str) -> bool:
    return not (area in ("000", "666") or area.startswith("9") or group == "00" or serial == "0000")


def _ip_valid(candidate: str) -> bool:
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return False
    return True


_DIGIT_DOT_DIGIT = re.compile(r"\d\.\d")  # in every IPv4 address; far cheaper than IPV4


def _ip(text: str) -> Iterator[tuple[int, int]]:
    for pattern, mark in ((IPV4, "."), (IPV6, ":")):
        if mark not in text or (pattern is IPV4 and not _DIGIT_DOT_DIGIT.search(text)):
            continue
        for match in pattern.finditer(text):
            if match.group(0).count(":") != 1 and _ip_valid(match.group(0)):
                yield match.start(), match.end()


def _card(match: re.Match[str]) -> bool:
    digits = re.sub(r"\D", "", match.group(0))
    return 13 <= len(digits) <= 19 and luhn(digits)


class PhoneFinder:
    """Phone numbers: valid for ``region`` (libphonenumber's VALID leniency), and — when
    written with a ``+`` country code, a strong sign on its own — of a possible length for that
    country even if its digits are not an assigned range (fake or new numbers, a kept trunk
    ``0`` after the country code)."""

    def __init__(self, region: str) -> None:
        self.region = region

    def __call__(self, text: str) -> Iterator[tuple[int, int]]:
        if len(DIGIT.findall(text)) < MIN_PHONE_DIGITS:
            return
        seen: set[tuple[int, int]] = set()
        for match in phonenumbers.PhoneNumberMatcher(
            text, self.region, leniency=phonenumbers.Leniency.VALID
        ):
            seen.add((match.start, match.end))
            yield match.start, match.end
        if "+" not in text:
            return
        for match in phonenumbers.PhoneNumberMatcher(
            text, self.region, leniency=phonenumbers.Leniency.POSSIBLE
        ):
            if match.raw_string.startswith("+") and (match.start, match.end) not in seen:
                yield match.start, match.end


@functools.lru_cache(maxsize=4)
def load_ner(model: str, *, required: bool) -> Any:
    """A spaCy pipeline by package name or folder; None when spaCy or the model is missing
    and not ``required``."""
    try:
        import spacy
    except ImportError:
        if required:
            raise ValueError(
                f"pii: ner model {model!r} needs spaCy (pip install 'bastion-safety[ner]')"
            ) from None
        return None
    try:
        return spacy.load(model, exclude=["lemmatizer", "textcat"])
    except OSError:
        if required:
            raise ValueError(f"pii: ner: cannot load the spaCy model {model!r}") from None
        return None


class NerFinder:
    """Names of one kind (people, places) from a spaCy model; the document of the last text
    is kept, so the two kinds cost one run of the model."""

    def __init__(self, nlp: Any, entity: str) -> None:
        self.nlp, self.labels = nlp, SPACY_LABELS[entity]

    def __call__(self, text: str) -> Iterator[tuple[int, int]]:
        for ent in _doc(self.nlp, text).ents:
            if ent.label_ in self.labels:
                yield ent.start_char, ent.end_char


@functools.lru_cache(maxsize=2)
def _doc(nlp: Any, text: str) -> Any:
    return nlp(text)


@register
class PiiScanner(PatternScanner):
    """Flags and masks personal data; ``entities`` limits which kinds are looked for. With a
    spaCy model for names it is not ``bounded``: the model runs in a worker thread, within
    its time budget, and never on an event loop."""

    name: ClassVar[str] = "pii"
    stage: ClassVar[str] = "both"
    what: ClassVar[str] = "personal data"

    def is_bounded(self) -> bool:
        return self.ner is None

    def __init__(
        self,
        *,
        entities: Iterable[str] = ENTITIES,
        region: str = "US",
        ner: str = "auto",
        threshold: float = 0.5,
    ) -> None:
        wanted = list(entities)
        unknown = [e for e in wanted if e not in ENTITIES]
        if unknown:
            raise ValueError(f"pii: unknown entities {unknown}; known: {', '.join(ENTITIES)}")
        finders: dict[str, Finder] = {
            "URL_CREDENTIALS": regex_finder(URL_CREDENTIALS, require=("://",)),
            "EMAIL": regex_finder(EMAIL, require=("@",)),
            "IBAN": regex_finder(IBAN, lambda m: iban_valid(m.group(0)), require=DIGIT),
            "CREDIT_CARD": regex_finder(CARD, _card, require=DIGIT),
            "US_SSN": regex_finder(
                SSN, lambda m: ssn_valid(m.group(1), m.group(3), m.group(4)), require=DIGIT
            ),
            "IP_ADDRESS": _ip,
            "PHONE": PhoneFinder(region),
        }
        names = [e for e in NER_ENTITIES if e in wanted]
        self.ner = None
        if names and ner != "off":
            self.ner = load_ner(DEFAULT_NER_MODEL if ner == "auto" else ner, required=ner != "auto")
        if self.ner is not None:
            finders.update({e: NerFinder(self.ner, e) for e in names})
        elif names and list(entities) != list(ENTITIES):  # asked for by name: say why not
            raise ValueError(f"pii: {', '.join(names)} need a spaCy model (set ner: MODEL)")
        super().__init__(
            [(e, finders[e]) for e in ENTITIES if e in wanted and e in finders],
            threshold=threshold,
        )
