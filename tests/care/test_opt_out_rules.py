"""The pure rules of consent by reply: which replies opt out, and the hint our SMS carry."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.care.config import CareSettings
from services.care.models import Campaign, CampaignKind, CampaignStatus, Category
from services.care.optout import (
    DEFAULT_KEYWORDS,
    has_hint,
    keyword_of,
    keywords_of,
    segments,
    with_hint,
)
from services.care.suppression import message_text, policy_for

KEYWORDS = keywords_of(DEFAULT_KEYWORDS)


@pytest.mark.parametrize(
    ("reply", "keyword"),
    [
        ("R", "R"),
        ("r", "R"),
        (" R ", "R"),
        ("Ｒ", "R"),  # full-width, as many handsets type it
        ("ｔｄ", "TD"),
        ("TD。", "TD"),
        ("\u3000退订！", "退订"),
        ("t", "T"),
        ("N", "N"),
        ("拒收", "拒收"),
    ],
)
def test_an_exact_keyword_reply_opts_out_whatever_its_width_case_or_spacing(
    reply: str, keyword: str
) -> None:
    assert keyword_of(reply, KEYWORDS) == keyword


@pytest.mark.parametrize(
    "reply", ["我不是R", "Roger", "R R", "5", "满意", "请不要退订我的套餐", "TDD", ""]
)
def test_a_reply_that_only_contains_a_keyword_does_not(reply: str) -> None:
    assert keyword_of(reply, KEYWORDS) is None


def test_the_hint_is_appended_once_to_a_text_without_one() -> None:
    hinted = with_hint("王先生您好，李经理祝您生活愉快。", "拒收请回复R", KEYWORDS)
    assert hinted == "王先生您好，李经理祝您生活愉快。拒收请回复R"
    assert with_hint(hinted, "拒收请回复R", KEYWORDS) == hinted
    assert with_hint("王先生您好", "拒收请回复R", KEYWORDS) == "王先生您好，拒收请回复R"


@pytest.mark.parametrize(
    "text", ["优惠活动进行中，回T退订", "优惠活动，退订回TD", "感谢支持，拒收请回复ｒ"]
)
def test_a_template_that_names_a_keyword_we_recognise_keeps_its_own_hint(text: str) -> None:
    assert has_hint(text, KEYWORDS)
    assert with_hint(text, "拒收请回复R", KEYWORDS) == text


def test_a_template_hint_naming_a_keyword_we_ignore_gets_ours_too() -> None:
    # A customer replying QX would change nothing, so the text must offer what works.
    text = "优惠活动进行中，回复QX退订"
    assert not has_hint(text, KEYWORDS)
    assert with_hint(text, "拒收请回复R", KEYWORDS).endswith("拒收请回复R")


def _campaign(category: Category) -> Campaign:
    return Campaign(
        name="x",
        kind=CampaignKind.manual,
        category=category,
        template="{name}您好，祝您生活愉快。",
        status=CampaignStatus.draft,
        created_by="t",
    )


@pytest.mark.parametrize("category", [Category.marketing, Category.care, Category.greeting])
def test_commercial_messages_carry_the_hint(category: Category) -> None:
    policy = policy_for(_campaign(category), CareSettings())
    text = message_text("{name}您好，祝您生活愉快。", {"name": "王芳"}, policy)
    assert text == "王芳您好，祝您生活愉快。拒收请回复R"


def test_alerts_and_service_notifications_carry_none() -> None:
    policy = policy_for(_campaign(Category.alert), CareSettings())
    text = message_text("{name}您好，您的投诉已受理。", {"name": "王芳"}, policy)
    assert text == "王芳您好，您的投诉已受理。"


def test_the_hint_counts_in_the_length_and_can_make_a_second_segment() -> None:
    body = "尊" * 64 + "。"  # 65 characters: one message alone
    assert segments(body) == 1
    hinted = with_hint(body, "拒收请回复R", KEYWORDS)
    assert len(hinted) == 71
    assert segments(hinted) == 2
    assert segments("尊" * 60, sign_name="客户关怀") == 1  # 60 + 【客户关怀】 = 66
    assert segments("尊" * 134) == 2 and segments("尊" * 135) == 3


def test_a_hint_that_names_no_keyword_we_act_on_is_refused_at_start() -> None:
    with pytest.raises(ValidationError, match="CARE_OPT_OUT_HINT"):
        CareSettings(opt_out_hint="如需退订请联系客服")
    with pytest.raises(ValidationError, match="CARE_OPT_OUT_HINT"):
        CareSettings(opt_out_hint="拒收请回复R", opt_out_keywords=["TD"])
    assert CareSettings(opt_out_hint="退订回TD", opt_out_keywords=["TD"]).keywords == {"TD"}
