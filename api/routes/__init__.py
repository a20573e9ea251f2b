"""Every controller of the API, in one list the app factory mounts."""

from api.routes.audit import HqAuditController, TenantAuditController
from api.routes.campaigns import (  # campaigns (#7)
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
from api.routes.holdout import TenantHoldoutController  # holdout (#7)
from api.routes.keys import HqKeyController, TenantKeyController
from api.routes.lifecycle import (
    HqCanvasController,
    HqStageController,
    TenantCanvasController,
    TenantStageController,
)
from api.routes.messages import (  # messaging (#6)
    HqMessagingPolicyController,
    TenantCallbackController,
    TenantMessageController,
    TenantMessagingPolicyController,
)
from api.routes.model import HqModelController, TenantModelController
from api.routes.oauth import HqOAuthClientController, TenantOAuthController, oauth_routes
from api.routes.overlays import TenantOverlayVersionsController
from api.routes.plugins import HqPluginController, TenantPluginController
from api.routes.pressure import (  # pressure (#7)
    HqPressurePolicyController,
    TenantPressureController,
    TenantPressurePolicyController,
)
from api.routes.segments import HqSegmentController, TenantSegmentController
from api.routes.templates import (  # templates (#6)
    HqPartialController,
    HqTemplateController,
    TemplateSettingsController,
    TenantTemplateController,
)
from api.routes.tenants import HqTenantController, TenantSelfController
from api.routes.tracking import tracking_routes  # public tracking links, outside /v1 (#6)

ROUTE_HANDLERS = [
    *health_routes,
    HqTenantController,
    TenantSelfController,
    HqKeyController,
    HqOAuthClientController, TenantOAuthController, *oauth_routes,
    TenantKeyController,
    HqAuditController,
    TenantAuditController,
    HqModelController, TenantModelController, IngestController, CustomerController,
    ConsentController,
    HqTemplateController, HqPartialController, TenantTemplateController,  # templates (#6)
    TemplateSettingsController,
    TenantMessageController, TenantCallbackController, HqMessagingPolicyController,  # (#6)
    TenantMessagingPolicyController, *tracking_routes,  # messaging (#6)
    HqPluginController, TenantPluginController,
    *connector_routes,
    TenantCollectionPlanController, HqCollectionPlanController,
    HqSegmentController, TenantSegmentController, HqCanvasController, TenantCanvasController, HqStageController, TenantStageController, TenantOverlayVersionsController,  # noqa: E501  segments & lifecycle (#5)
    TenantCampaignController, TenantCampaignPackageController, HqCampaignPackageController, HqPressurePolicyController, TenantPressurePolicyController, TenantPressureController, TenantHoldoutController,  # noqa: E501  campaigns, pressure, holdout (#7)
]
