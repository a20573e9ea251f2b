"""Template API shapes: HQ masters and partials, tenant variants, previews."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec

from core.templates.parts import TemplateProblem

Channel = Literal["email", "sms", "whatsapp", "push", "webhook"]
Category = Literal["marketing", "service", "alert", "transactional"]
Purpose = Literal["marketing", "traffic_info", "loyalty", "service", "transactional"]
Governance = Literal["locked", "overridable"]
VariantStatus = Literal["draft", "submitted", "approved", "rejected", "superseded"]

TemplateId = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_-]{1,62}$")]
PartialName = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_-]{0,62}$")]
Locale = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z]{2,8}([_-][A-Za-z0-9]{1,8})*$")]
Source = Annotated[str, msgspec.Meta(max_length=100_000)]


class Content(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """The Liquid sources of one locale. Which parts a channel needs: email `subject` +
    `text` (+ `html`); sms `text`; push `text` (+ `subject` as the title); whatsapp
    `provider_template` + `params` (+ `text`, kept in the contact history); webhook any."""

    text: Source
    subject: Source | None = None
    html: Source | None = None
    provider_template: str | None = None
    params: list[Source] = msgspec.field(default_factory=list)


class HqTemplateCreate(msgspec.Struct, forbid_unknown_fields=True):
    id: TemplateId
    name: str
    channel: Channel
    default_locale: Locale
    contents: dict[str, Content]
    category: Category = "marketing"
    purpose: Purpose = "marketing"
    description: str = ""
    governance: Governance = "overridable"
    html_layout: PartialName | None = None
    text_layout: PartialName | None = None
    pilot_tenants: list[str] = msgspec.field(default_factory=list)


class HqTemplateUpdate(msgspec.Struct, forbid_unknown_fields=True):
    name: str | msgspec.UnsetType = msgspec.UNSET
    description: str | msgspec.UnsetType = msgspec.UNSET
    category: Category | msgspec.UnsetType = msgspec.UNSET
    purpose: Purpose | msgspec.UnsetType = msgspec.UNSET
    governance: Governance | msgspec.UnsetType = msgspec.UNSET
    default_locale: Locale | msgspec.UnsetType = msgspec.UNSET
    html_layout: PartialName | msgspec.UnsetType | None = msgspec.UNSET
    text_layout: PartialName | msgspec.UnsetType | None = msgspec.UNSET
    pilot_tenants: list[str] | msgspec.UnsetType = msgspec.UNSET
    archived: bool | msgspec.UnsetType = msgspec.UNSET


class LocaleContent(msgspec.Struct):
    locale: str
    revision: int
    content: Content


class HqTemplate(msgspec.Struct):
    id: str
    name: str
    channel: Channel
    category: Category
    purpose: Purpose
    description: str
    governance: Governance
    default_locale: str
    html_layout: str | None
    text_layout: str | None
    pilot_tenants: list[str]
    revision: int
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None
    contents: list[LocaleContent] = msgspec.field(default_factory=list)


class PartialPut(msgspec.Struct, forbid_unknown_fields=True):
    source: Source
    description: str = ""


class Partial(msgspec.Struct):
    name: str
    source: str
    description: str
    revision: int
    updated_at: datetime


# -- tenant side --------------------------------------------------------------------------

class VariantCreate(msgspec.Struct, forbid_unknown_fields=True):
    locale: Locale
    content: Content
    comment: str | None = None


class VariantUpdate(msgspec.Struct, forbid_unknown_fields=True):
    content: Content | msgspec.UnsetType = msgspec.UNSET
    comment: str | msgspec.UnsetType | None = msgspec.UNSET


class Decision(msgspec.Struct, forbid_unknown_fields=True):
    comment: str | None = None


class Variant(msgspec.Struct):
    id: UUID
    template_id: str
    locale: str
    status: VariantStatus
    content: Content
    based_on_revision: int
    outdated: bool
    """HQ changed this locale (or the template) since the variant was written."""
    comment: str | None
    created_at: datetime
    created_by: str
    updated_at: datetime
    submitted_at: datetime | None
    submitted_by: str | None
    decided_at: datetime | None
    decided_by: str | None
    problems: list[TemplateProblem] = msgspec.field(default_factory=list)


class LocaleState(msgspec.Struct, omit_defaults=True):
    """What the tenant runs for one locale."""

    locale: str
    source: Literal["hq", "tenant"]
    hq_revision: int | None = None
    variant_id: UUID | None = None
    pending_variant_id: UUID | None = None
    pending_status: VariantStatus | None = None


class TenantTemplate(msgspec.Struct):
    id: str
    name: str
    channel: Channel
    category: Category
    purpose: Purpose
    description: str
    governance: Governance
    default_locale: str
    revision: int
    locales: list[LocaleState]


class PreviewRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Render for a real customer (`customer_id`) or for sample data (`customer`), with
    `event` as the event properties. `variant_id` previews a tenant draft."""

    customer_id: UUID | None = None
    customer: dict[str, Any] | None = None
    event: dict[str, Any] = msgspec.field(default_factory=dict)
    locale: Locale | None = None
    variant_id: UUID | None = None


class HqPreviewRequest(msgspec.Struct, forbid_unknown_fields=True):
    customer: dict[str, Any] = msgspec.field(default_factory=dict)
    event: dict[str, Any] = msgspec.field(default_factory=dict)
    tenant: dict[str, Any] = msgspec.field(default_factory=dict)
    locale: Locale | None = None


class Preview(msgspec.Struct):
    template_id: str
    channel: Channel
    locale: str
    source: Literal["hq", "tenant"]
    subject: str | None
    text: str
    html: str | None
    params: list[str]
    provider_template: str | None
    problems: list[TemplateProblem]
    """Warnings from the static check (e.g. a customer field not in the data dictionary)."""


class TemplateSettings(msgspec.Struct):
    values: dict[str, str | int | float | bool]
    updated_at: datetime | None = None
    updated_by: str | None = None


class TemplateSettingsPut(msgspec.Struct, forbid_unknown_fields=True):
    values: dict[str, str | int | float | bool]
