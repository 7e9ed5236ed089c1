"""The pass library: images decoded and fitted to their kind at three scales (anything else
refused in words), stores checked, templates saved only with a design every wallet can use."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from core.passes import library
from core.passes.library import LibraryError, scale_image
from tests.passes.shop import CARD, CHANNEL, Shop


def _png(width: int, height: int, mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, (width, height), "navy").save(out, "PNG")
    return out.getvalue()


def _size(png: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(png)).size


def test_images_are_fitted_to_their_kind_at_three_scales() -> None:
    icon = scale_image("icon", _png(500, 300))
    assert [_size(p) for p in icon.png] == [(29, 29), (58, 58), (87, 87)]  # cropped square
    logo = scale_image("logo", _png(1000, 100))
    assert [_size(p) for p in logo.png] == [(160, 16), (320, 32), (480, 48)]  # fitted, proportions kept
    strip = scale_image("strip", _png(1200, 900))
    assert _size(strip.png[2]) == (1125, 432) and (strip.width, strip.height) == (1200, 900)
    jpeg = io.BytesIO()
    Image.new("RGB", (90, 90), "red").save(jpeg, "JPEG")
    assert Image.open(io.BytesIO(scale_image("thumbnail", jpeg.getvalue()).png[0])).format == "PNG"


@pytest.mark.parametrize(
    ("kind", "data", "message"),
    [
        ("icon", b"%PDF-1.7 not a picture", "not an image Tessera can read"),
        ("icon", b"", "The file is empty"),
        ("icon", b"\x89PNG" + b"\0" * (6 * 1024 * 1024), "at most 5 MB"),
        ("banner", _png(10, 10), "'banner' is not an image kind"),
    ],
)
def test_what_is_not_a_usable_image_is_refused_in_words(kind: str, data: bytes, message: str) -> None:
    with pytest.raises(LibraryError, match=message):
        scale_image(kind, data)


def test_stores_and_templates_are_checked(sqlite_shop: Shop) -> None:
    session = sqlite_shop.session
    store = library.add_store(session, "Marais", 48.86, 2.36, "12 rue des Archives", "Show your card")
    with pytest.raises(LibraryError, match="already a store"):
        library.add_store(session, "Marais", 48.86, 2.36)
    with pytest.raises(LibraryError, match="-90..90"):
        library.add_store(session, "Nowhere", 91, 0)
    with pytest.raises(LibraryError) as caught:
        library.save_template(session, key="Bad Key", name="", channel="email", by="test",
                              design={**CARD, "store_ids": [store.id, 999], "images": {"logo": 12345}})  # fmt: skip
    where = {w for w, _ in caught.value.problems}
    assert {"key", "name", "channel"} <= where
    with pytest.raises(LibraryError) as caught:
        library.save_template(session, key="ok", name="Ok", channel=CHANNEL, by="test",
                              design={**CARD, "store_ids": [store.id, 999], "images": {"logo": 12345}})  # fmt: skip
    assert {w for w, _ in caught.value.problems} == {"store_ids", "images.logo"}
    with pytest.raises(LibraryError, match="already used"):
        library.save_template(session, key="club_card", name="Again", channel=CHANNEL, design=CARD, by="test")
