"""The "new template" form: which wallet, a name and a key; the template starts with a simple design."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from core.passes.design import BarcodeDesign, FieldDesign, PassDesign
from web.campaign_pages.form import Problems

NOT_KEY = re.compile(r"[^a-z0-9_]+")


@dataclass
class NewTemplateForm:
    """The form as typed, and what is wrong with it."""

    channel: str = ""
    name: str = ""
    key: str = ""
    problems: Problems = field(default_factory=Problems)


def read_new_template(posted: dict[str, str]) -> NewTemplateForm:
    """The form as posted (a blank key is made from the name)."""
    name = posted.get("name", "").strip()
    key = posted.get("key", "").strip() or NOT_KEY.sub("_", name.lower()).strip("_")[:60]
    return NewTemplateForm(posted.get("channel", "").strip(), name, key)


def starter_design(organization: str, name: str, icon_id: int | None = None) -> PassDesign:
    """What a new template shows until it is designed: the organization, the member's name, a QR code
    (and the newest icon uploaded, ``icon_id``: a wallet may refuse a pass without one)."""
    member = FieldDesign(
        key="member", area="secondary", label="Member", value="{{ profile.name }}", role="member"
    )
    about = FieldDesign(key="about", area="back", label="About this card", value=name)
    return PassDesign(organization_name=organization[:200] or "Tessera", description=name[:500] or "Pass",
                      fields=[member, about], barcode=BarcodeDesign(),
                      images={"icon": icon_id} if icon_id else {})  # fmt: skip
