"""Placeholder: filled in by the stand-in work (see devtools/standin/__init__.py)."""

from __future__ import annotations

from aiohttp import web


def install(app: web.Application) -> None:
    pass
