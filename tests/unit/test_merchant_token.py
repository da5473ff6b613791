"""Merchant tokens name their merchant and version, and verify with the operator's key alone."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import date, datetime, timezone

import pytest

from deployments.api.errors import status_of
from posray.adapters.pg_merchants import Position, SummaryRow
from posray.domain.errors import InvalidDocument
from posray.domain.keys import OperatorKeys
from posray.domain.merchant_token import MerchantClaim, issue_token, verify_token
from posray.services.merchants import cursor_key_of, decode_cursor, encode_cursor, summary_days

KEYS = OperatorKeys.from_seed(bytes(range(32)))
KEY = KEYS.merchant_token


class TestIssue:
    def test_a_token_names_its_merchant_and_version_and_carries_the_documented_mac(self):
        token = issue_token(KEY, "M-0001", 3)
        mac = hmac.new(KEY, b"posray/merchant-token|M-0001|3", hashlib.sha256).digest()
        assert token == "pm_M-0001.3." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
        assert len(token.rsplit(".", 1)[1]) == 43

    def test_the_merchant_key_is_its_own_hkdf_label(self):
        others = {KEYS.terminal_master, KEYS.fiscal, KEYS.signing_seed, KEYS.code.secret,
                  bytes.fromhex(KEYS.api_token)}
        assert len(KEY) == 32 and KEY not in others
        assert KEY != OperatorKeys.from_seed(bytes(32)).merchant_token
        assert "secret" in repr(KEYS) and KEY.hex() not in repr(KEYS)

    @pytest.mark.parametrize(("merchant_id", "version"), [("", 1), ("a b", 1), ("M" * 33, 1), ("M1", 0)])
    def test_ids_and_versions_that_cannot_appear_in_a_token_are_refused(self, merchant_id, version):
        with pytest.raises(ValueError):
            issue_token(KEY, merchant_id, version)


class TestVerify:
    def test_an_issued_token_verifies_to_its_claim(self):
        assert verify_token(KEY, issue_token(KEY, "shop.7_a-b", 12)) == MerchantClaim("shop.7_a-b", 12)

    def test_a_token_made_with_another_key_does_not_verify(self):
        other = OperatorKeys.from_seed(bytes(32)).merchant_token
        assert verify_token(KEY, issue_token(other, "M-0001", 1)) is None

    def test_any_changed_character_breaks_the_token(self):
        token = issue_token(KEY, "M-0001", 1)
        for i in range(len(token)):
            replacement = "A" if token[i] != "A" else "B"
            assert verify_token(KEY, token[:i] + replacement + token[i + 1:]) is None, i

    def test_another_merchants_id_with_this_mac_does_not_verify(self):
        mac = issue_token(KEY, "M-0001", 1).rsplit(".", 1)[1]
        assert verify_token(KEY, f"pm_M-0002.1.{mac}") is None

    def test_another_version_with_this_mac_does_not_verify(self):
        mac = issue_token(KEY, "M-0001", 1).rsplit(".", 1)[1]
        assert verify_token(KEY, f"pm_M-0001.2.{mac}") is None
        assert verify_token(KEY, f"pm_M-0001.01.{mac}") is None

    @pytest.mark.parametrize("token", [
        "", "pm_", "pm_M1", "pm_M1.1", "M1.1.abc", "pm_M1.x.abc", "pm_M1.-1.abc", "pm_.1.abc",
        "pm_M1.1.abc=", "pm_M1.１.abc", "pm_" + "M" * 200 + ".1.abc", "Bearer pm_M1.1.abc",
    ])
    def test_malformed_tokens_do_not_verify(self, token):
        assert verify_token(KEY, token) is None

    def test_the_mac_is_compared_in_constant_time(self, monkeypatch):
        calls = []
        real = hmac.compare_digest
        monkeypatch.setattr(hmac, "compare_digest", lambda a, b: calls.append((a, b)) or real(a, b))
        token = issue_token(KEY, "M-0001", 1)
        assert verify_token(KEY, token[:-1] + ("A" if token[-1] != "A" else "B")) is None
        assert len(calls) == 1


CURSOR_KEY = cursor_key_of(KEY)
SCOPE = b"M-0001|2026-11-26|"


def signed(payload: bytes, scope: bytes = SCOPE) -> str:
    """A cursor for `payload` as the API would sign it (to test the checks behind the MAC)."""
    mac = hmac.new(CURSOR_KEY, b"posray/v1/merchant-cursor|" + scope + b"|" + payload, "sha256").digest()[:16]
    b64 = lambda raw: base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    return f"{b64(payload)}.{b64(mac)}"


class TestCursor:
    def test_a_cursor_round_trips_to_the_microsecond(self):
        moment = datetime(2026, 11, 26, 9, 15, 0, 412_345, tzinfo=timezone.utc)
        position = Position("T-0001", moment, 3, 1042)
        assert decode_cursor(CURSOR_KEY, SCOPE, encode_cursor(CURSOR_KEY, SCOPE, position)) == position

    @pytest.mark.parametrize("text", ["", "!!", "bm90IGpzb24", "WzEsMiwzLDRd", "WyJUIiwxLDJd", "é.é"])
    def test_anything_else_is_a_400_naming_after(self, text):
        with pytest.raises(InvalidDocument) as error:
            decode_cursor(CURSOR_KEY, SCOPE, text)
        assert (error.value.field, status_of(error.value)) == ("after", 400)

    def test_an_unsigned_cursor_of_the_old_format_is_refused(self):
        forged = base64.urlsafe_b64encode(b'["T-0001",1795684500000000,3,1]').rstrip(b"=").decode()
        with pytest.raises(InvalidDocument):
            decode_cursor(CURSOR_KEY, SCOPE, forged)

    def test_a_cursor_with_an_altered_position_or_another_scope_is_refused(self):
        position = Position("T-0001", datetime(2026, 11, 26, tzinfo=timezone.utc), 3, 1042)
        cursor = encode_cursor(CURSOR_KEY, SCOPE, position)
        payload, mac = cursor.split(".")
        altered = encode_cursor(CURSOR_KEY, SCOPE, Position("T-0001", position.accepted_at, 3, 1043))
        for text in (altered.split(".")[0] + "." + mac, payload + "." + mac[:-2] + "AA"):
            with pytest.raises(InvalidDocument):
                decode_cursor(CURSOR_KEY, SCOPE, text)
        for scope in (b"M-0002|2026-11-26|", b"M-0001|2026-11-27|", b"M-0001|2026-11-26|T-0001"):
            with pytest.raises(InvalidDocument):
                decode_cursor(CURSOR_KEY, scope, cursor)
        with pytest.raises(InvalidDocument):
            decode_cursor(cursor_key_of(b"another key" * 3), SCOPE, cursor)

    @pytest.mark.parametrize("payload", [
        b'["T\u0000",1,2,3]', b'["T-0001",1,2,9223372036854775808]', b'["T-0001",1,65536,3]',
        b'["T-0001",9223372036854775807,2,3]', b'["",1,2,3]', b'["T-0001",1,-1,3]',
    ])
    def test_a_signed_cursor_holding_what_postgresql_cannot_store_is_still_a_400(self, payload):
        with pytest.raises(InvalidDocument) as error:
            decode_cursor(CURSOR_KEY, SCOPE, signed(payload))
        assert status_of(error.value) == 400


class TestSummaryDays:
    def test_rows_fold_into_one_entry_per_day_and_currency_with_net_figures(self):
        day = date(2026, 11, 26)
        rows = [
            SummaryRow(day, "EUR", "correction", None, 1, 50, None),
            SummaryRow(day, "EUR", "correction", 2000, 1, 50, 8),
            SummaryRow(day, "EUR", "refund", None, 1, 120, None),
            SummaryRow(day, "EUR", "refund", 2000, 1, 120, 20),
            SummaryRow(day, "EUR", "sale", None, 3, 1000, None),
            SummaryRow(day, "EUR", "sale", 700, 2, 400, 26),
            SummaryRow(day, "EUR", "sale", 2000, 2, 600, 100),
        ]
        (entry,) = summary_days(rows)
        assert entry["date"] == "2026-11-26" and entry["currency"] == "EUR"
        assert entry["documents"] == 5
        assert entry["sales"] == {"count": 3, "gross_minor": 1000}
        assert entry["refunds"] == {"count": 1, "gross_minor": 120}
        assert entry["corrections"] == {"count": 1, "gross_minor": 50}
        assert entry["net_gross_minor"] == 880
        by_rate = {line["rate_bp"]: line for line in entry["vat"]}
        assert by_rate[2000]["net_vat_minor"] == 80 and by_rate[2000]["corrections_vat_minor"] == 8
        assert by_rate[700]["net_gross_minor"] == 400 and by_rate[700]["refunds_gross_minor"] == 0
        assert entry["net_vat_minor"] == 106


def test_the_token_of_the_protocol_doc_is_the_example_seeds_token():
    from tests.unit.test_protocol_doc import EXAMPLE_OPERATOR_SEED, _blocks

    key = OperatorKeys.from_seed(EXAMPLE_OPERATOR_SEED).merchant_token
    assert _blocks()["merchant-token"].strip() == issue_token(key, "M-0001", 1)


def test_forbidden_survives_pickling_with_its_status_and_json():
    import pickle

    from posray.domain.errors import Forbidden

    error = Forbidden("not yours")
    back = pickle.loads(pickle.dumps(error))
    assert (type(back), status_of(back), back.to_json()) == (Forbidden, 403, error.to_json())
