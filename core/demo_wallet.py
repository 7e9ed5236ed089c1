"""The demo tenant's wallet passes: the "Tessera Club card" template bound to the loyalty balance,
three stores, generated images, and cards issued to the first customers.

Wallet channels run in sandbox mode in the demo, configured with the plugin's own test
credentials (``Channel.sandbox_config``), so passes are signed, downloadable and updated live
without any Apple or Google account.
"""

from __future__ import annotations

import io
import logging
from typing import Any

from PIL import Image, ImageDraw
from sqlmodel import Session, col, select

from core.db.engines import tenant_session
from core.demo_channels import configure_sandboxed_channels
from core.demo_loyalty import KEY as PROGRAM_KEY
from core.passes import library
from core.passes.issuing import issue
from core.passes.models import PassTemplate, WalletPass
from core.passes.wallets import WalletUnavailable, wallet_channels, wallet_for
from core.profiles.models import Profile
from core.tenancy.models import Tenant

log = logging.getLogger(__name__)
TEMPLATE_KEY = "club_card"
ISSUED_TO = 12
STORES = (
    ("Tessera Paris Marais", 48.8590, 2.3620, "12 rue des Archives, Paris", "Show your card at the till"),
    ("Tessera Lyon Confluence", 45.7430, 4.8180, "112 cours Charlemagne, Lyon", "Your points work here"),
    ("Tessera Berlin Mitte", 52.5246, 13.4050, "Rosenthaler Str. 40, Berlin", "Show your card at the till"),
)
BRAND = (24, 48, 96)


def seed_demo_wallet(tenant: Tenant) -> None:
    """Configure sandboxed wallets, then add the card template and issue it to some customers (once)."""
    ready = configure_sandboxed_channels(tenant, wallet_channels())
    if "wallet_apple" not in ready:
        log.info("Apple Wallet is not enabled for the demo: no pass template seeded")
        return
    with tenant_session(tenant.database) as session:
        template = session.exec(select(PassTemplate).where(PassTemplate.key == TEMPLATE_KEY)).first()
        if template is None:
            # One card in both wallets where Google Wallet is on too.
            template = library.save_template(session, key=TEMPLATE_KEY, name="Tessera Club card",
                                             channel="wallet_apple", design=_design(session), by="demo",
                                             other_channels=sorted(ready & {"wallet_google"}))  # fmt: skip
            session.commit()
        for channel in template.wallets():
            # Google passes are put at Google when first opened or changed: the save link carries them.
            _issue_to_first_customers(session, tenant, template, channel)


def _design(session: Session) -> dict[str, Any]:
    stores = [
        library.add_store(session, name, lat, lon, address, text).id
        for name, lat, lon, address, text in STORES
    ]
    icon = library.add_image(session, "icon", "icon.png", _picture((174, 174), "T"))
    logo = library.add_image(session, "logo", "logo.png", _picture((480, 150), "Tessera"))
    strip = library.add_image(session, "strip", "strip.png", _picture((1125, 432), ""))
    program = f"loyalty.{PROGRAM_KEY}"
    return {
        "style": "storeCard", "organization_name": "Tessera Shop", "description": "Tessera Club loyalty card",
        "logo_text": "Tessera Club", "background_color": f"rgb{BRAND}", "foreground_color": "rgb(255, 255, 255)",
        "label_color": "rgb(190, 210, 255)",
        "fields": [
            {"key": "tier", "area": "header", "label": "Tier", "value": f"{{{{ {program}.tier | default('Member') }}}}",
             "change_message": "You are now %@", "role": "tier"},
            {"key": "points", "area": "primary", "label": "Points", "value": f"{{{{ {program}.balance }}}}",
             "change_message": "You now have %@ points", "numeric": True, "role": "points"},
            {"key": "member", "area": "secondary", "label": "Member", "value": "{{ profile.name or 'Tessera member' }}",
             "role": "member"},
            {"key": "next", "area": "auxiliary", "label": "Next reward",
             "value": f"{{{{ {program}.next_reward | default('All rewards unlocked') }}}}"},
            {"key": "account", "area": "back", "label": "Your account", "value": "See your points and rewards",
             "link": "https://shop.example/account"},
            {"key": "offers", "area": "back", "label": "Offers", "value": "This week's offers",
             "link": "https://shop.example/offers"},
            {"key": "terms", "area": "back", "label": "Terms", "value": "Points expire 24 months after earning.",
             "link": "https://shop.example/terms"},
        ],
        "barcode": {"format": "qr", "message": "{{ wallet.serial }}", "alt_text": "{{ wallet.serial }}"},
        "store_ids": stores, "images": {"icon": icon.id, "logo": logo.id, "strip": strip.id},
        "language": "en",
        "translations": {
            "fr": {"field.tier.label": "Statut", "field.points.label": "Points", "field.member.label": "Membre",
                   "field.next.label": "Prochaine récompense", "field.account.label": "Votre compte",
                   "field.account.value": "Vos points et récompenses", "field.offers.label": "Offres",
                   "field.offers.value": "Les offres de la semaine", "field.terms.label": "Conditions",
                   "field.terms.value": "Les points expirent 24 mois après avoir été gagnés.",
                   "field.points.change_message": "Vous avez maintenant %@ points",
                   "field.tier.change_message": "Vous êtes maintenant %@",
                   "description": "Carte de fidélité Tessera Club"},
            "de": {"field.tier.label": "Status", "field.points.label": "Punkte", "field.member.label": "Mitglied",
                   "field.next.label": "Nächste Prämie", "field.account.label": "Ihr Konto",
                   "field.offers.label": "Angebote", "field.terms.label": "Bedingungen",
                   "field.points.change_message": "Sie haben jetzt %@ Punkte",
                   "description": "Tessera Club Kundenkarte"},
        },
    }  # fmt: skip


def _picture(size: tuple[int, int], text: str) -> bytes:
    """A brand-coloured PNG with a word on it (the demo ships no image files)."""
    image = Image.new("RGBA", size, (*BRAND, 255))
    draw = ImageDraw.Draw(image)
    if text:
        draw.text(
            (size[0] * 0.1, size[1] * 0.25), text, fill=(255, 255, 255, 255), font_size=int(size[1] * 0.45)
        )
    else:  # the strip: a lighter band
        draw.rectangle((0, size[1] * 0.55, size[0], size[1]), fill=(60, 100, 170, 255))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def _issue_to_first_customers(session: Session, tenant: Tenant, template: PassTemplate, channel: str) -> None:
    """Issue the card in one wallet to the first customers (by name), unless it was issued there already."""
    issued = select(WalletPass.id).where(WalletPass.template_id == template.id, WalletPass.channel == channel)
    if session.exec(issued.limit(1)).first():
        return
    try:
        wallet = wallet_for(tenant, channel)
    except WalletUnavailable as exc:
        log.warning("demo passes not issued: %s", exc)
        return
    query = select(Profile.id).where(col(Profile.merged_into).is_(None)).order_by(col(Profile.display_name))
    people = list(session.exec(query.limit(ISSUED_TO)))
    outcomes = issue(session, wallet, template, people)
    problems = {pid: o for pid, o in outcomes.items() if isinstance(o, list)}
    if problems:
        log.warning("demo passes not issued to %d profiles: %s", len(problems), problems)
    session.commit()
