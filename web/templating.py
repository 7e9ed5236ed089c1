"""Jinja2 templates: the core's own and each plugin's ``templates/`` folder, plus page helpers."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import ChoiceLoader, FileSystemLoader

from core import __version__
from core.plugins import get_host
from web.csrf import csrf_token

TEMPLATES = Path(__file__).parent / "templates"
NAVIGATION = [
    ("profiles", "Profiles"),
    ("traits", "Customer value"),
    ("segments", "Segments"),
    ("campaigns", "Campaigns"),
    ("journeys", "Journeys"),
    ("wallet", "Wallet"),
    ("loyalty", "Loyalty"),
    ("reports", "Reports"),
    ("settings", "Settings"),
]


def _plugin_template_folders() -> list[FileSystemLoader]:
    loaders = []
    for name in get_host().working():
        plugin = get_host().pm.get_plugin(name)
        if plugin is None or not hasattr(plugin, "__name__"):
            continue
        module = importlib.import_module(plugin.__name__)
        folder = Path(module.__file__).parent / "templates" if module.__file__ else None
        if folder and folder.is_dir():
            loaders.append(FileSystemLoader(folder))
    return loaders


def build_templates() -> Jinja2Templates:
    """The template set: core templates first, then plugins' (namespaced by their own folders)."""
    templates = Jinja2Templates(directory=str(TEMPLATES))
    templates.env.loader = ChoiceLoader([FileSystemLoader(TEMPLATES), *_plugin_template_folders()])
    templates.env.globals.update(version=__version__, navigation=NAVIGATION)
    return templates


def render(
    request: Request, template: str, context: dict[str, Any] | None = None, status_code: int = 200
) -> HTMLResponse:
    """Render a page (or, for an HTMX request to a ``_partial``, just that fragment)."""
    templates: Jinja2Templates = request.app.state.templates
    context = {"request": request, "csrf_token": csrf_token(request), **(context or {})}
    response = templates.TemplateResponse(request, template, context, status_code=status_code)
    response.headers["Vary"] = "HX-Request"
    return response
