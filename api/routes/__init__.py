"""Every controller of the API, in one list the app factory mounts."""

from api.routes.audit import HqAuditController, TenantAuditController
from api.routes.campaigns import (
    HqCampaignPackageController,
    TenantCampaignController,
    TenantCampaignPackageController,
)
from api.routes.collection_plan import (
    HqCollectionPlanController,
    TenantCollectionPlanController,
)
from api.routes.connectors import connector_routes
from api.routes.consents import ConsentController
from api.routes.customers import CustomerController
from api.routes.events import IngestController
from api.routes.health import health_routes
from api.routes.holdout import TenantHoldoutController
from api.routes.keys import HqKeyController, TenantKeyController
from api.routes.lifecycle import (
    HqCanvasController,
    HqStageController,
    TenantCanvasController,
    TenantStageController,
)
from api.routes.messages import (
    HqMessagingPolicyController,
    TenantCallbackController,
    TenantMessageController,
    TenantMessagingPolicyController,
)
from api.routes.model import HqModelController, TenantModelController
from api.routes.oauth import HqOAuthClientController, TenantOAuthController, oauth_routes
from api.routes.overlays import TenantOverlayVersionsController
from api.routes.plugins import HqPluginController, TenantPluginController
from api.routes.pressure import (
    HqPressurePolicyController,
    TenantPressureController,
    TenantPressurePolicyController,
)
from api.routes.segments import HqSegmentController, TenantSegmentController
from api.routes.templates import (
    HqPartialController,
    HqTemplateController,
    TemplateSettingsController,
    TenantTemplateController,
)
from api.routes.tenants import HqTenantController, TenantSelfController
from api.routes.tracking import tracking_routes

ROUTE_HANDLERS = [
    # platform
    *health_routes,
    HqTenantController, TenantSelfController,
    HqKeyController, TenantKeyController,
    HqAuditController, TenantAuditController,
    # OAuth2 for partner tools
    HqOAuthClientController, TenantOAuthController, *oauth_routes,
    # customer data
    HqModelController, TenantModelController, IngestController, CustomerController,
    ConsentController,
    # plugins, connectors, collection plan
    HqPluginController, TenantPluginController, *connector_routes,
    TenantCollectionPlanController, HqCollectionPlanController,
    # segments, lifecycle canvas, overlays
    HqSegmentController, TenantSegmentController,
    HqCanvasController, TenantCanvasController, HqStageController, TenantStageController,
    TenantOverlayVersionsController,
    # templates, messages, tracking
    HqTemplateController, HqPartialController, TenantTemplateController,
    TemplateSettingsController,
    TenantMessageController, TenantCallbackController,
    HqMessagingPolicyController, TenantMessagingPolicyController, *tracking_routes,
    # campaigns, pressure, holdout
    TenantCampaignController, TenantCampaignPackageController, HqCampaignPackageController,
    HqPressurePolicyController, TenantPressurePolicyController, TenantPressureController,
    TenantHoldoutController,
]
