"""Messages for the cross-tenant walk."""

from __future__ import annotations

import uuid
from typing import Any

from core.messaging.schemas import PlannedMessage
from core.messaging.service import enqueue_planned


async def make_message(world: Any) -> str:
    result = await enqueue_planned(world.db, world.ctx, [PlannedMessage(
        customer_id=uuid.uuid4(), channel="email", category="marketing", purpose="marketing",
        source_type="campaign", source_id=f"walk-{uuid.uuid4().hex[:8]}", template_id=None)])
    return result.ids[0]
