"""Which sender a tenant sends a channel through: the channel plugins it enabled.

Everything goes through the plugin system (issue 4): the manager says which installed
plugins speak a channel family, `enabled_configs` gives the tenant's validated, decrypted
configuration of those HQ allows and the tenant enabled.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from core.db import Connection
from core.plugin_config.secrets import SecretBox
from core.plugin_config.service import enabled_configs
from plugins.builtin.channels.base import ChannelSender
from plugins.manager import PluginManager
from tenants.context import TenantContext


@dataclass(frozen=True)
class SenderBinding:
    plugin: str
    sender: type[ChannelSender]
    config: msgspec.Struct

    def build(self, status_url: str | None = None) -> ChannelSender:
        config = self.config
        # Providers that take a per-message status callback (Twilio) get our signed URL
        # unless the tenant configured its own.
        if status_url and getattr(config, "status_callback", "unset") is None:
            config = msgspec.structs.replace(config, status_callback=status_url)
        return self.sender(config)


async def enabled_plugins(conn: Connection, ctx: TenantContext, plugins: PluginManager,
                          box: SecretBox) -> dict[str, msgspec.Struct]:
    return await enabled_configs(conn, ctx, plugins, box)


def sender_for(channel: str, enabled: dict[str, msgspec.Struct],
               plugins: PluginManager) -> SenderBinding | None:
    """The tenant's sender for `channel`; with several enabled for one family (a Twilio
    account and an HTTP gateway), the first by name, so the choice is stable."""
    for name in sorted(enabled):
        component = plugins.component(name)
        if getattr(component, "kind", None) == "channel" and component.channel == channel:
            return SenderBinding(plugin=name, sender=component.sender, config=enabled[name])
    return None
