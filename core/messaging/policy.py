"""Dispatch policy: per-channel send rates and retry budget, HQ defaults that tenants tune
within bounds through the overlay mechanism (kind `messaging`).

Rates protect providers and sender reputation (a new SMS sender number, a warming-up email
domain); HQ bounds them so one tenant cannot burn a shared provider account.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from core.db import Connection
from tenants.governance import Parameter
from tenants.overlay import OverlayKind, VersionCreate, effective_in, register_kind

KIND = "messaging"
_DEFAULT_RATES = {"email": 200, "sms": 50, "whatsapp": 50, "push": 500, "webhook": 100}


class MessagingDefinition(msgspec.Struct, forbid_unknown_fields=True):
    """Nothing beyond the parameters: every value of this policy is a tunable number."""


def builtin() -> VersionCreate:
    parameters = {
        f"{channel}_per_second": Parameter(
            default=rate, mode="bounded", min=1, max=5000,
            description=f"{channel} messages sent per second at most, per tenant")
        for channel, rate in _DEFAULT_RATES.items()}
    parameters["max_attempts"] = Parameter(
        default=5, mode="bounded", min=1, max=10,
        description="send attempts before a transient failure becomes final")
    parameters["lease_seconds"] = Parameter(
        default=300, mode="bounded", min=30, max=3600,
        description="how long a claimed batch is reserved for the worker that claimed it")
    return VersionCreate(definition={}, parameters=parameters,
                         notes="built-in dispatch policy")


MESSAGING_POLICY = register_kind(OverlayKind(
    name=KIND, definition_type=MessagingDefinition, builtin=builtin,
    description="Dispatch: per-channel send rates, retries, claim lease"))


@dataclass(frozen=True)
class DispatchPolicy:
    per_second: int
    max_attempts: int
    lease_seconds: int


async def dispatch_policy(conn: Connection, tenant_id: str, channel: str) -> DispatchPolicy:
    values = (await effective_in(conn, tenant_id, KIND)).parameters
    return DispatchPolicy(
        per_second=int(values.get(f"{channel}_per_second", _DEFAULT_RATES.get(channel, 50))),
        max_attempts=int(values.get("max_attempts", 5)),
        lease_seconds=int(values.get("lease_seconds", 300)))
