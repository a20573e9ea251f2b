"""Local stand-ins for external providers: real sockets, recorded traffic, canned errors."""

from .provider_errors import Canned, fcm_error, graph_error, http_status, twilio_error
from .providers import FakeProviders, RecordedRequest
from .smtp import ReceivedMail, SmtpSink, self_signed_cert

__all__ = [
    "Canned",
    "FakeProviders",
    "ReceivedMail",
    "RecordedRequest",
    "SmtpSink",
    "fcm_error",
    "graph_error",
    "http_status",
    "self_signed_cert",
    "twilio_error",
]
