"""Signed request ids: round trip, forgery, expiry, rotation, garbage, token shape."""

from __future__ import annotations

import base64
import hmac
import re
import time
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from guardline.errors import MalformedRequestError, PermissionDeniedError
from guardline.exchange import Endpoint
from guardline.proxy.headers import client_request_id, new_request_id
from guardline.proxy.signing import MAX_TOKEN_CHARS, Attribution, RequestSigner
from guardline.settings import FeedbackSettings

SECRET = b"s" * 32
NOW = 1_750_000_000.0
DAY = 86_400.0


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def signer(
    secret: bytes = SECRET, clock: Clock | None = None, previous: Sequence[bytes] = ()
) -> RequestSigner:
    return RequestSigner(secret, max_age=DAY, previous=previous, clock=clock or Clock())


def attribution(**changes: object) -> Attribution:
    fields: dict[str, object] = {
        "request_id": "req_0123abcd",
        "issued": int(NOW),
        "provider": "openai",
        "route": "chat.completions",
        "model": "gpt-4o-mini",
        "app": "support-bot",
        "upstream": "openai",
    }
    fields.update(changes)
    return Attribution(**fields)  # type: ignore[arg-type]


def _replace_char(text: str, index: int) -> str:
    """``text`` with one base64url character changed to another."""
    new = "A" if text[index] != "A" else "B"
    return text[:index] + new + text[index + 1 :]


@pytest.mark.parametrize(
    "a",
    [
        attribution(),
        attribution(provider="anthropic", route="messages", model="claude-haiku-4-5"),
        attribution(model=None, app=None, upstream=None),
        attribution(request_id="a:b:c", model="ft:gpt-4o-mini:org:x:1", app="a.b-c_d"),
        attribution(model="modèle-ünïcode-模型", upstream="local-ollama"),
        attribution(route="passthrough", model=""),
    ],
)
def test_round_trip(a: Attribution) -> None:
    s = signer()
    token = s.sign(a)
    assert s.verify(token) == a
    assert RequestSigner.plain_id(token) == a.request_id
    assert token.startswith(a.request_id.replace(":", "~") + "~")


def test_every_endpoint_and_provider_round_trips() -> None:
    s = signer()
    for provider in ("openai", "anthropic"):
        for endpoint in Endpoint:
            a = attribution(provider=provider, route=endpoint.value)
            assert s.verify(s.sign(a)) == a


def test_issue_stamps_the_signer_clock() -> None:
    clock = Clock(NOW + 123.7)
    s = signer(clock=clock)
    token = s.issue(
        "rid", provider="openai", route="responses", model="gpt-5", app=None, upstream="u"
    )
    got = s.verify(token)
    assert got.issued == int(NOW + 123.7)
    assert (got.request_id, got.route, got.model, got.app, got.upstream) == (
        "rid",
        "responses",
        "gpt-5",
        None,
        "u",
    )


def test_over_long_model_is_cut_at_a_character_boundary() -> None:
    s = signer()
    got = s.verify(s.sign(attribution(model="é" * 100)))
    assert got.model == "é" * 48  # 96 bytes


def _forged(s: RequestSigner, token: str) -> None:
    with pytest.raises(PermissionDeniedError) as info:
        s.verify(token)
    assert info.value.status == 403
    assert info.value.code == "request_id_forged"


def test_tampered_payload_is_forged() -> None:
    s = signer()
    token = s.sign(attribution())
    plain, payload, mac = token.split("~")
    for i in range(len(payload) - 1):  # every character but the last (its low bits pad)
        _forged(s, f"{plain}~{_replace_char(payload, i)}~{mac}")


def test_payload_swapped_from_another_token_is_forged() -> None:
    s = signer()
    mine = s.sign(attribution())
    other = s.sign(attribution(model="gpt-4o", app="other-app"))
    plain, _, mac = mine.split("~")
    _forged(s, f"{plain}~{other.split('~')[1]}~{mac}")


