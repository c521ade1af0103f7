"""Aliyun SMS provider: signatures against Aliyun's published examples, a real loopback HTTP
server that verifies requests the way Aliyun's gateway does, and receipt authentication."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from pydantic import SecretStr, ValidationError

from services.care.providers import (
    AliyunSmsConfig,
    AliyunSmsProvider,
    ReceiptAuthenticationError,
    ReceiptFormatError,
    SendStatus,
    SmsMessage,
    SmsProvider,
    classify_error,
    percent_encode,
    sign_v1,
    sign_v3,
)
from services.care.providers.aliyun import canonicalized_query, string_to_sign_v1

# --------------------------------------------------------------------------------------
# Published worked examples
# --------------------------------------------------------------------------------------

# Aliyun SMS "请求签名" (help.aliyun.com/document_detail/101343.htm; English edition
# alibabacloud.com/help/en/sms/signature-method): AccessKeyId "testId", secret "testSecret",
# HMAC key "testSecret&", Signature "zJDF+Lrzhj/ThnlvIToysFRq6t4=" and, URL-encoded in the
# final GET URL, "zJDF%2BLrzhj%2FThnlvIToysFRq6t4%3D".
SMS_DOC_PARAMS = {
    "AccessKeyId": "testId",
    "Action": "SendSms",
    "Format": "XML",
    "OutId": "123",
    "PhoneNumbers": "15300000001",
    "RegionId": "cn-hangzhou",
    "SignName": "阿里云短信测试专用",
    "SignatureMethod": "HMAC-SHA1",
    "SignatureNonce": "45e25e9b-0a6f-4070-8c85-2956eda1b466",
    "SignatureVersion": "1.0",
    "TemplateCode": "SMS_71390007",
    "TemplateParam": '{"customer":"test"}',
    "Timestamp": "2017-07-12T02:42:19Z",
    "Version": "2017-05-25",
}
SMS_DOC_STRING_TO_SIGN = (
    "GET&%2F&AccessKeyId%3DtestId%26Action%3DSendSms%26Format%3DXML%26OutId%3D123"
    "%26PhoneNumbers%3D15300000001%26RegionId%3Dcn-hangzhou%26SignName%3D%25E9%2598%25BF"
    "%25E9%2587%258C%25E4%25BA%2591%25E7%259F%25AD%25E4%25BF%25A1%25E6%25B5%258B%25E8%25AF"
    "%2595%25E4%25B8%2593%25E7%2594%25A8%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce"
    "%3D45e25e9b-0a6f-4070-8c85-2956eda1b466%26SignatureVersion%3D1.0%26TemplateCode"
    "%3DSMS_71390007%26TemplateParam%3D%257B%2522customer%2522%253A%2522test%2522%257D"
    "%26Timestamp%3D2017-07-12T02%253A42%253A19Z%26Version%3D2017-05-25"
)
SMS_DOC_SIGNATURE = "zJDF+Lrzhj/ThnlvIToysFRq6t4="

# Generic RPC signature doc ("Signature mechanism" / "签名机制", e.g.
# help.aliyun.com/document_detail/145075.html): ECS DescribeRegions, AccessKeyId "testid",
# secret "testsecret", expected "OLeaidS1JvxuMvnyHOwuJ+uX5qY=".
RPC_DOC_PARAMS = {
    "AccessKeyId": "testid",
    "Action": "DescribeRegions",
    "Format": "XML",
    "SignatureMethod": "HMAC-SHA1",
    "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf",
    "SignatureVersion": "1.0",
    "Timestamp": "2016-02-23T12:46:24Z",
    "Version": "2014-05-26",
}
RPC_DOC_STRING_TO_SIGN = (
    "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML"
    "%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"
    "%26SignatureVersion%3D1.0%26Timestamp%3D2016-02-23T12%253A46%253A24Z"
    "%26Version%3D2014-05-26"
)
RPC_DOC_SIGNATURE = "OLeaidS1JvxuMvnyHOwuJ+uX5qY="


def test_v1_reproduces_sms_doc_example() -> None:
    assert string_to_sign_v1("GET", SMS_DOC_PARAMS) == SMS_DOC_STRING_TO_SIGN
    signature = sign_v1("GET", SMS_DOC_PARAMS, "testSecret")
    assert signature == "zJDF+Lrzhj/ThnlvIToysFRq6t4="
    assert percent_encode(signature) == "zJDF%2BLrzhj%2FThnlvIToysFRq6t4%3D"


def test_v1_reproduces_generic_rpc_doc_example() -> None:
    assert string_to_sign_v1("GET", RPC_DOC_PARAMS) == RPC_DOC_STRING_TO_SIGN
    assert sign_v1("GET", RPC_DOC_PARAMS, "testsecret") == "OLeaidS1JvxuMvnyHOwuJ+uX5qY="


def test_v1_reproduces_older_ecs_doc_variant_with_timestamp_spelled_TimeStamp() -> None:
    # Older copies of the same doc spell the key "TimeStamp" and publish
    # "CT9X0VtwR86fNWSnsc6v8YGOjuE=" (the value still shown in the docs' overview URL).
    # Reproducing both proves the byte-exact sort/encode rules, including key case.
    params = {k: v for k, v in RPC_DOC_PARAMS.items() if k != "Timestamp"}
    params["TimeStamp"] = "2016-02-23T12:46:24Z"
    assert sign_v1("GET", params, "testsecret") == "CT9X0VtwR86fNWSnsc6v8YGOjuE="


def test_v3_reproduces_doc_example() -> None:
    # "V3版本请求体&签名机制" (help.aliyun.com/zh/sdk/product-overview/
    # v3-request-structure-and-signature): RunInstances, expected HashedCanonicalRequest
    # 7ea06492... and Signature 06563a9e....
    empty = hashlib.sha256(b"").hexdigest()
    signed = sign_v3(
        method="POST",
        canonical_uri="/",
        query={
            "ImageId": "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd",
            "RegionId": "cn-shanghai",
        },
        headers={
            "host": "ecs.cn-shanghai.aliyuncs.com",
            "x-acs-action": "RunInstances",
            "x-acs-content-sha256": empty,
            "x-acs-date": "2023-10-26T10:22:32Z",
            "x-acs-signature-nonce": "3156853299f313e23d1673dc12e1703d",
            "x-acs-version": "2014-05-26",
        },
        hashed_payload=empty,
        access_key_id="YourAccessKeyId",
        access_key_secret="YourAccessKeySecret",
    )
    assert signed.string_to_sign == (
        "ACS3-HMAC-SHA256\n7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259"
    )
    assert signed.signature == "06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
    assert signed.authorization == (
        "ACS3-HMAC-SHA256 Credential=YourAccessKeyId,SignedHeaders=host;x-acs-action;"
        "x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,"
        "Signature=06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
    )


@pytest.mark.parametrize(
    ("raw", "encoded"),
    [
        ("a b", "a%20b"),
        ("*", "%2A"),
        ("~", "~"),
        ("-_.", "-_."),
        ("+", "%2B"),
        ("/", "%2F"),
        ("=&", "%3D%26"),
        ("%", "%25"),
        ('{"k":"v"}', "%7B%22k%22%3A%22v%22%7D"),
        ("尊敬的VIP客户", "%E5%B0%8A%E6%95%AC%E7%9A%84VIP%E5%AE%A2%E6%88%B7"),
        ("😀", "%F0%9F%98%80"),
    ],
)
def test_percent_encoding_edge_cases(raw: str, encoded: str) -> None:
    assert percent_encode(raw) == encoded


def test_canonical_query_sorts_by_name_and_encodes_both_sides() -> None:
    assert canonicalized_query({"b": "x y", "A": "1", "a": "*"}) == "A=1&a=%2A&b=x%20y"


# --------------------------------------------------------------------------------------
# Error classification
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status", "account_level"),
    [
        ("isv.MOBILE_NUMBER_ILLEGAL", SendStatus.FAILED_PERMANENT, False),
        ("isv.BLACK_KEY_CONTROL_LIMIT", SendStatus.FAILED_PERMANENT, False),
        ("isv.SMS_CONTENT_ILLEGAL", SendStatus.FAILED_PERMANENT, False),
        ("isv.TEMPLATE_MISSING_PARAMETERS", SendStatus.FAILED_PERMANENT, False),
        ("isv.BUSINESS_LIMIT_CONTROL", SendStatus.FAILED_TRANSIENT, False),
        ("isp.SYSTEM_ERROR", SendStatus.FAILED_TRANSIENT, False),
        ("Throttling.User", SendStatus.FAILED_TRANSIENT, False),
        ("isv.AMOUNT_NOT_ENOUGH", SendStatus.FAILED_TRANSIENT, True),
        ("SignatureDoesNotMatch", SendStatus.FAILED_TRANSIENT, True),
        ("isv.SOMETHING_NEW", SendStatus.FAILED_PERMANENT, False),
        ("Something.New", SendStatus.FAILED_TRANSIENT, False),
    ],
)
def test_error_classification(code: str, status: SendStatus, account_level: bool) -> None:
    klass = classify_error(code)
    assert klass.status is status
    assert klass.account_level is account_level


# --------------------------------------------------------------------------------------
# Loopback fake of Aliyun's gateway
# --------------------------------------------------------------------------------------

ACCESS_KEY_ID = "LTAI-keepwell-test"
ACCESS_KEY_SECRET = "keepwell-test-secret"

# Phone number -> (HTTP status, Aliyun-shaped JSON body | raw text). Bodies follow the
# documented shapes: business errors come back as HTTP 200 with Code != "OK"; gateway
# errors (throttling, signature) come back as 4xx/5xx with the same fields.
SCRIPTED: dict[str, tuple[int, dict[str, Any] | str]] = {
    "13800000002": (200, {"Code": "isv.MOBILE_NUMBER_ILLEGAL", "Message": "非法手机号"}),
    "13800000003": (
        400,
        {"Code": "Throttling.User", "Message": "Request was denied due to user flow control."},
    ),
    "13800000004": (200, {"Code": "isp.SYSTEM_ERROR", "Message": "isp.SYSTEM_ERROR"}),
    "13800000005": (
        200,
        {"Code": "isv.BUSINESS_LIMIT_CONTROL", "Message": "触发分钟级流控Permits:1"},
    ),
    "13800000006": (502, "<html>502 Bad Gateway</html>"),
}
SLOW_PHONE = "13800000009"


def _independent_encode(text: str) -> str:
    # Written from the doc's rule, byte by byte, so the server does not share code with
    # the client under test.
    unreserved = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~"
    return "".join(chr(b) if b in unreserved else f"%{b:02X}" for b in text.encode("utf-8"))


def _independent_query(pairs: dict[str, str]) -> str:
    return "&".join(
        f"{_independent_encode(k)}={_independent_encode(pairs[k])}" for k in sorted(pairs)
    )


@dataclass
class FakeAliyun:
    secret: str = ACCESS_KEY_SECRET
    requests: list[dict[str, str]] = field(default_factory=list)
    seen_nonces: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def verify_v1(self, params: dict[str, str]) -> tuple[int, dict[str, Any]] | None:
        presented = params.pop("Signature", None)
        if params.get("SignatureMethod") != "HMAC-SHA1" or params.get("SignatureVersion") != "1.0":
            return 400, {"Code": "IncompleteSignature", "Message": "bad signature method"}
        sts = "POST&%2F&" + _independent_encode(_independent_query(params))
        expected = base64.b64encode(
            hmac.new(f"{self.secret}&".encode(), sts.encode(), hashlib.sha1).digest()
        ).decode()
        if presented != expected:
            return 400, {
                "Code": "SignatureDoesNotMatch",
                "Message": "Specified signature is not matched with our calculation.",
            }
        return self.check_freshness(params["Timestamp"], params["SignatureNonce"])

    def verify_v3(
        self, headers: dict[str, str], query: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, Any]] | None:
        auth = headers.get("authorization", "")
        algorithm, _, rest = auth.partition(" ")
        fields = dict(part.split("=", 1) for part in rest.split(","))
        if algorithm != "ACS3-HMAC-SHA256" or fields.get("Credential") != ACCESS_KEY_ID:
            return 400, {"Code": "IncompleteSignature", "Message": "bad authorization"}
        payload_hash = hashlib.sha256(body).hexdigest()
        if headers.get("x-acs-content-sha256") != payload_hash:
            return 400, {"Code": "SignatureDoesNotMatch", "Message": "payload hash"}
        names = fields["SignedHeaders"].split(";")
        canonical_headers = "".join(f"{n}:{headers[n].strip()}\n" for n in names)
        canonical_request = "\n".join(
            [
                "POST",
                "/",
                _independent_query(query),
                canonical_headers,
                ";".join(names),
                payload_hash,
            ]
        )
        sts = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical_request.encode()).hexdigest()
        expected = hmac.new(self.secret.encode(), sts.encode(), hashlib.sha256).hexdigest()
        if fields.get("Signature") != expected:
            return 400, {"Code": "SignatureDoesNotMatch", "Message": "v3 mismatch"}
        return self.check_freshness(headers["x-acs-date"], headers["x-acs-signature-nonce"])

    def check_freshness(self, stamp: str, nonce: str) -> tuple[int, dict[str, Any]] | None:
        sent = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        if abs(datetime.now(UTC) - sent) > timedelta(minutes=15):
            return 400, {"Code": "InvalidTimeStamp.Expired", "Message": "expired"}
        with self.lock:
            if nonce in self.seen_nonces:
                return 400, {"Code": "SignatureNonceUsed", "Message": "nonce used"}
            self.seen_nonces.add(nonce)
        return None


def _make_handler(fake: FakeAliyun) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep pytest output readable

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            query = dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))

            if "authorization" in headers:
                params = dict(query)
                failure = fake.verify_v3(headers, query, body)
                action = headers.get("x-acs-action")
                version = headers.get("x-acs-version")
            else:
                params = dict(parse_qsl(body.decode("ascii"), keep_blank_values=True))
                failure = fake.verify_v1(dict(params))
                action = params.get("Action")
                version = params.get("Version")
            with fake.lock:
                fake.requests.append(params)

            if failure is not None:
                return self.reply(*failure)
            if action != "SendSms" or version != "2017-05-25":
                return self.reply(400, {"Code": "InvalidAction", "Message": "unknown action"})
            phone = params.get("PhoneNumbers", "")
            if phone == SLOW_PHONE:
                time.sleep(1.0)
            if phone in SCRIPTED:
                return self.reply(*SCRIPTED[phone])
            return self.reply(
                200,
                {
                    "Code": "OK",
                    "Message": "OK",
                    "BizId": f"biz-{params.get('OutId')}",
                    "RequestId": "F655A8D5-B967-440B-8683-DAD6FF8DE990",
                },
            )

        def reply(self, status: int, body: dict[str, Any] | str) -> None:
            raw = json.dumps(body, ensure_ascii=False) if isinstance(body, dict) else body
            data = raw.encode("utf-8")
            self.send_response(status)
            ctype = "application/json" if isinstance(body, dict) else "text/html"
            self.send_header("Content-Type", f"{ctype};charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


@pytest.fixture
def fake_aliyun() -> Iterator[tuple[FakeAliyun, str]]:
    fake = FakeAliyun()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(fake))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    try:
        yield fake, f"http://{host!s}:{port}"
    finally:
        server.shutdown()
        server.server_close()


def _config(endpoint: str, **overrides: Any) -> AliyunSmsConfig:
    values: dict[str, Any] = {
        "access_key_id": ACCESS_KEY_ID,
        "access_key_secret": SecretStr(ACCESS_KEY_SECRET),
        "sign_name": "客户关怀",
        "endpoint": endpoint,
        "read_timeout": 0.3,
        "receipt_token": SecretStr("r3ceipt-t0ken"),
    }
    values.update(overrides)
    return AliyunSmsConfig(**values)


def _message(phone: str, key: str) -> SmsMessage:
    return SmsMessage(
        idempotency_key=key,
        phone=phone,
        text="尊敬的VIP客户张先生，您的专属流量包已到账。",
        template_code="SMS_123456789",
        template_params={"name": "张先生", "gift": "10GB 流量 * 1"},
    )


@pytest.mark.asyncio
@pytest.mark.parametrize("signature_version", ["v1", "v3"])
async def test_send_batch_against_loopback_gateway(
    fake_aliyun: tuple[FakeAliyun, str], signature_version: str
) -> None:
    fake, endpoint = fake_aliyun
    messages = [
        _message("13800000001", "care-0001"),
        _message("13800000002", "care-0002"),
        _message("13800000003", "care-0003"),
        _message("13800000004", "care-0004"),
        _message("13800000005", "care-0005"),
        _message("13800000006", "care-0006"),
    ]
    async with httpx.AsyncClient() as client:
        provider = AliyunSmsProvider(_config(endpoint, signature_version=signature_version), client)
        assert isinstance(provider, SmsProvider)
        results = await provider.send_batch(messages)

    assert [r.idempotency_key for r in results] == [m.idempotency_key for m in messages]
    ok, illegal, throttled, system, limited, bad_gateway = results

    assert ok.status is SendStatus.ACCEPTED
    assert ok.provider_message_id == "biz-care-0001"
    assert illegal.status is SendStatus.FAILED_PERMANENT
    assert illegal.error_code == "isv.MOBILE_NUMBER_ILLEGAL"
    assert illegal.error_message == "非法手机号"
    assert throttled.status is SendStatus.FAILED_TRANSIENT
    assert throttled.error_code == "Throttling.User"
    assert system.status is SendStatus.FAILED_TRANSIENT
    assert system.error_code == "isp.SYSTEM_ERROR"
    assert limited.status is SendStatus.FAILED_TRANSIENT
    assert limited.retry_after_seconds is not None and limited.retry_after_seconds >= 3600
    assert bad_gateway.status is SendStatus.FAILED_TRANSIENT
    assert bad_gateway.error_code == "http.502"
    assert not any(r.account_level or r.outcome_unknown for r in results)

    # Every request passed signature verification; none was answered SignatureDoesNotMatch.
    assert len(fake.requests) == len(messages)
    sent = {r["PhoneNumbers"]: r for r in fake.requests}
    first = sent["13800000001"]
    assert first["OutId"] == "care-0001"  # receipts will carry our idempotency key
    assert first["SignName"] == "客户关怀"
    assert first["TemplateCode"] == "SMS_123456789"
    assert json.loads(first["TemplateParam"]) == {"name": "张先生", "gift": "10GB 流量 * 1"}


@pytest.mark.asyncio
async def test_wrong_secret_is_account_level_transient(
    fake_aliyun: tuple[FakeAliyun, str],
) -> None:
    _, endpoint = fake_aliyun
    async with httpx.AsyncClient() as client:
        provider = AliyunSmsProvider(
            _config(endpoint, access_key_secret=SecretStr("not-the-secret")), client
        )
        [result] = await provider.send_batch([_message("13800000001", "care-0100")])
    assert result.status is SendStatus.FAILED_TRANSIENT
    assert result.error_code == "SignatureDoesNotMatch"
    assert result.account_level


@pytest.mark.asyncio
async def test_reused_nonce_is_rejected_by_gateway(fake_aliyun: tuple[FakeAliyun, str]) -> None:
    _, endpoint = fake_aliyun
    async with httpx.AsyncClient() as client:
        provider = AliyunSmsProvider(_config(endpoint), client, nonce_factory=lambda: "fixed")
        first = await provider.send_one(_message("13800000001", "care-0200"))
        second = await provider.send_one(_message("13800000001", "care-0201"))
    assert first.status is SendStatus.ACCEPTED
    assert second.status is SendStatus.FAILED_TRANSIENT
    assert second.error_code == "SignatureNonceUsed"


@pytest.mark.asyncio
async def test_read_timeout_marks_outcome_unknown(fake_aliyun: tuple[FakeAliyun, str]) -> None:
    fake, endpoint = fake_aliyun
    async with httpx.AsyncClient() as client:
        provider = AliyunSmsProvider(_config(endpoint), client)
        [result] = await provider.send_batch([_message(SLOW_PHONE, "care-0300")])
    assert result.status is SendStatus.FAILED_TRANSIENT
    assert result.outcome_unknown  # Aliyun may have sent it: ask Aliyun before resending
    assert len(fake.requests) == 1


@pytest.mark.asyncio
async def test_connection_refused_is_safe_to_retry() -> None:
    # Bind then close a socket so the port is known to be unused.
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = server.server_address[1]
    server.server_close()
    async with httpx.AsyncClient() as client:
        provider = AliyunSmsProvider(_config(f"http://127.0.0.1:{port}"), client)
        [result] = await provider.send_batch([_message("13800000001", "care-0400")])
    assert result.status is SendStatus.FAILED_TRANSIENT
    assert not result.outcome_unknown


@pytest.mark.asyncio
async def test_missing_template_is_permanent_without_calling_aliyun(
    fake_aliyun: tuple[FakeAliyun, str],
) -> None:
    fake, endpoint = fake_aliyun
    message = SmsMessage(idempotency_key="care-0500", phone="13800000001", text="您好")
    async with httpx.AsyncClient() as client:
        provider = AliyunSmsProvider(_config(endpoint), client)
        [result] = await provider.send_batch([message])
    assert result.status is SendStatus.FAILED_PERMANENT
    assert fake.requests == []


@pytest.mark.asyncio
async def test_batch_larger_than_max_is_refused() -> None:
    async with httpx.AsyncClient() as client:
        provider = AliyunSmsProvider(_config("http://127.0.0.1:9", max_batch_size=1), client)
        with pytest.raises(ValueError, match="max_batch_size"):
            await provider.send_batch([_message("13800000001", "a"), _message("13800000001", "b")])


def test_sms_message_rejects_non_mainland_mobile() -> None:
    with pytest.raises(ValidationError):
        SmsMessage(idempotency_key="k", phone="+8613800000001", text="x")


@pytest.mark.asyncio
async def test_injected_clock_and_nonce_reach_the_wire(
    fake_aliyun: tuple[FakeAliyun, str],
) -> None:
    fake, endpoint = fake_aliyun
    # A Beijing-time clock must still be sent as UTC "Z" time.
    beijing = timezone(timedelta(hours=8))
    pinned = datetime.now(beijing).replace(microsecond=0)
    async with httpx.AsyncClient() as client:
        provider = AliyunSmsProvider(
            _config(endpoint), client, clock=lambda: pinned, nonce_factory=lambda: "nonce-1"
        )
        [result] = await provider.send_batch([_message("13800000001", "care-0600")])
    assert result.status is SendStatus.ACCEPTED
    [request] = fake.requests
    assert request["SignatureNonce"] == "nonce-1"
    assert request["Timestamp"] == pinned.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------------------
# Receipts
# --------------------------------------------------------------------------------------

RECEIPT_BODY = json.dumps(
    [
        {
            "phone_number": "13800000001",
            "send_time": "2024-05-01 10:00:00",
            "report_time": "2024-05-01 10:00:05",
            "success": True,
            "err_code": "DELIVERED",
            "err_msg": "用户接收成功",
            "sms_size": "1",
            "biz_id": "biz-care-0001",
            "out_id": "care-0001",
        },
        {
            "phone_number": "13800000002",
            "send_time": "2024-05-01 10:00:00",
            "report_time": "2024-05-01 10:01:00",
            "success": False,
            "err_code": "MK:0001",
            "err_msg": "空号",
            "sms_size": "1",
            "biz_id": "biz-care-0002",
            "out_id": "care-0002",
        },
    ],
    ensure_ascii=False,
).encode("utf-8")


def _receipt_provider() -> AliyunSmsProvider:
    return AliyunSmsProvider(_config("https://dysmsapi.aliyuncs.com"), httpx.AsyncClient())


def test_receipts_parse_with_token_in_callback_url() -> None:
    receipts = _receipt_provider().parse_receipts(
        {"content-type": "application/json"}, RECEIPT_BODY, {"token": "r3ceipt-t0ken"}
    )
    delivered, failed = receipts
    assert delivered.delivered and delivered.out_id == "care-0001"
    assert delivered.provider_message_id == "biz-care-0001"
    beijing = timezone(timedelta(hours=8))
    assert delivered.reported_at == datetime(2024, 5, 1, 10, 0, 5, tzinfo=beijing)
    assert not failed.delivered
    assert failed.error_code == "MK:0001" and failed.error_message == "空号"


def test_receipts_accept_token_header_case_insensitively() -> None:
    receipts = _receipt_provider().parse_receipts(
        {"X-Keepwell-Receipt-Token": "r3ceipt-t0ken"}, RECEIPT_BODY
    )
    assert len(receipts) == 2


@pytest.mark.parametrize(
    ("headers", "query"),
    [
        ({}, {}),
        ({}, {"token": "guess"}),
        ({"x-keepwell-receipt-token": "r3ceipt-t0ke"}, {}),
        ({}, {"token": "r3ceipt-t0ken-and-more"}),
    ],
)
def test_forged_receipt_is_rejected(headers: dict[str, str], query: dict[str, str]) -> None:
    forged = json.dumps(
        [{"phone_number": "13800000002", "success": True, "out_id": "care-0002"}]
    ).encode()
    with pytest.raises(ReceiptAuthenticationError):
        _receipt_provider().parse_receipts(headers, forged, query)


def test_receipts_refused_when_no_token_is_configured() -> None:
    provider = AliyunSmsProvider(
        _config("https://dysmsapi.aliyuncs.com", receipt_token=None), httpx.AsyncClient()
    )
    with pytest.raises(ReceiptAuthenticationError):
        provider.parse_receipts({}, RECEIPT_BODY, {"token": "anything"})


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"phone_number": "13800000001"}',
        b'[{"success": true}]',
        b'[{"phone_number": "13800000001", "success": "yes"}]',
        b'[{"phone_number": "13800000001", "success": true, "report_time": "2024/05/01"}]',
    ],
)
def test_malformed_authentic_receipts_raise_format_error(body: bytes) -> None:
    with pytest.raises(ReceiptFormatError):
        _receipt_provider().parse_receipts({}, body, {"token": "r3ceipt-t0ken"})


# --------------------------------------------------------------------------------------
# Customers' replies (SmsUp, HTTP batch push)
# --------------------------------------------------------------------------------------

# As Aliyun's SmsUp documents it: sequence_id a number in the older pages, a string now.
UPLINK_BODY = json.dumps(
    [
        {
            "phone_number": "13800000001",
            "send_time": "2024-05-01 10:02:00",
            "content": "R",
            "sign_name": "客户关怀",
            "dest_code": "1234",
            "sequence_id": 1234567890,
        },
        {
            "phone_number": "13800000002",
            "content": "退订",
            "send_time": "2024-05-01 10:03:00",
            "dest_code": "1234",
            "sequence_id": "1234567891",
        },
    ],
    ensure_ascii=False,
).encode("utf-8")


def _uplink_provider(**overrides: Any) -> AliyunSmsProvider:
    given = {"uplink_token": SecretStr("upl1nk-t0ken"), **overrides}
    config = _config("https://dysmsapi.aliyuncs.com", **given)
    return AliyunSmsProvider(config, httpx.AsyncClient())


def test_uplinks_parse_with_their_own_token_in_the_callback_url() -> None:
    first, second = _uplink_provider().parse_uplinks({}, UPLINK_BODY, {"token": "upl1nk-t0ken"})
    beijing = timezone(timedelta(hours=8))
    assert (first.provider_ref, first.phone, first.content) == ("1234567890", "13800000001", "R")
    assert first.sent_at == datetime(2024, 5, 1, 10, 2, tzinfo=beijing)
    assert (first.dest_code, first.sign_name) == ("1234", "客户关怀")
    assert (second.provider_ref, second.content, second.sign_name) == ("1234567891", "退订", None)


@pytest.mark.parametrize(
    ("overrides", "query"),
    [
        ({}, {"token": "r3ceipt-t0ken"}),  # the receipt URL's secret opts nobody out
        ({}, {}),
        ({"uplink_token": None}, {"token": "anything"}),  # unconfigured: fail closed
    ],
)
def test_forged_uplinks_are_rejected(overrides: dict[str, Any], query: dict[str, str]) -> None:
    with pytest.raises(ReceiptAuthenticationError):
        _uplink_provider(**overrides).parse_uplinks({}, UPLINK_BODY, query)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"phone_number": "13800000001", "content": "R", "sequence_id": 1}',
        b'[{"content": "R", "sequence_id": 1}]',
        b'[{"phone_number": "13800000001", "sequence_id": 1}]',
        b'[{"phone_number": "13800000001", "content": "R"}]',
        b'[{"phone_number": "13800000001", "content": "R", "sequence_id": true}]',
        b'[{"phone_number": "13800000001", "content": "R", "sequence_id": 1, '
        b'"send_time": "2024/05/01"}]',
    ],
)
def test_malformed_authentic_uplinks_raise_format_error(body: bytes) -> None:
    with pytest.raises(ReceiptFormatError):
        _uplink_provider().parse_uplinks({}, body, {"token": "upl1nk-t0ken"})
