"""The partner's guide (docs/plugins.md) documents every hook with its exact signature, and no other."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from core import hookspecs

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "plugins.md"


def _hookspecs() -> dict[str, str]:
    specs = {}
    for name, function in inspect.getmembers(hookspecs, inspect.isfunction):
        if hasattr(function, "tessera_spec"):
            specs[name] = f"{name}{inspect.signature(function)}".replace("'", "")
    return specs


def test_every_hook_is_documented_with_its_signature() -> None:
    guide = GUIDE.read_text()
    missing = [signature for signature in _hookspecs().values() if f"### `{signature}`" not in guide]
    assert not missing, f"docs/plugins.md lacks these hook headings: {missing}"


def test_the_guide_documents_no_hook_that_does_not_exist() -> None:
    documented = set(re.findall(r"^### `(\w+)\(", GUIDE.read_text(), flags=re.MULTILINE))
    assert documented == set(_hookspecs())


def test_every_hook_has_a_docstring_a_partner_can_implement_from() -> None:
    for name, function in inspect.getmembers(hookspecs, inspect.isfunction):
        if hasattr(function, "tessera_spec"):
            assert function.__doc__ and len(function.__doc__.split()) >= 12, f"{name} is under-documented"
