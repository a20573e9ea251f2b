"""Outbound channel senders: the protocol layer under the channel plugins."""

from .base import (
    ChannelError,
    ChannelSender,
    ErrorCode,
    OutboundMessage,
    PermanentSendError,
    SendResult,
    TransientSendError,
)
from .email import EmailConfig, SmtpEmailSender
from .push import FcmConfig, FcmPushSender
from .sms import HttpGatewayConfig, HttpGatewaySmsSender, TwilioConfig, TwilioSmsSender
from .webhook import WebhookConfig, WebhookSender, verify_signature
from .whatsapp import WhatsAppCloudSender, WhatsAppConfig

# Keyed by `ChannelSender.name`, the identifier stored in tenant channel configuration.
BUILTIN_SENDERS: dict[str, type[ChannelSender]] = {
    sender.name: sender
    for sender in (
        SmtpEmailSender,
        TwilioSmsSender,
        HttpGatewaySmsSender,
        WhatsAppCloudSender,
        FcmPushSender,
        WebhookSender,
    )
}

__all__ = [
    "BUILTIN_SENDERS",
    "ChannelError",
    "ChannelSender",
    "EmailConfig",
    "ErrorCode",
    "FcmConfig",
    "FcmPushSender",
    "HttpGatewayConfig",
    "HttpGatewaySmsSender",
    "OutboundMessage",
    "PermanentSendError",
    "SendResult",
    "SmtpEmailSender",
    "TransientSendError",
    "TwilioConfig",
    "TwilioSmsSender",
    "WebhookConfig",
    "WebhookSender",
    "WhatsAppCloudSender",
    "WhatsAppConfig",
    "verify_signature",
]
