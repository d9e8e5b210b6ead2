"""Bank direct-connect (银企直连) XML messages: the bank's signed payment / refund notification as XML, our
XML acknowledgement, and every request and answer between us and an XML bank (pay, query, refund,
statement), all in one signed layout. Used by :class:`~payment.adapters.providers.bank.BankDirectAdapter`
for a bank configured with ``message_format="XML"``.

**Message** (``POST``, ``Content-Type: application/xml``, declared encoding ``UTF-8``, ``GBK`` or
``GB18030``)::

    <?xml version="1.0" encoding="UTF-8"?>
    <Message>
      <Head>
        <TxCode>PAY_NOTIFY</TxCode>          PAY_NOTIFY | REFUND_NOTIFY
        <BankCode>ccb</BankCode>             must be this adapter's bank
        <TxTime>20261123101530</TxTime>      Beijing time, within the window
        <Nonce>9f1c…</Nonce>                 16-64 [0-9A-Za-z]: the replay nonce
        <KeyId>CCB-BANK-01</KeyId>           which of the bank's keys signed
        <SignType>RSA2</SignType>            RSA2 | SM2: the one configured for the bank
      </Head>
      <Body>
        <MerchantNo>M000000001</MerchantNo>  ours, else wrong_recipient
        <OrderNo>P2026…</OrderNo>
        <BankSerialNo>CCB2026…</BankSerialNo> the dedupe key (a refund's own serial)
        <Amount>123.45</Amount>              yuan, two decimals at most, exact
        <Currency>CNY</Currency>
        <Status>SUCCESS</Status>             SUCCESS | FAILED | CLOSED | PROCESSING
        <PaidTime>20261123101500</PaidTime>  Beijing time, required for SUCCESS
        <PayerAccount>6222****1234</PayerAccount>
        <RefundNo>R2026…</RefundNo>          REFUND_NOTIFY: our refund number
      </Body>
      <Signature>base64</Signature>
    </Message>

**Requests and answers** use the same Message, Head and signature, ours signed with our key
(``TxCode`` ``PAY_REQUEST`` / ``QUERY_REQUEST`` / ``REFUND_REQUEST`` / ``STATEMENT_REQUEST``, the bank's
answers ``QUERY_RESPONSE`` / ``REFUND_RESPONSE`` / ``STATEMENT_RESPONSE``); their body elements are the JSON
messages' fields by :data:`TAGS` (``refund_amount_fen`` is ``<RefundAmount>`` in yuan, like ``<Amount>``).
:func:`to_body` / :func:`from_body` convert between the two, so one set of rules reads either format.

**Signature** (RSA2 = RSA-SHA256 PKCS#1 v1.5, SM2 = SM2-with-SM3 DER, as the JSON messages) over
``BankCode + "\\n" + TxCode + "\\n" + TxTime + "\\n" + Nonce + "\\n" + <Body>…</Body> + "\\n"``, where
the body part is the **exact bytes the bank sent** from ``<Body>`` to ``</Body>`` (in the declared
encoding; never re-serialised). The notice is read from those signed bytes (parsed again on their own),
so what is applied is what was signed; a message whose ``<Body>`` / ``</Body>`` appear more than once
anywhere (comments, CDATA, a second body) is refused, as is any element or text outside the layout above.

**Safe parsing**: ``defusedxml`` with DTDs forbidden (``forbid_dtd``), entities and external references
forbidden: no XXE, no entity expansion ("billion laughs"); the message is at most 64 KiB.

**Ack** (HTTP 200, ``application/xml``, UTF-8): ``<Message><Head><TxCode>NOTIFY_ACK</TxCode><BankCode>…
</BankCode></Head><Body><ReturnCode>0000</ReturnCode><ReturnMsg>成功</ReturnMsg></Body></Message>``; a
refusal ``9999`` with the refusal code (the bank retries on anything but ``0000``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from xml.etree.ElementTree import Element, ParseError
from xml.sax.saxutils import escape

from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException

from payment.adapters.providers.base import CallbackRejected, fen_to_yuan, yuan_to_fen

MAX_BYTES = 64 * 1024  # a notification
MAX_ANSWER_BYTES = 64 * 1024 * 1024  # the bank's answer to our request (a statement carries its file)
HEAD_FIELDS = ("TxCode", "BankCode", "TxTime", "Nonce", "KeyId", "SignType")
# A JSON message's field -> its XML body element (msg_type and bank_code are the head's TxCode, BankCode).
TAGS = {
    "merchant_no": "MerchantNo",
    "order_no": "OrderNo",
    "bank_serial_no": "BankSerialNo",
    "currency": "Currency",
    "status": "Status",
    "paid_time": "PaidTime",
    "payer_account_masked": "PayerAccount",
    "fail_reason": "FailReason",
    "refund_no": "RefundNo",
    "description": "Description",
    "notify_url": "NotifyUrl",
    "request_time": "RequestTime",
    "reason": "Reason",
    "result": "Result",
    "return_code": "ReturnCode",
    "return_msg": "ReturnMsg",
    "bank_refund_serial_no": "BankRefundSerialNo",
    "bill_date": "BillDate",
    "file_name": "FileName",
    "file_sha256": "FileSha256",
    "file_content": "FileContent",
}
MONEY_TAGS = {"amount_fen": "Amount", "refund_amount_fen": "RefundAmount"}  # fen in JSON, yuan in XML
BODY_FIELDS = (*TAGS.values(), *MONEY_TAGS.values())
_FIELDS = {tag: key for key, tag in TAGS.items()}
_MONEY_FIELDS = {tag: key for key, tag in MONEY_TAGS.items()}
_ENCODINGS = {"utf-8": "utf-8", "utf8": "utf-8", "gbk": "gbk", "gb2312": "gbk", "gb18030": "gb18030"}
_PROLOG = re.compile(r"\A<\?xml[^>]*\?>")
_DECLARATION = re.compile(rb"""\A<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9_-]+)["']""")


