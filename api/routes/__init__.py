"""Every controller of the API, in one list the app factory mounts."""

from api.routes.audit import HqAuditController, TenantAuditController
from api.routes.health import health_routes
from api.routes.keys import HqKeyController, TenantKeyController
from api.routes.oauth import HqOAuthClientController, TenantOAuthController, oauth_routes
from api.routes.tenants import HqTenantController, TenantSelfController

ROUTE_HANDLERS = [
    *health_routes,
    HqTenantController,
    TenantSelfController,
    HqKeyController,
    HqOAuthClientController, TenantOAuthController, *oauth_routes,
    TenantKeyController,
    HqAuditController,
    TenantAuditController,
]
