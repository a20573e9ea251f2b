"""The status-callback URLs a tenant gives its providers."""

from __future__ import annotations

from core.db import Database
from core.messaging.channels import enabled_plugins
from core.messaging.schemas import CallbackUrls
from core.messaging.tracking import Signer
from core.plugin_config.secrets import SecretBox
from core.settings import Settings
from plugins.manager import PluginManager
from tenants.context import TenantContext


async def callback_urls(db: Database, settings: Settings, plugins: PluginManager,
                        ctx: TenantContext) -> CallbackUrls:
    """One signed URL per enabled channel plugin (the email one takes DSN/ARF reports and
    the generic JSON events of an email provider)."""
    async with db.tenant_tx(ctx) as conn:
        enabled = await enabled_plugins(conn, ctx, plugins, SecretBox.from_settings(settings))
    signer = Signer(settings.secret_key, settings.base_url)
    return CallbackUrls(urls={
        name: signer.status_url(ctx.tenant_id, name) for name in sorted(enabled)
        if getattr(plugins.component(name), "kind", None) == "channel"})