def message_to_sign(bank_code: str, tx_code: str, tx_time: str, nonce: str, body: bytes) -> bytes:
    """What an XML message's signature covers: the head's fields and the raw ``<Body>…</Body>`` bytes."""
    return f"{bank_code}\n{tx_code}\n{tx_time}\n{nonce}\n".encode() + body + b"\n"


@dataclass(frozen=True)
class XmlMessage:
    head: dict[str, str]
    body: dict[str, str]
    body_bytes: bytes  # exactly as received
    signature: str


def _parse(data: bytes | str) -> Element:
    try:
        return SafeET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (ParseError, DefusedXmlException, ValueError, UnicodeError):
        raise CallbackRejected("malformed", "not a well-formed XML message") from None


def _fields(element: Element, allowed: tuple[str, ...]) -> dict[str, str]:
    if element.attrib or (element.text or "").strip():
        raise CallbackRejected("malformed", f"unexpected content in {element.tag}")
    out: dict[str, str] = {}
    for child in element:
        if child.tag not in allowed or child.tag in out or len(child) or child.attrib:
            raise CallbackRejected("malformed", f"unexpected element {child.tag!r} in {element.tag}")
        if (child.tail or "").strip():
            raise CallbackRejected("malformed", f"text after {child.tag}")
        out[child.tag] = (child.text or "").strip()
    return out


def encoding_of(raw: bytes) -> str:
    match = _DECLARATION.match(raw.lstrip(b"\xef\xbb\xbf"))
    declared = match.group(1).decode("ascii").lower() if match else "utf-8"
    encoding = _ENCODINGS.get(declared)
    if encoding is None:
        raise CallbackRejected("malformed", f"unsupported encoding {declared}")
    return encoding


