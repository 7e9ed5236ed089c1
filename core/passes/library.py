"""The pass library: templates, the images they use and the stores they point at.

Images are uploaded once and kept at @1x, @2x and @3x: Pillow decodes the upload (anything that
is not an image is refused, as is anything too large), converts it to PNG and fits it to the
size Apple and Google show for its kind.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError
from pydantic import ValidationError
from sqlmodel import Session, col, select

from core.db.base import utcnow
from core.messages.personalization import MessageTemplate, TemplateInvalid, check_template
from core.passes.contract import IMAGE_KINDS, ImageKind
from core.passes.design import PassDesign
from core.passes.models import PassImage, PassTemplate, Store
from core.passes.wallets import wallet_channels

MAX_UPLOAD = 5 * 1024 * 1024
MAX_PIXELS = 40_000_000
TEMPLATE_KEY = re.compile(r"^[a-z][a-z0-9_]{0,59}$")
# The size (points) each kind is shown at: icon and thumbnail are cropped square, the strip is
# cropped to its band, a logo is fitted inside its box (keeping its proportions).
POINTS: dict[ImageKind, tuple[int, int]] = {
    "icon": (29, 29),
    "logo": (160, 50),
    "strip": (375, 144),
    "thumbnail": (90, 90),
}
CROPPED: frozenset[ImageKind] = frozenset({"icon", "strip", "thumbnail"})


class LibraryError(ValueError):
    """A template, image or store was refused; ``problems`` lists (where, what) for the form."""

    def __init__(self, message: str, problems: list[tuple[str, str]] | None = None):
        super().__init__(message)
        self.problems = problems or [("", message)]


# --- images ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Scaled:
    """An image fitted to its kind at the three scales, as PNG bytes."""

    width: int
    height: int
    png: tuple[bytes, bytes, bytes]


def scale_image(kind: str, data: bytes) -> Scaled:
    """The upload as PNGs at @1x, @2x and @3x for ``kind``; :class:`LibraryError` if it is no image."""
    if kind not in IMAGE_KINDS:
        raise LibraryError(f"{kind!r} is not an image kind: use one of {', '.join(IMAGE_KINDS)}.")
    if not data:
        raise LibraryError("The file is empty.")
    if len(data) > MAX_UPLOAD:
        raise LibraryError(
            f"The file is {len(data) // 1024} KB: images may be at most {MAX_UPLOAD // 1024 // 1024} MB."
        )
    try:
        with Image.open(io.BytesIO(data)) as opened:
            if opened.width * opened.height > MAX_PIXELS:
                raise LibraryError("The image has too many pixels (at most 40 megapixels).")
            opened.load()
            picture = ImageOps.exif_transpose(opened).convert("RGBA")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, SyntaxError) as exc:
        raise LibraryError("The file is not an image Tessera can read (use PNG or JPEG).") from exc
    box = POINTS[kind]  # type: ignore[index]
    pngs = []
    for scale in (1, 2, 3):
        size = (box[0] * scale, box[1] * scale)
        if kind in CROPPED:
            fitted = ImageOps.fit(picture, size, Image.Resampling.LANCZOS)
        else:
            fitted = ImageOps.contain(picture, size, Image.Resampling.LANCZOS)
        out = io.BytesIO()
        fitted.save(out, "PNG", optimize=True)
        pngs.append(out.getvalue())
    return Scaled(picture.width, picture.height, (pngs[0], pngs[1], pngs[2]))


def add_image(session: Session, kind: str, filename: str, data: bytes) -> PassImage:
    """Store an uploaded image, resized for ``kind``."""
    scaled = scale_image(kind, data)
    image = PassImage(kind=kind, filename=filename[:200], width=scaled.width, height=scaled.height,
                      png_1x=scaled.png[0], png_2x=scaled.png[1], png_3x=scaled.png[2])  # fmt: skip
    session.add(image)
    session.flush()
    return image


def images(session: Session, kind: str | None = None) -> list[PassImage]:
    """The uploaded images, newest first (optionally of one kind)."""
    query = select(PassImage)
    if kind:
        query = query.where(PassImage.kind == kind)
    return list(session.exec(query.order_by(col(PassImage.id).desc())))


# --- stores ----------------------------------------------------------------------------------
def add_store(
    session: Session, name: str, latitude: float, longitude: float, address: str = "", relevant_text: str = ""
) -> Store:
    """Add a store to the tenant's list."""
    name = name.strip()
    if not name:
        raise LibraryError("A store needs a name.", [("name", "required")])
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        raise LibraryError("Latitude is -90..90 and longitude -180..180.", [("latitude", "out of range")])
    if session.exec(select(Store).where(Store.name == name)).first() is not None:
        raise LibraryError(f"There is already a store named {name!r}.", [("name", "already used")])
    store = Store(name=name, latitude=latitude, longitude=longitude, address=address.strip(),
                  relevant_text=relevant_text.strip())  # fmt: skip
    session.add(store)
    session.flush()
    return store


