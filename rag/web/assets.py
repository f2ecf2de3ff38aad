"""The page's static files, read once from the package, each with a content hash as version.

The page links ``/static/<name>?v=<version>``, so a versioned URL can be cached forever and a
new release changes the URL.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources

# The only files served; anything else under /static/ is a 404 (no path is ever joined).
MEDIA_TYPES = {
    "app.css": "text/css; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
}


@dataclass(frozen=True)
class Asset:
    name: str
    body: bytes
    media_type: str
    version: str

    @property
    def url(self) -> str:
        return f"/static/{self.name}?v={self.version}"


def asset(name: str) -> Asset | None:
    """The named static file, or None when it is not one we serve."""
    return _load(name) if name in MEDIA_TYPES else None


@cache
def _load(name: str) -> Asset:
    body = (resources.files(__package__) / name).read_bytes()
    return Asset(name, body, MEDIA_TYPES[name], hashlib.sha256(body).hexdigest()[:12])


def template() -> str:
    """The page's HTML template (``string.Template`` placeholders, fixed markup only)."""
    return _template()


@cache
def _template() -> str:
    return (resources.files(__package__) / "index.html").read_text(encoding="utf-8")