def parse_message(raw: bytes, *, max_bytes: int = MAX_BYTES) -> XmlMessage:
    """Parse (safely) and cut out the signed body bytes; raises ``CallbackRejected("malformed")``.
    ``max_bytes``: a notification from the internet is small; an answer to our own request may carry a
    day's statement file."""
    if len(raw) > max_bytes:
        raise CallbackRejected("malformed", "message too large")
    encoding = encoding_of(raw)
    try:  # expat reads UTF-8 only: decode in the declared encoding, then parse the text
        text = _PROLOG.sub("", raw.decode(encoding).lstrip("\ufeff"), count=1)
    except UnicodeDecodeError:
        raise CallbackRejected("malformed", "not in its declared encoding") from None
    root = _parse(text)
    if root.tag != "Message" or root.attrib or [c.tag for c in root] != ["Head", "Body", "Signature"]:
        raise CallbackRejected("malformed", "not a Message of Head, Body and Signature")
    head_el, body_el, signature_el = list(root)
    if (root.text or "").strip() or any((c.tail or "").strip() for c in root):
        raise CallbackRejected("malformed", "text outside the elements")
    head = _fields(head_el, HEAD_FIELDS)
    if len(signature_el) or signature_el.attrib:
        raise CallbackRejected("malformed", "Signature")
    if raw.count(b"<Body>") != 1 or raw.count(b"</Body>") != 1 or raw.count(b"<Body") != 1:
        raise CallbackRejected("malformed", "the body must appear exactly once")
    start = raw.index(b"<Body>")
    end = raw.index(b"</Body>") + len(b"</Body>")
    body_bytes = raw[start:end]
    try:
        fragment = body_bytes.decode(encoding)
    except UnicodeDecodeError:
        raise CallbackRejected("malformed", "body not in its declared encoding") from None
    body = _fields(_parse(fragment), BODY_FIELDS)
    if body != _fields(body_el, BODY_FIELDS):  # the signed bytes are the body the document has
        raise CallbackRejected("malformed", "body bytes do not match the document")
    return XmlMessage(head, body, body_bytes, (signature_el.text or "").strip())


def build_message(
    head: dict[str, str],
    body: dict[str, str],
    sign: Callable[[bytes], str],
    *,
    encoding: str = "UTF-8",
) -> bytes:
    """A signed message as a bank sends it (the simulator's side; ``sign`` signs the signing string)."""
    codec = _ENCODINGS[encoding.lower()]

    def elements(fields: dict[str, str]) -> str:
        return "".join(f"<{k}>{escape(v)}</{k}>" for k, v in fields.items())

    body_bytes = f"<Body>{elements(body)}</Body>".encode(codec)
    signature = sign(
        message_to_sign(head["BankCode"], head["TxCode"], head["TxTime"], head["Nonce"], body_bytes)
    )
    return (
        f'<?xml version="1.0" encoding="{encoding}"?>\n<Message><Head>{elements(head)}</Head>'.encode(codec)
        + body_bytes
        + f"<Signature>{signature}</Signature></Message>".encode(codec)
    )


def to_body(payload: dict) -> dict[str, str]:
    """A JSON message's fields as the XML body's elements (``msg_type`` and ``bank_code`` go to the head)."""
    body: dict[str, str] = {}
    for key, value in payload.items():
        if key in ("msg_type", "bank_code"):
            continue
        if key in MONEY_TAGS:
            body[MONEY_TAGS[key]] = fen_to_yuan(value)
        elif key in TAGS:
            body[TAGS[key]] = str(value)
        else:
            raise ValueError(f"no XML element for the field {key!r}")
    return body


def from_body(head: dict[str, str], body: dict[str, str]) -> dict:
    """An XML message read back as the JSON message it stands for (amounts in fen, exactly)."""
    data: dict = {"format": "XML", "msg_type": head.get("TxCode", ""), "bank_code": head.get("BankCode", "")}
    for tag, value in body.items():
        if tag in _MONEY_FIELDS:
            data[_MONEY_FIELDS[tag]] = yuan_to_fen(value)
        else:
            data[_FIELDS[tag]] = value
    return data


def ack(bank_code: str, ok: bool, message: str = "") -> bytes:
    code, text = ("0000", "成功") if ok else ("9999", message or "失败")
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Message><Head><TxCode>NOTIFY_ACK</TxCode><BankCode>{escape(bank_code)}</BankCode></Head>"
        f"<Body><ReturnCode>{code}</ReturnCode><ReturnMsg>{escape(text)}</ReturnMsg></Body></Message>"
    ).encode()
