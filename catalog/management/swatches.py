"""Fabric-swatch SVGs for the demo catalog, drawn here: nothing is downloaded.

``swatch_svg(handle=..., title=..., pattern=..., base=..., accent=...)`` is a pure function of its
arguments: the same product always gets the same bytes (the pseudo-random slubs, flowers and
spools come from a SHA-256 of the handle, not from ``random``), so loading the catalog twice
rewrites nothing. Each image is 240 x 160 (the storefront's thumbnail box), 1-3 KB.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from xml.sax.saxutils import escape, quoteattr

WIDTH, HEIGHT = 240, 160


def _numbers(handle: str) -> Iterator[float]:
    """An endless, deterministic stream of floats in [0, 1) derived from the handle."""
    counter = 0
    while True:
        digest = hashlib.sha256(f"{handle}:{counter}".encode()).digest()
        for i in range(0, len(digest), 4):
            yield int.from_bytes(digest[i : i + 4], "big") / 2**32
        counter += 1


def _shade(colour: str, factor: float) -> str:
    """``#rrggbb`` darker (factor < 1) or lighter (factor > 1, towards white)."""
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    if factor <= 1:
        r, g, b = (round(c * factor) for c in (r, g, b))
    else:
        r, g, b = (round(c + (255 - c) * (factor - 1)) for c in (r, g, b))
    return f"#{r:02x}{g:02x}{b:02x}"


def _plain(rnd: Iterator[float], base: str, accent: str, pitch: int = 4, width: float = 1.2) -> str:
    """Plain weave: warp and weft threads crossing, a cross-hatch tile."""
    dark, light = _shade(base, 0.82), _shade(base, 1.35)
    return (
        f'<defs><pattern id="w" width="{pitch}" height="{pitch}" patternUnits="userSpaceOnUse">'
        f'<path d="M0 {pitch / 4}H{pitch}" stroke="{dark}" stroke-width="{width}"/>'
        f'<path d="M{pitch * 3 / 4} 0V{pitch}" stroke="{light}" stroke-width="{width}" opacity=".7"/>'
        "</pattern></defs>"
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="{base}"/><rect width="{WIDTH}" height="{HEIGHT}" fill="url(#w)"/>'
        f'<path d="M0 {HEIGHT - 18}H{WIDTH}" stroke="{accent}" stroke-width="10" opacity=".9"/>'
    )


def _canvas(rnd: Iterator[float], base: str, accent: str) -> str:
    return _plain(rnd, base, accent, pitch=7, width=2.6)


def _knit(rnd: Iterator[float], base: str, accent: str) -> str:
    """Jersey: rows of small Vs (knit stitches)."""
    dark = _shade(base, 0.78)
    return (
        '<defs><pattern id="k" width="8" height="7" patternUnits="userSpaceOnUse">'
        f'<path d="M0.5 0L4 6.5L7.5 0" fill="none" stroke="{dark}" stroke-width="1.4"/></pattern></defs>'
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="{base}"/><rect width="{WIDTH}" height="{HEIGHT}" fill="url(#k)"/>'
        f'<rect y="{HEIGHT - 34}" width="{WIDTH}" height="34" fill="{accent}"/>'
        f'<rect y="{HEIGHT - 34}" width="{WIDTH}" height="34" fill="url(#k)" opacity=".6"/>'
    )


def _slub(rnd: Iterator[float], base: str, accent: str) -> str:
    """Linen: a fine weave crossed by irregular slub threads (thicker, uneven runs)."""
    dark, light = _shade(base, 0.8), _shade(base, 1.3)
    lines = []
    for _ in range(16):
        y = round(next(rnd) * HEIGHT, 1)
        x = round(next(rnd) * WIDTH * 0.6, 1)
        length = round(40 + next(rnd) * 140, 1)
        width = round(0.8 + next(rnd) * 2.2, 1)
        colour = dark if next(rnd) < 0.6 else light
        lines.append(f'<path d="M{x} {y}h{length}" stroke="{colour}" stroke-width="{width}" stroke-linecap="round"/>')
    return (
        '<defs><pattern id="l" width="3" height="3" patternUnits="userSpaceOnUse">'
        f'<path d="M0 1H3M1 0V3" stroke="{dark}" stroke-width=".6" opacity=".5"/></pattern></defs>'
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="{base}"/><rect width="{WIDTH}" height="{HEIGHT}" fill="url(#l)"/>'
        + "".join(lines)
        + f'<rect x="{WIDTH - 46}" width="46" height="{HEIGHT}" fill="{accent}" opacity=".85"/>'
    )


def _sheen(rnd: Iterator[float], base: str, accent: str, opacity: str = "1") -> str:
    """Silk: a diagonal light-dark-light gradient, the way satin catches the light."""
    return (
        '<defs><linearGradient id="s" x1="0" y1="0" x2="1" y2="1">'
        f'<stop offset="0" stop-color="{_shade(base, 0.85)}"/>'
        f'<stop offset=".35" stop-color="{_shade(base, 1.45)}"/>'
        f'<stop offset=".55" stop-color="{base}"/>'
        f'<stop offset=".8" stop-color="{accent}"/>'
        f'<stop offset="1" stop-color="{_shade(base, 1.2)}"/>'
        "</linearGradient></defs>"
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="url(#s)" opacity="{opacity}"/>'
        f'<path d="M-20 {HEIGHT}C60 90 120 140 {WIDTH + 20} 30" fill="none" stroke="#fff" stroke-width="14" opacity=".18"/>'
    )