def test_tampered_signature_is_forged() -> None:
    s = signer()
    token = s.sign(attribution())
    plain, payload, mac = token.split("~")
    for i in range(len(mac)):
        _forged(s, f"{plain}~{payload}~{_replace_char(mac, i)}")


def test_tampered_plain_id_is_forged() -> None:
    s = signer()
    token = s.sign(attribution(request_id="req-1"))
    _forged(s, "req-2" + token.removeprefix("req-1"))
    _forged(s, "req-1x" + token.removeprefix("req-1"))


def test_wrong_secret_is_forged() -> None:
    token = signer(b"a" * 32).sign(attribution())
    _forged(signer(b"b" * 32), token)


def test_rotation_previous_secret_still_verifies() -> None:
    old, new = b"o" * 32, b"n" * 32
    old_token = signer(old).sign(attribution())
    rotated = signer(new, previous=[old])
    assert rotated.verify(old_token) == attribution()
    new_token = rotated.sign(attribution())
    assert signer(new).verify(new_token) == attribution()  # signs with the current one
    _forged(signer(old), new_token)
    _forged(signer(new), old_token)  # once dropped from previous, old ids are refused


def test_expired_and_future_ids() -> None:
    clock = Clock()
    s = signer(clock=clock)
    token = s.sign(attribution())
    clock.now = NOW + DAY
    assert s.verify(token) == attribution()  # exactly max_age old: still valid
    clock.now = NOW + DAY + 1
    with pytest.raises(PermissionDeniedError) as info:
        s.verify(token)
    assert (info.value.status, info.value.code) == (403, "request_id_expired")
    clock.now = NOW - 300
    assert s.verify(token) == attribution()  # within the allowed clock skew
    clock.now = NOW - 301
    with pytest.raises(PermissionDeniedError) as info:
        s.verify(token)
    assert info.value.code == "request_id_expired"


@pytest.mark.parametrize(
    "token",
    [
        "",
        "req_0123abcd",
        "~",
        "~~",
        "a~~",
        "a~b~",
        "x" * 10_000,
        "réq~AAAA~" + "A" * 22,
        "req~AAAA~" + "A" * 21 + "é",
        "req~AA=A~" + "A" * 22,
        "req~A!AA~" + "A" * 22,
        "req~A~" + "A" * 22,  # a base64 length no encoder produces
        "req~AAAA~" + "A" * 21,  # signature too short
        "req~AAAA~" + "A" * 23,
        "req id~AAAA~" + "A" * 22,
        "r" * 129 + "~AAAA~" + "A" * 22,
    ],
)
def test_garbage_is_malformed(token: str) -> None:
    with pytest.raises(MalformedRequestError) as info:
        signer().verify(token)
    assert info.value.status == 400
    assert info.value.code == "request_id_invalid"


def test_garbage_variants_of_a_real_token_are_malformed() -> None:
    s = signer()
    token = s.sign(attribution())
    plain, payload, mac = token.split("~")
    for bad in (
        token + "~",
        token[:-1],
        f"{plain}~{payload}",
        f"{plain}~{payload}=~{mac}",
        f"{plain}~{payload}{mac}",
        token + "\n",
        " " + token,
    ):
        with pytest.raises(MalformedRequestError):
            s.verify(bad)


def test_unreadable_payload_with_a_valid_signature_is_malformed() -> None:
    s = signer()
    # A future version's payload, signed with the same secret.
    payload = base64.urlsafe_b64encode(b"\x02" + bytes(20)).rstrip(b"=").decode()
    signed = f"rid~{payload}"
    mac = base64.urlsafe_b64encode(hmac.digest(SECRET, signed.encode(), "sha256")[:16])
    token = f"{signed}~{mac.rstrip(b'=').decode()}"
    with pytest.raises(MalformedRequestError) as info:
        s.verify(token)
    assert info.value.code == "request_id_invalid"


def test_plain_id() -> None:
    s = signer()
    assert RequestSigner.plain_id(s.sign(attribution(request_id="abc"))) == "abc"
    assert RequestSigner.plain_id(s.sign(attribution(request_id="a:b:"))) == "a:b:"
    for not_signed in ("abc", "", "a~b", "x" * 600, "a~b~c"):
        assert RequestSigner.plain_id(not_signed) == not_signed


