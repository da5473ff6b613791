"""The HTTP wire format of documents, checked with pydantic at the edge (docs/protocol.md).

Types and ranges only: strict mode, so "5" is not 5 and 2.5 is not money; unknown members are
refused. The business rules (sums, VAT, time window) live in posray.domain.transaction.
"""

from __future__ import annotations

from typing import Annotated, Literal, Optional

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from posray.domain.codes import normalize_code
from posray.domain.errors import CodeMalformed, InvalidDocument, InvalidRequest
from posray.domain.transaction import DOCUMENT_TYPES, PAYMENT_METHODS

MONEY_MAX = 10**13
Money = Annotated[int, Field(ge=0, le=MONEY_MAX)]
ShortText = Annotated[str, Field(min_length=1, max_length=64)]


def _receipt_code(text: str) -> str:
    """A receipt code in plain or grouped form (length, alphabet, check character); kept as sent."""
    try:
        normalize_code(text)
    except CodeMalformed as e:
        raise ValueError(f"is not a receipt code: {e}") from None
    return text


ReceiptCode = Annotated[str, Field(min_length=20, max_length=24), AfterValidator(_receipt_code)]
RFC3339 = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$"


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class Item(_Strict):
    name: Annotated[str, Field(min_length=1, max_length=128)]
    qty_milli: Annotated[int, Field(ge=1, le=10**9)]
    unit_price_minor: Money
    amount_minor: Money
    vat_rate_bp: Annotated[int, Field(ge=0, le=10000)]
    sku: Optional[ShortText] = None
    category: Optional[ShortText] = None


class Payment(_Strict):
    method: Literal[PAYMENT_METHODS]
    amount_minor: Money


class VatLine(_Strict):
    rate_bp: Annotated[int, Field(ge=0, le=10000)]
    gross_minor: Money
    vat_minor: Money


class Document(_Strict):
    terminal_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")]
    counter: Annotated[int, Field(ge=1, le=2**53 - 1)]
    issued_at: Annotated[str, Field(pattern=RFC3339)]
    type: Literal[DOCUMENT_TYPES]
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    items: Annotated[list[Item], Field(min_length=1, max_length=500)]
    payments: Annotated[list[Payment], Field(min_length=1, max_length=16)]
    total_minor: Money
    vat: Annotated[list[VatLine], Field(min_length=1, max_length=16)]
    refers_to: Optional[ReceiptCode] = None
    mac: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


def validate_document(raw) -> None:
    """Check the wire types and ranges of one parsed JSON document.

    Raises:
        InvalidDocument: naming the first offending field as a dotted path, e.g. items[2].qty_milli.
    """
    if not isinstance(raw, dict):
        raise InvalidRequest("document", "must be a JSON object")
    try:
        Document.model_validate(raw)
    except ValidationError as e:
        first = e.errors(include_url=False, include_input=False)[0]
        raise InvalidDocument(_dotted(first["loc"]) or "document", _reason(first)) from None


def _dotted(loc: tuple) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += ("." if path else "") + str(part)
    return path


def _reason(error: dict) -> str:
    kind = error["type"]
    if kind == "value_error" and "error" in error.get("ctx", {}):
        return str(error["ctx"]["error"])
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a known field"
    return error["msg"][0].lower() + error["msg"][1:]
