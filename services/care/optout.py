"""Consent by reply: the opt-out hint our SMS carry, and the replies that opt a customer out.

Pure functions, no I/O. Two rules that must agree with each other:

- A marketing or care SMS says how to refuse further messages (China's rules on commercial
  SMS require "a convenient way to refuse"; Aliyun requires 推广短信 to end with 拒收请回复R).
  :func:`with_hint` appends the configured hint (``CARE_OPT_OUT_HINT``) unless the text
  already tells the customer to reply one of the keywords we recognise: a template's own
  "回T退订" counts only because T is such a keyword, so every hint a customer reads works.
- An inbound reply opts the customer out when, once normalised, it *is* one of the keywords
  (``CARE_OPT_OUT_KEYWORDS``): "R", "ｒ", " TD ", "退订。" do; "我不是R" or "Roger" do not.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

DEFAULT_HINT = "拒收请回复R"
DEFAULT_KEYWORDS = ("R", "T", "TD", "N", "退订", "拒收")

# What a customer may type around a keyword without changing what they mean: spaces (a
# full-width one too, after NFKC) and closing punctuation, in either width.
_AROUND = " \t\r\n.。,，!！?？;；:：~～、\"'“”‘’()（）[]【】"

# "拒收请回复R", "退订回T", "回复TD退订", "回R拒收": the forms a hint takes, with the keyword
# it names captured (then checked against the keywords we act on).
_HINT_FORMS = (
    re.compile(r"(?:拒收|退订)[^，。；！？,.;!?\n]{0,4}?回复?\s*([A-Z]{1,4})"),
    re.compile(r"回复?\s*([A-Z]{1,4})\s*(?:拒收|退订)"),
)


def normalise(text: str) -> str:
    """Full-width to half-width (NFKC), upper case, surrounding spaces and punctuation off."""
    return unicodedata.normalize("NFKC", text).upper().strip(_AROUND)


def keywords_of(raw: Iterable[str]) -> frozenset[str]:
    """The keywords as replies are compared with them (normalised); empty ones dropped."""
    return frozenset(k for k in (normalise(w) for w in raw) if k)


def keyword_of(reply: str, keywords: frozenset[str]) -> str | None:
    """The keyword ``reply`` consists of (normalised), or None: only an exact keyword opts
    out, never a text that merely contains one."""
    word = normalise(reply)
    return word if word in keywords else None


def has_hint(text: str, keywords: frozenset[str]) -> bool:
    """Whether ``text`` tells the customer to reply a keyword we recognise."""
    plain = unicodedata.normalize("NFKC", text).upper()
    return any(match.group(1) in keywords for form in _HINT_FORMS for match in form.finditer(plain))


def with_hint(text: str, hint: str, keywords: frozenset[str]) -> str:
    """``text`` ending with ``hint`` unless it already carries a working one."""
    if has_hint(text, keywords):
        return text
    body = text.rstrip()
    joiner = "" if not body or body[-1] in "。！？!?.；;，," else "，"
    return f"{body}{joiner}{hint}"


SINGLE_SEGMENT = 70
SEGMENT = 67
"""Mainland SMS length as operators bill it: up to 70 characters (the signature 【...】
included) is one message; a longer one is split into parts of 67."""


def length(text: str, sign_name: str = "") -> int:
    """Characters the customer's handset receives: the text and the 【signature】."""
    return len(text) + (len(sign_name) + 2 if sign_name else 0)


def segments(text: str, sign_name: str = "") -> int:
    """How many billed messages ``text`` is (every character counts one, ASCII too)."""
    n = length(text, sign_name)
    return 1 if n <= SINGLE_SEGMENT else -(-n // SEGMENT)
