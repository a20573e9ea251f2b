"""A short-lived, per-process cache of who a credential is and what its tenant looks like.

Authentication and the tenant lookup would otherwise cost two database transactions on
every request. Entries live `ttl` seconds (`RELAIS_AUTH_CACHE_SECONDS`, default 5) and never
past a key's own expiry; revocation, suspension and tenant edits made through this process
evict at once, other processes see them within `ttl`.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import datetime

from core.auth.schemas import Principal
from tenants.schemas import Tenant


class AccessCache:
    def __init__(self, ttl: float, max_entries: int = 50_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._principals: OrderedDict[str, tuple[float, Principal]] = OrderedDict()
        self._tenants: dict[str, tuple[float, Tenant]] = {}

    async def principal(self, token: str,
                        load: Callable[[str], Awaitable[Principal]]) -> Principal:
        now = time.monotonic()
        hit = self._principals.get(token)
        if hit is not None and hit[0] > now:
            return hit[1]
        principal = await load(token)
        if self.ttl > 0:
            until = now + self.ttl
            if principal.expires_at is not None:
                until = min(until, now + _seconds_until(principal.expires_at))
            self._principals[token] = (until, principal)
            if len(self._principals) > self.max_entries:
                self._principals.popitem(last=False)
        return principal

    async def tenant(self, tenant_id: str, load: Callable[[str], Awaitable[Tenant]]) -> Tenant:
        now = time.monotonic()
        hit = self._tenants.get(tenant_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        tenant = await load(tenant_id)
        if self.ttl > 0:
            self._tenants[tenant_id] = (now + self.ttl, tenant)
        return tenant

    def forget_key(self, key_id: str) -> None:
        self._drop(lambda p: p.id == key_id)

    def forget_tenant(self, tenant_id: str) -> None:
        self._tenants.pop(tenant_id, None)
        self._drop(lambda p: p.tenant_id == tenant_id)

    def _drop(self, matches: Callable[[Principal], bool]) -> None:
        for token in [t for t, (_, p) in self._principals.items() if matches(p)]:
            del self._principals[token]


def _seconds_until(moment: datetime) -> float:
    return moment.timestamp() - time.time()