def stores(session: Session) -> list[Store]:
    """The tenant's stores by name."""
    return list(session.exec(select(Store).order_by(col(Store.name))))


# --- templates -------------------------------------------------------------------------------
def check_design(session: Session, raw: dict[str, object]) -> PassDesign:
    """The design, validated, with its images and stores existing; :class:`LibraryError` listing problems."""
    try:
        design = PassDesign.model_validate(raw)
    except ValidationError as exc:
        problems = [(".".join(str(p) for p in err["loc"]) or "design", err["msg"].removeprefix("Value error, "))
                    for err in exc.errors()]  # fmt: skip
        raise LibraryError("; ".join(f"{where}: {what}" for where, what in problems), problems) from exc
    problems = []
    for kind, image_id in design.images.items():
        image = session.get(PassImage, image_id)
        if image is None:
            problems.append((f"images.{kind}", f"image {image_id} does not exist"))
        elif image.kind != kind:
            problems.append((f"images.{kind}", f"image {image_id} was uploaded as a {image.kind}"))
    known = (
        set(session.exec(select(Store.id).where(col(Store.id).in_(design.store_ids))))
        if design.store_ids
        else set()
    )
    problems += [("store_ids", f"store {sid} does not exist") for sid in design.store_ids if sid not in known]
    try:
        check_template(MessageTemplate(variants=design.variants(), fallback=design.language))
    except TemplateInvalid as exc:
        problems += [(f"{p.language}.{p.field}", p.message) for p in exc.problems]
    if problems:
        raise LibraryError("; ".join(f"{where}: {what}" for where, what in problems), problems)
    return design


def save_template(
    session: Session,
    *,
    key: str,
    name: str,
    channel: str,
    design: dict[str, object],
    by: str,
    template: PassTemplate | None = None,
    other_channels: list[str] | None = None,
) -> PassTemplate:
    """Create a template (or update ``template``) after checking its key, wallets and design.

    ``other_channels``: the wallets it is issued in besides ``channel`` (None keeps them as they are).
    """
    problems = []
    if not TEMPLATE_KEY.match(key):
        problems.append(("key", "lower-case letters, digits and _, starting with a letter"))
    if not name.strip():
        problems.append(("name", "required"))
    for wallet in [channel, *(other_channels or [])]:
        if wallet not in wallet_channels():
            problems.append(("channel", f"{wallet!r} is not an installed wallet"))
    clash = session.exec(select(PassTemplate).where(PassTemplate.key == key)).first()
    if clash is not None and (template is None or clash.id != template.id):
        problems.append(("key", f"{key!r} is already used by template {clash.name!r}"))
    if problems:
        raise LibraryError("; ".join(f"{where}: {what}" for where, what in problems), problems)
    checked = check_design(session, design)
    _check_wallet_settings(checked)
    row = template or PassTemplate(key=key, name=name.strip(), channel=channel)
    row.key, row.name, row.channel = key, name.strip(), channel
    if other_channels is not None:
        row.other_channels = list(dict.fromkeys(c for c in other_channels if c != channel))
    row.design = checked.model_dump(mode="json")
    row.updated_at, row.updated_by = utcnow(), by
    session.add(row)
    session.flush()
    return row


def _check_wallet_settings(design: PassDesign) -> None:
    """Each wallet's own settings as that wallet defines them (``TemplateSettings``)."""
    channels = wallet_channels()
    problems = []
    for wallet, settings in design.wallet_settings.items():
        channel = channels.get(wallet)
        if channel is None:
            continue  # kept for a wallet that is not installed now
        try:
            channel.TemplateSettings.model_validate(settings)
        except ValidationError as exc:
            problems += [
                (f"wallet_settings.{wallet}.{'.'.join(map(str, e['loc']))}", e["msg"]) for e in exc.errors()
            ]
    if problems:
        raise LibraryError("; ".join(f"{where}: {what}" for where, what in problems), problems)


def templates(session: Session, include_archived: bool = False) -> list[PassTemplate]:
    """The pass templates by name."""
    query = select(PassTemplate)
    if not include_archived:
        query = query.where(col(PassTemplate.archived).is_(False))
    return list(session.exec(query.order_by(col(PassTemplate.name))))


def template_by_id(session: Session, template_id: int) -> PassTemplate:
    """A template, or :class:`LibraryError` if there is none with this id."""
    found = session.get(PassTemplate, template_id)
    if found is None:
        raise LibraryError(f"There is no pass template {template_id}.")
    return found