def test_request_ids_are_fresh_whatever_the_client_sends_and_sign_cleanly() -> None:
    s = signer()
    client: list[tuple[bytes, bytes]] = [(b"x-request-id", b"client:id.1-2_3")]
    ids = [new_request_id() for _ in range(4)]
    assert len(set(ids)) == 4
    for rid in ids:
        assert re.fullmatch(r"[0-9a-f]{32}", rid)
        assert s.verify(s.sign(attribution(request_id=rid))).request_id == rid
    # The client's own id is kept apart, as a correlation field, when it is sane.
    assert client_request_id(client) == "client:id.1-2_3"
    assert client_request_id([]) is None
    for junk in (b"has spaces", b"x" * 129, b"", b"tab\t", "é".encode()):
        assert client_request_id([(b"x-request-id", junk)]) is None


def test_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = FeedbackSettings(secret_env="GL_TEST_FEEDBACK_SECRET", max_age=60.0)
    monkeypatch.setenv("GL_TEST_FEEDBACK_SECRET", "shared-secret-of-32-characters!!")
    one, two = RequestSigner.from_settings(settings), RequestSigner.from_settings(settings)
    assert not one.ephemeral
    assert one.max_age == 60.0
    token = one.sign(attribution(issued=int(time.time())))
    assert two.verify(token).request_id == "req_0123abcd"

    monkeypatch.delenv("GL_TEST_FEEDBACK_SECRET")
    three, four = RequestSigner.from_settings(settings), RequestSigner.from_settings(settings)
    assert three.ephemeral
    assert four.ephemeral
    _forged(four, three.sign(attribution(issued=int(time.time()))))


def test_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        RequestSigner(b"", max_age=1.0)
    with pytest.raises(ValueError, match="empty"):
        RequestSigner(b"k", max_age=1.0, previous=[b""])


_PLAIN_ID = st.from_regex(r"[A-Za-z0-9._:\-]{1,128}", fullmatch=True)
_LABEL = st.none() | st.text(max_size=64)
_HEADER_SAFE = re.compile(r"[A-Za-z0-9._~-]+")


@given(
    rid=_PLAIN_ID,
    provider=st.sampled_from(["openai", "anthropic"]),
    route=st.sampled_from([e.value for e in Endpoint]),
    model=_LABEL,
    app=_LABEL,
    upstream=st.none() | st.text(max_size=32),
    issued=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_tokens_are_header_safe_and_bounded(
    rid: str,
    provider: str,
    route: str,
    model: str | None,
    app: str | None,
    upstream: str | None,
    issued: int,
) -> None:
    s = RequestSigner(SECRET, max_age=float(2**33), clock=lambda: float(issued))
    a = Attribution(rid, issued, provider, route, model, app, upstream)
    token = s.sign(a)
    assert _HEADER_SAFE.fullmatch(token)
    assert len(token) <= MAX_TOKEN_CHARS
    assert RequestSigner.plain_id(token) == rid
    assert s.verify(token) == Attribution(
        rid, issued, provider, route, _cut(model, 96), _cut(app, 64), _cut(upstream, 32)
    )


def _cut(value: str | None, cap: int) -> str | None:
    return None if value is None else value.encode()[:cap].decode("utf-8", "ignore")


@given(
    rid=_PLAIN_ID,
    model=st.from_regex(r"[A-Za-z0-9.:/_-]{0,64}", fullmatch=True),
    app=st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True),
    upstream=st.from_regex(r"[A-Za-z0-9_-]{1,32}", fullmatch=True),
)
def test_typical_tokens_stay_under_400_chars(rid: str, model: str, app: str, upstream: str) -> None:
    s = signer()
    a = attribution(request_id=rid, model=model, app=app, upstream=upstream)
    token = s.sign(a)
    assert len(token) <= 400
    assert s.verify(token) == a
