"""One profile's pass from a template: every text personalized, in every language, checked.

Rendering never guesses: a bound value the profile lacks, a date that does not parse or a text
that still holds template syntax is a :class:`Problem` naming the text, so the marketer sees
which profile would get a broken pass and why, before any is issued.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from core.db.base import as_utc
from core.messages.personalization import MessageTemplate, MissingValue, TemplateInvalid, render
from core.passes.contract import PassBarcode, PassBeacon, PassField, PassLocation, RenderedPass
from core.passes.design import UNTRANSLATED, PassDesign
from core.passes.models import PassImage, Store
from core.plugin_api import Problem

LEFTOVER_SYNTAX = ("{{", "}}", "{%", "%}")
NOTICE_KEY = "tessera_notice"


@dataclass(frozen=True)
class Materials:
    """What every pass of one template shares: its design, images and stores, loaded once."""

    design: PassDesign
    template: MessageTemplate
    images: dict[str, dict[int, bytes]]
    image_ids: dict[str, int]
    locations: tuple[PassLocation, ...]
    # Set per template and tenant by the issuer (:func:`core.passes.issuing.addressed`).
    template_key: str = ""
    wallet_settings: dict[str, str] = field(default_factory=dict)
    image_urls: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, design: PassDesign, images: list[PassImage], stores: list[Store]) -> Materials:
        """The shared materials of a design, given its image rows and the tenant's stores."""
        by_id = {image.id: image for image in images}
        chosen = {kind: by_id[image_id] for kind, image_id in design.images.items() if image_id in by_id}
        wanted = {store.id: store for store in stores}
        locations = tuple(
            PassLocation(
                latitude=wanted[sid].latitude, longitude=wanted[sid].longitude,
                relevant_text=wanted[sid].relevant_text or None,
            )
            for sid in design.store_ids if sid in wanted
        )  # fmt: skip
        return cls(
            design=design,
            template=MessageTemplate(variants=design.variants(), fallback=design.language),
            images={k: {1: i.png_1x, 2: i.png_2x, 3: i.png_3x} for k, i in chosen.items()},
            image_ids={k: i.id or 0 for k, i in chosen.items()},
            locations=locations,
        )


@dataclass(frozen=True)
class PassIdentity:
    """What stays the same across every version of one pass."""

    serial: str
    authentication_token: str
    web_service_url: str | None
    voided: bool = False
    notice: str | None = None


def render_pass(
    materials: Materials, context: dict[str, Any], identity: PassIdentity, now: datetime | None = None
) -> RenderedPass | list[Problem]:
    """The pass for one profile (``context`` is its personalization context), or what stops it."""
    design = materials.design
    context = {**context, "wallet": {"serial": identity.serial}}
    texts: dict[str, dict[str, str]] = {}
    problems: list[Problem] = []
    for language in design.languages():
        try:
            _, texts[language] = render(materials.template, context, language)
        except MissingValue as exc:
            problems.append(Problem(exc.field, f"{exc.name} has no value for this profile"))
        except TemplateInvalid as exc:
            problems.extend(Problem(p.field, p.message) for p in exc.problems)
    if problems:
        return _unique(problems)
    default = texts[design.language]
    for language, rendered in texts.items():
        for tid, text in rendered.items():
            if any(mark in text for mark in LEFTOVER_SYNTAX):
                problems.append(
                    Problem(tid, f"still holds template syntax after personalization ({language})")
                )
    relevant_date = _date(default.get("relevant_date"), "relevant_date", problems)
    expiration_date = _date(default.get("expiration_date"), "expiration_date", problems)
    if design.barcode is not None and not default["barcode.message"].strip():
        problems.append(Problem("barcode.message", "the barcode message is empty for this profile"))
    if problems:
        return _unique(problems)
    fields = tuple(
        PassField(
            key=f.key, area=f.area, label=default[f"field.{f.key}.label"], value=default[f"field.{f.key}.value"],
            change_message=default.get(f"field.{f.key}.change_message"), link=default.get(f"field.{f.key}.link"),
            numeric=f.numeric, role=f.role,
        )
        for f in design.fields
    )  # fmt: skip
    if identity.notice:
        # The newest message put on the pass: its change message makes the lock-screen notification.
        fields += (
            PassField(key=NOTICE_KEY, area="back", label="", value=identity.notice, change_message="%@"),
        )
    barcode = None
    if design.barcode is not None:
        barcode = PassBarcode(
            format=design.barcode.format, message=default["barcode.message"], alt_text=default.get("barcode.alt_text")
        )  # fmt: skip
    beacons = tuple(
        PassBeacon(proximity_uuid=b.proximity_uuid, major=b.major, minor=b.minor,
                   relevant_text=default.get(f"beacon.{i}.relevant_text"))
        for i, b in enumerate(design.beacons)
    )  # fmt: skip
    return RenderedPass(
        serial=identity.serial,
        authentication_token=identity.authentication_token,
        web_service_url=identity.web_service_url,
        style=design.style,
        organization_name=default["organization_name"],
        description=default["description"],
        logo_text=default.get("logo_text"),
        foreground_color=design.foreground_color,
        background_color=design.background_color,
        label_color=design.label_color,
        fields=fields,
        barcode=barcode,
        nfc_message=default.get("nfc_message"),
        nfc_public_key=design.nfc_public_key,
        relevant_date=relevant_date,
        expiration_date=expiration_date,
        locations=materials.locations,
        beacons=beacons,
        images=materials.images,  # type: ignore[arg-type]
        image_urls=materials.image_urls,  # type: ignore[arg-type]
        template_key=materials.template_key,
        wallet_settings=materials.wallet_settings,
        language=design.language,
        translations=_translations(default, texts, design.language),
        voided=identity.voided,
        updated_at=now or datetime.now(UTC),
    )


def content_hash(rendered: RenderedPass, materials: Materials) -> str:
    """A fingerprint of what the pass shows (not when it was made): equal hashes, same pass."""
    shown = rendered.model_dump(mode="json", exclude={"updated_at", "images"})
    shown["images"] = materials.image_ids
    return hashlib.sha256(json.dumps(shown, sort_keys=True).encode()).hexdigest()


def _translations(
    default: dict[str, str], texts: dict[str, dict[str, str]], language: str
) -> dict[str, dict[str, str]]:
    """Per other language, default text → translated text, for the texts that differ."""
    found: dict[str, dict[str, str]] = {}
    for other, rendered in texts.items():
        if other == language:
            continue
        found[other] = {
            default[tid]: text
            for tid, text in rendered.items()
            if tid not in UNTRANSLATED and text != default[tid] and default[tid]
        }
    return found


def _date(text: str | None, tid: str, problems: list[Problem]) -> datetime | None:
    if not text or not text.strip():
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        problems.append(
            Problem(tid, f"{text.strip()!r} is not a date and time like 2026-12-24T18:00:00+01:00")
        )
        return None
    return as_utc(moment)


def _unique(problems: list[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))
