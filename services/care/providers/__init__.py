"""SMS providers for the care service's dispatch workers."""

from services.care.providers.aliyun import (
    RECEIPT_ACK,
    UPLINK_ACK,
    AliyunSmsConfig,
    AliyunSmsProvider,
    classify_error,
    parse_sms_up,
    percent_encode,
    sign_v1,
    sign_v3,
)
from services.care.providers.base import (
    DeliveryReceipt,
    InboundSms,
    LookupResult,
    ReceiptAuthenticationError,
    ReceiptError,
    ReceiptFormatError,
    SendResult,
    SendStatus,
    SentQuery,
    SmsMessage,
    SmsProvider,
)

__all__ = [
    "RECEIPT_ACK",
    "UPLINK_ACK",
    "AliyunSmsConfig",
    "AliyunSmsProvider",
    "DeliveryReceipt",
    "InboundSms",
    "LookupResult",
    "ReceiptAuthenticationError",
    "ReceiptError",
    "ReceiptFormatError",
    "SendResult",
    "SendStatus",
    "SentQuery",
    "SmsMessage",
    "SmsProvider",
    "classify_error",
    "parse_sms_up",
    "percent_encode",
    "sign_v1",
    "sign_v3",
]
