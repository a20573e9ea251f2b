from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec


class AuditEntry(msgspec.Struct):
    id: int
    at: datetime
    actor_kind: str
    actor_id: str
    client_id: str | None
    action: str
    target_type: str
    target_id: str | None
    request_id: str | None
    details: dict[str, Any]
    tenant_id: str | None = None
