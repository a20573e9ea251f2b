"""The built-in channel senders (plugins/builtin/channels) exposed as channel plugins."""

from __future__ import annotations

from plugins.builtin.channels import BUILTIN_SENDERS, ChannelSender
from plugins.hookspecs import hookimpl
from plugins.types import ChannelType


def _family(sender: type[ChannelSender]) -> str:
    # Sender names are `<family>` or `<family>_<provider>`: sms_twilio, whatsapp_cloud...
    return sender.name.split("_", 1)[0]


def _summary(sender: type[ChannelSender]) -> str:
    doc = (sender.__doc__ or "").strip()
    return doc.splitlines()[0] if doc else f"{_family(sender)} channel ({sender.name})"


@hookimpl
def relais_channel_types() -> list[ChannelType]:
    return [ChannelType(sender=sender, channel=_family(sender), description=_summary(sender))
            for sender in BUILTIN_SENDERS.values()]
