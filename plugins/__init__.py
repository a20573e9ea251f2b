"""Relais plugins: hook specifications, the typed manager and the built-in plugins.

What a plugin author imports:

    from plugins import hookimpl, ChannelType, ConnectorType, RuleType, EligibilityVerdict
"""

from plugins.hookspecs import hookimpl
from plugins.types import (
    ChannelType,
    ConnectorType,
    CustomerMerge,
    EligibilityCandidate,
    EligibilityVerdict,
    IngestedEvent,
    MessageStatusChange,
    NoConfig,
    RuleType,
    StageChange,
)

__all__ = [
    "ChannelType",
    "ConnectorType",
    "CustomerMerge",
    "EligibilityCandidate",
    "EligibilityVerdict",
    "IngestedEvent",
    "MessageStatusChange",
    "NoConfig",
    "RuleType",
    "StageChange",
    "hookimpl",
]
