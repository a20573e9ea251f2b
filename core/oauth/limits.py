"""Rate limits of the public OAuth endpoints (`/oauth/*`), which no API key identifies.

Each request is counted against two budgets per minute, with the `/v1` limiter itself
(`core.ratelimit.hit`: one Redis INCR per budget, shared by every API process):
- its remote address (an IPv6 client by its /64, the block one host usually holds), which
  caps one source spraying client ids, secrets or admin keys at us;
- the client_id it names (HTTP Basic or form for the token endpoints, the authorisation
  request's `client_id` for the pages), which caps a guess at one client's secret spread over
  many addresses.

Requests are counted before anything is checked, so failed client authentications cost the
same as successful ones. The address is counted first and a request refused by it is not
counted against the client: one address can't use up a partner's budget by naming its
client_id beyond its own address budget.

The token endpoints (token, revoke, introspect: the partner's back end) and the browser
pages (authorize, sign-in, decision) keep separate counters, so a flood of consent-page loads
naming a client can't lock that client's back end out of the token endpoint, nor the reverse.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Literal

import msgspec
from redis.asyncio import Redis

from core import ratelimit
from core.settings import Settings

Group = Literal["token", "pages"]
# Anything else can't be one of our client ids (`pc_<hex>`); it still counts per address, and
# junk ids must not become Redis keys of arbitrary length.
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._~-]{1,64}$")


class Verdict(msgspec.Struct, frozen=True):
    """The decision of the budget closest to running out (or the one that refused), and
    which budget it is: `"address"` or `"client"`."""

    per: str
    decision: ratelimit.RateDecision

    @property
    def allowed(self) -> bool:
        return self.decision.allowed

    @property
    def message(self) -> str:
        return (f"rate limit of {self.decision.limit} requests per minute per {self.per} "
                f"exceeded; retry in {self.decision.reset_in} s")


def address_key(host: str | None) -> str:
    if not host:
        return "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host[:64]  # not an IP (a unix socket, a test transport): count it as given
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:  # a dual-stack socket's view of an IPv4 peer
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


async def check(redis: Redis, settings: Settings, group: Group, host: str | None,
                client_id: str | None) -> Verdict:
    prefix = settings.redis_prefix
    by_address = Verdict("address", await ratelimit.hit(
        redis, prefix, f"oauth-endpoints:{group}:address:{address_key(host)}",
        settings.oauth_address_rate_limit_per_minute))
    if not by_address.allowed or not client_id or not _CLIENT_ID.match(client_id):
        return by_address
    by_client = Verdict("client", await ratelimit.hit(
        redis, prefix, f"oauth-endpoints:{group}:client:{client_id}",
        settings.oauth_client_rate_limit_per_minute))
    if not by_client.allowed or by_client.decision.remaining < by_address.decision.remaining:
        return by_client
    return by_address