def _organza(rnd: Iterator[float], base: str, accent: str) -> str:
    """Organza: sheer layers over a light ground, a fine open grid."""
    return (
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#faf7f5"/>'
        + _sheen(rnd, base, accent, opacity=".75")
        + '<defs><pattern id="o" width="4" height="4" patternUnits="userSpaceOnUse">'
        f'<path d="M0 2H4M2 0V4" stroke="{_shade(base, 0.8)}" stroke-width=".4"/></pattern></defs>'
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="url(#o)" opacity=".6"/>'
        f'<path d="M0 40Q120 0 {WIDTH} 60V{HEIGHT}H0Z" fill="{accent}" opacity=".35"/>'
    )


def _floral(rnd: Iterator[float], base: str, accent: str) -> str:
    """Lawn: a ditsy print, small five-petal flowers with a leaf, repeated on a 48 px tile."""
    leaf = "#5f7f4f"
    flowers = []
    for _ in range(4):
        x, y = round(6 + next(rnd) * 36, 1), round(6 + next(rnd) * 36, 1)
        colour = accent if next(rnd) < 0.6 else "#e7a93b"
        flowers.append(
            f'<g transform="translate({x} {y})"><path d="M2 2q5 1 6 6q-5-1-6-6" fill="{leaf}"/>'
            f'<g fill="{colour}"><circle cx="0" cy="-3" r="2.2"/><circle cx="2.9" cy="-.9" r="2.2"/>'
            '<circle cx="1.8" cy="2.4" r="2.2"/><circle cx="-1.8" cy="2.4" r="2.2"/><circle cx="-2.9" cy="-.9" r="2.2"/></g>'
            '<circle r="1.2" fill="#fff6d8"/></g>'
        )
    return (
        '<defs><pattern id="f" width="48" height="48" patternUnits="userSpaceOnUse">'
        + "".join(flowers)
        + "</pattern></defs>"
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="{base}"/><rect width="{WIDTH}" height="{HEIGHT}" fill="url(#f)"/>'
    )


def _gift(rnd: Iterator[float], base: str, accent: str) -> str:
    """The gift card: a card with a ribbon and a bow."""
    return (
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#f4efe6"/>'
        f'<rect x="30" y="22" width="180" height="116" rx="12" fill="{base}"/>'
        f'<path d="M30 80H210M150 22V138" stroke="{accent}" stroke-width="10"/>'
        f'<g fill="none" stroke="{accent}" stroke-width="6"><ellipse cx="136" cy="68" rx="14" ry="9"/>'
        '<ellipse cx="164" cy="68" rx="14" ry="9"/></g>'
        f'<text x="46" y="60" font-family="Georgia,serif" font-size="20" fill="#fff">Gift card</text>'
        '<text x="46" y="120" font-family="Georgia,serif" font-size="14" fill="#fff" opacity=".8">fabric &amp; notions</text>'
    )


def _spools(rnd: Iterator[float], base: str, accent: str) -> str:
    """The thread set: a row of spools in a wooden box."""
    palette = ["#b5332e", "#e0a526", "#2e6f9e", "#3f7d4e", "#7a4a8c", "#222831"]
    spools = []
    for i in range(6):
        x = 22 + i * 34
        colour = palette[int(next(rnd) * len(palette))]
        spools.append(
            f'<rect x="{x}" y="40" width="28" height="8" rx="2" fill="{accent}"/>'
            f'<rect x="{x + 3}" y="48" width="22" height="56" fill="{colour}"/>'
            f'<path d="M{x + 3} 58h22M{x + 3} 70h22M{x + 3} 82h22M{x + 3} 94h22" stroke="#000" stroke-width=".6" opacity=".25"/>'
            f'<rect x="{x}" y="104" width="28" height="8" rx="2" fill="{accent}"/>'
        )
    return (
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="{_shade(base, 1.4)}"/>'
        f'<rect x="10" y="28" width="{WIDTH - 20}" height="100" rx="6" fill="{base}" stroke="{accent}" stroke-width="3"/>'
        + "".join(spools)
    )


def _pinking(rnd: Iterator[float], base: str, accent: str) -> str:
    """Pinking shears: a piece of fabric with a zigzag edge, and the shears' handles."""
    zigzag = "".join(f"L{x} {62 if (x // 8) % 2 else 70}" for x in range(0, WIDTH + 8, 8))
    return (
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#f2f0ec"/>'
        f'<path d="M0 {HEIGHT}V66{zigzag}V{HEIGHT}Z" fill="{base}"/>'
        '<defs><pattern id="p" width="4" height="4" patternUnits="userSpaceOnUse">'
        f'<path d="M0 1H4M1 0V4" stroke="{_shade(base, 0.8)}" stroke-width=".7"/></pattern></defs>'
        f'<path d="M0 {HEIGHT}V66{zigzag}V{HEIGHT}Z" fill="url(#p)"/>'
        f'<g fill="none" stroke="{accent}" stroke-width="7"><ellipse cx="60" cy="30" rx="20" ry="12"/>'
        '<ellipse cx="60" cy="118" rx="20" ry="12"/></g>'
        f'<path d="M78 36L200 80L78 112" fill="none" stroke="#b9bec6" stroke-width="6"/>'
    )


PATTERNS: dict[str, Callable[[Iterator[float], str, str], str]] = {
    "plain": _plain,
    "canvas": _canvas,
    "knit": _knit,
    "slub": _slub,
    "sheen": _sheen,
    "organza": _organza,
    "floral": _floral,
    "gift": _gift,
    "spools": _spools,
    "pinking": _pinking,
}


def swatch_svg(*, handle: str, title: str, pattern: str, base: str, accent: str) -> str:
    """One product's swatch as an SVG document (``pattern`` is a key of ``PATTERNS``)."""
    body = PATTERNS[pattern](_numbers(handle), base, accent)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label={quoteattr(title)}>'
        f"<title>{escape(title)}</title>{body}</svg>\n"
    )
