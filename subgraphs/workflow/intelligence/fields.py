"""Key fields found in a text: dates and deadlines, amounts with their currency, references.

Regular expressions find the candidates; dateutil reads the dates. A date is a deadline
when the words just before it say so ("bids must be submitted by 15 March 2027").
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from dateutil import parser as dateparser

MONTHS = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
    r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
TIME = r"(?:\s*(?:at\s+)?(?P<time>\d{1,2}[:h]\d{2}(?:\s*[ap]\.?m\.?)?))?"
DATE = re.compile(
    r"\b(?P<date>"
    rf"\d{{1,2}}(?:st|nd|rd|th)?\s+{MONTHS}\s+\d{{4}}"  # 15 March 2027
    rf"|{MONTHS}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}"  # March 15, 2027
    r"|\d{4}-\d{2}-\d{2}"  # 2027-03-15
    r"|\d{1,2}[/.]\d{1,2}[/.]\d{4}"  # 15/03/2027, 15.03.2027 (day first)
    rf"){TIME}",
    re.IGNORECASE,
)
DEADLINE_WORDS = re.compile(
    r"\b(?:deadline|due|by|no later than|not later than|before|until|closing|closes|"
    r"expires?|submitted|submission|latest)\b[^.;\n]{0,40}$",
    re.IGNORECASE,
)
CURRENCY_CODES = "EUR|USD|GBP|CHF|CAD|AUD|JPY|SEK|NOK|DKK|PLN"
SYMBOLS = {"€": "EUR", "$": "USD", "£": "GBP", "¥": "JPY"}
NUMBER = r"\d{1,3}(?:[ ,.\u00a0\u202f']\d{3})*(?:[.,]\d{1,2})?|\d+(?:[.,]\d{1,2})?"
AMOUNT = re.compile(
    rf"(?:(?P<pre>{CURRENCY_CODES}|[€$£¥])\s?(?P<n1>{NUMBER})"
    rf"|(?P<n2>{NUMBER})\s?(?P<post>{CURRENCY_CODES}|[€$£¥]|euros?|dollars?|pounds?))"
    r"(?![\w])",
    re.IGNORECASE,
)
REFERENCE = re.compile(
    r"\b(?P<label>tender|rfq|rfp|rfi|purchase order|po|invoice|contract|bid|offer|lot|"
    r"ref(?:erence)?|order|case|patient id|mrn)\.?"
    r"(?:\s+(?:no\.?|number|nr\.?|#|id))?\s*[:#]?\s*"
    r"(?P<value>(?=[A-Z0-9/-]*\d)[A-Z0-9][A-Z0-9/-]{2,}[A-Z0-9])\b",
    re.IGNORECASE,
)
# Codes that say what they are: RFQ-2027-014, PO-4411, INV/2027/0042.
CODE = re.compile(
    r"\b(?P<value>(?P<label>RFQ|RFP|RFI|TND|PO|INV|CTR|BID)[-/]\d[A-Z0-9/-]*[A-Z0-9])\b",
    re.IGNORECASE,
)
CODE_KINDS = {
    "rfq": "tender",
    "rfp": "tender",
    "rfi": "tender",
    "tnd": "tender",
    "po": "purchase_order",
    "inv": "invoice",
    "ctr": "contract",
    "bid": "bid",
}
REFERENCE_KINDS = {
    "tender": "tender",
    "rfq": "tender",
    "rfp": "tender",
    "rfi": "tender",
    "purchase order": "purchase_order",
    "po": "purchase_order",
    "order": "purchase_order",
    "invoice": "invoice",
    "contract": "contract",
    "bid": "bid",
    "offer": "bid",
    "lot": "lot",
    "case": "case",
    "patient id": "patient",
    "mrn": "patient",
}
WORD_CURRENCIES = {"euro": "EUR", "dollar": "USD", "pound": "GBP"}


@dataclass(frozen=True)
class KeyField:
    kind: str  # date | deadline | amount | reference
    value: str  # normalized: ISO date/datetime, "12500.00 EUR", the reference as written
    text: str  # as it appears
    start: int
    context: str
    subtype: str | None = None  # the reference's kind, the amount's currency

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _context(text: str, start: int, end: int) -> str:
    return " ".join(text[max(0, start - 50) : min(len(text), end + 30)].split())


def _dates(text: str) -> list[KeyField]:
    found = []
    for match in DATE.finditer(text):
        raw = match.group("date")
        numeric = raw[0].isdigit() and not raw[:4].isdigit()
        try:
            when = dateparser.parse(raw, dayfirst=numeric, default=datetime(2000, 1, 1))
        except (ValueError, OverflowError):
            continue
        value = when.date().isoformat()
        if match.group("time"):
            clock = match.group("time").lower().replace("h", ":")
            with contextlib.suppress(ValueError, OverflowError):
                value = dateparser.parse(f"{value} {clock}").isoformat(timespec="minutes")
        before = text[max(0, match.start() - 60) : match.start()]
        kind = "deadline" if DEADLINE_WORDS.search(before) else "date"
        found.append(
            KeyField(kind, value, match.group(0), match.start(), _context(text, *match.span()))
        )
    return found


def _decimal(number: str) -> Decimal | None:
    digits = re.sub(r"[ \u00a0\u202f']", "", number)
    last_dot, last_comma = digits.rfind("."), digits.rfind(",")
    separator = max(last_dot, last_comma)
    # The last separator is the decimal one when one or two digits follow it.
    if separator >= 0 and len(digits) - separator - 1 in (1, 2):
        whole, fraction = digits[:separator], digits[separator + 1 :]
        digits = re.sub(r"[.,]", "", whole) + "." + fraction
    else:
        digits = re.sub(r"[.,]", "", digits)
    try:
        return Decimal(digits).quantize(Decimal("0.01"))
    except InvalidOperation:
        return None


def _amounts(text: str) -> list[KeyField]:
    found = []
    for match in AMOUNT.finditer(text):
        number = match.group("n1") or match.group("n2")
        currency = (match.group("pre") or match.group("post") or "").lower()
        code = SYMBOLS.get(currency) or WORD_CURRENCIES.get(currency.rstrip("s")) or currency
        amount = _decimal(number)
        if amount is None:
            continue
        code = code.upper()
        found.append(
            KeyField(
                "amount",
                f"{amount} {code}",
                match.group(0).strip(),
                match.start(),
                _context(text, *match.span()),
                subtype=code,
            )
        )
    return found


def _references(text: str) -> list[KeyField]:
    found = [
        KeyField(
            "reference",
            match.group("value").upper(),
            match.group(0),
            match.start(),
            _context(text, *match.span()),
            subtype=CODE_KINDS[match.group("label").lower()],
        )
        for match in CODE.finditer(text)
    ]
    for match in REFERENCE.finditer(text):
        label = " ".join(match.group("label").lower().split())
        kind = REFERENCE_KINDS.get(label, "reference")
        value = match.group("value")
        if DATE.fullmatch(value):
            continue
        found.append(
            KeyField(
                "reference",
                value.upper(),
                match.group(0),
                match.start(),
                _context(text, *match.span()),
                subtype=kind,
            )
        )
    return found


def extract(text: str) -> list[KeyField]:
    """Every key field, in the order they appear; one per (kind, value)."""
    seen: set[tuple[str, str]] = set()
    fields = []
    for found in sorted(_dates(text) + _amounts(text) + _references(text), key=lambda f: f.start):
        if (found.kind, found.value) not in seen:
            seen.add((found.kind, found.value))
            fields.append(found)
    return fields
