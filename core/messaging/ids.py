"""Deterministic message ids: the same planned send always gets the same id, so planning
twice, retrying a job or replaying an API call can never produce a second message."""

from __future__ import annotations

import hashlib
from uuid import UUID

_SEP = "\x1f"  # a character no id, step or occurrence contains


def message_id(tenant_id: str, source_type: str, source_id: str, step: str,
               customer_id: UUID | str, occurrence: str) -> str:
    """`m` + 32 hex chars of SHA-256 over (tenant, source step, customer, occurrence).

    Also a valid dot-atom, so it doubles as the local part of the email Message-ID."""
    raw = _SEP.join((tenant_id, source_type, source_id, step, str(customer_id), occurrence))
    return "m" + hashlib.sha256(raw.encode()).hexdigest()[:32]
