"""No page of the project loads anything from a CDN or another host (issue 11 item 8).

Every HTML page -- the API explorer and Redoc, the storefront, and the admin (crawled as a
superuser, every page its links reach) -- is parsed, and each ``src``/``href``/``srcset``/
``action``/``url()`` it holds must be relative or same-origin. The CSS and JS files the pages
load are then read from the static files: a CSS ``url()``/``@import`` must be local, our own
JS names no absolute URL at all, and a vendored bundle names no asset host (the browser test
tests/browser/test_api_explorer.py watches the requests themselves).

The one exception is Stripe.js on the storefront (``STRIPE_JS_URL``): Stripe requires it to be
loaded from js.stripe.com (PCI DSS), never self-hosted; the tests point it at the local stand-in.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders

from tests.factories import UserFactory
from tests.factories.orders import OrderFactory

pytestmark = pytest.mark.django_db

ORIGIN = "http://testserver"
# Attributes whose URL the browser fetches (or submits to, or navigates to).
URL_ATTRIBUTES = {"src", "href", "srcset", "action", "poster", "data", "formaction", "background"}
CSS_URL = re.compile(r"""url\(\s*['"]?([^'")]+)['"]?\s*\)|@import\s+['"]([^'"]+)['"]""")
ABSOLUTE_URL = re.compile(r"https?://[^\s\"'`)<>\\]+")
# Hosts whose only business is serving assets: a vendored bundle naming one would fetch from it.
ASSET_HOSTS = re.compile(
    r"(^|\.)(cdn\.|cdnjs\.|unpkg\.com|jsdelivr\.net|googleapis\.com|gstatic\.com|fontawesome|bootstrapcdn|"
    r"cloudflare\.com|validator\.swagger\.io|cdn\.redoc\.ly|redocly\.com/assets)"
)
# Asset URLs inside vendored bundles that the pages loading them keep from being fetched, and how
# (each checked in test_vendored_asset_urls_are_disarmed and, in a browser, by test_api_explorer.py).
DISARMED = {
    "https://validator.swagger.io/validator": "Swagger UI's validator badge: SWAGGER_UI_SETTINGS validatorUrl null",
    "https://cdn.redoc.ly/redoc/logo-mini.svg": "Redoc's 'API docs by Redocly' logo: the page's CSP img-src 'self'",
}
# Schemes that fetch nothing, or nothing from a host.
HARMLESS_SCHEMES = ("data:", "mailto:", "tel:", "javascript:void", "#", "about:blank")
MAX_ADMIN_PAGES = 400


class _References(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.urls: list[tuple[str, str]] = []  # (tag.attribute, url)
        self.scripts: list[str] = []
        self.stylesheets: list[str] = []
        self.links: list[str] = []  # <a href>, to crawl
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        for name, value in values.items():
            if name in URL_ATTRIBUTES and value:
                urls = [part.strip().split(" ")[0] for part in value.split(",")] if name == "srcset" else [value]
                self.urls += [(f"{tag}.{name}", url) for url in urls if url]
            if name == "style":
                self.urls += [(f"{tag}.style", url) for url in _css_urls(value)]
        if tag == "script" and values.get("src"):
            self.scripts.append(values["src"])
        if tag == "link" and "stylesheet" in values.get("rel", "") and values.get("href"):
            self.stylesheets.append(values["href"])
        if tag == "a" and values.get("href"):
            self.links.append(values["href"])
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.urls += [("style", url) for url in _css_urls(data)]


def _css_urls(css: str) -> list[str]:
    return [a or b for a, b in CSS_URL.findall(css)]


def _is_local(url: str) -> bool:
    url = url.strip()
    if url.lower().startswith(HARMLESS_SCHEMES):
        return True
    parts = urlsplit(urljoin(ORIGIN + "/", url))
    return f"{parts.scheme}://{parts.netloc}" == ORIGIN


def _external(html: str, allowed: set[str] = frozenset()) -> list[tuple[str, str]]:
    parser = _References()
    parser.feed(html)
    return [(where, url) for where, url in parser.urls if not _is_local(url) and url not in allowed]


def _parse(html: str) -> _References:
    parser = _References()
    parser.feed(html)
    return parser


def _static_file(url: str) -> Path:
    path = urlsplit(url).path
    assert path.startswith("/" + settings.STATIC_URL.strip("/") + "/"), url
    found = finders.find(path.split("/", 2)[2])
    assert found, f"{url} is not one of our static files"
    return Path(found)


def _own(path: Path) -> bool:
    """Our own static file (static/, not vendored), not Django's, the sidecar's or static/vendor/'s."""
    own = Path(settings.BASE_DIR) / "static"
    return path.is_relative_to(own) and not path.is_relative_to(own / "vendor")


def _check_assets(html_pages: dict[str, str]) -> int:
    """Read every CSS and JS file the pages load; return how many were checked."""
    files: set[str] = set()
    for html in html_pages.values():
        parser = _parse(html)
        files |= {u for u in parser.scripts + parser.stylesheets if _is_local(u) and not u.startswith("data:")}
    # Django's /admin/jsi18n/ is a view (the translation catalog), not a file: it names no URL.
    files = {u for u in files if urlsplit(u).path != "/admin/jsi18n/"}
    for url in sorted(files):
        path = _static_file(url)
        text = path.read_text(encoding="utf-8", errors="replace")
        if path.suffix == ".css":
            external = [u for u in _css_urls(text) if not _is_local(u)]
            assert not external, (url, external)
        elif _own(path):
            assert not ABSOLUTE_URL.findall(text), (url, ABSOLUTE_URL.findall(text))
        else:
            fetched = [
                u
                for u in ABSOLUTE_URL.findall(text)
                if ASSET_HOSTS.search(urlsplit(u).netloc + urlsplit(u).path) and u not in DISARMED
            ]
            assert not fetched, (url, fetched)
    return len(files)


@pytest.fixture
def superuser_client(client):
    user = UserFactory(email="assets-staff@example.com", is_staff=True, is_superuser=True)
    client.force_login(user)
    return client


def _crawl_admin(client) -> dict[str, str]:
    """Every admin page reachable by links from the index (query strings and logout aside)."""
    pages: dict[str, str] = {}
    queue = ["/admin/"]
    seen = set(queue)
    while queue and len(pages) < MAX_ADMIN_PAGES:
        path = queue.pop(0)
        response = client.get(path)
        assert response.status_code in (200, 302, 403, 404), (path, response.status_code)
        if response.status_code != 200 or "text/html" not in response.get("Content-Type", ""):
            continue
        html = response.content.decode()
        pages[path] = html
        for link in _parse(html).links:
            target = urlsplit(urljoin(ORIGIN + path, link))
            if f"{target.scheme}://{target.netloc}" != ORIGIN or not target.path.startswith("/admin/"):
                continue
            if "logout" in target.path or target.path in seen:
                continue
            seen.add(target.path)
            queue.append(target.path)
    return pages


def test_admin_pages_load_nothing_from_outside(superuser_client):
    order = OrderFactory()
    pages = _crawl_admin(superuser_client)
    assert len(pages) < MAX_ADMIN_PAGES  # the crawl ended by itself
    # The crawl reached the pages that matter: the dashboard (Chart.js), an order and its actions.
    assert "/admin/orders/order/dashboard/" in pages
    assert any(order.pk.replace("_", "_5F") in path and path.endswith("/change/") for path in pages)
    assert any(path.endswith("/fulfil/") for path in pages)
    assert "vendor/chartjs/chart.umd.min.js" in pages["/admin/orders/order/dashboard/"]

    external = {path: found for path, html in pages.items() if (found := _external(html))}
    assert not external, external
    assert _check_assets(pages) >= 5


def test_admin_login_page_loads_nothing_from_outside(client):
    html = client.get("/admin/login/").content.decode()
    assert 'name="password"' in html
    assert not _external(html)
    _check_assets({"/admin/login/": html})


@pytest.mark.parametrize("path", ["/store/docs", "/store/redoc"])
def test_api_docs_load_nothing_from_outside(client, path):
    response = client.get(path)
    assert response.status_code == 200
    html = response.content.decode()
    assert not _external(html)
    assert _check_assets({path: html}) >= 1


def test_vendored_asset_urls_are_disarmed(client):
    swagger = client.get("/store/docs").content.decode()
    assert '"validatorUrl": null' in swagger
    for path in ("/store/docs", "/store/redoc"):
        html = client.get(path).content.decode()
        [policy] = re.findall(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)"', html)
        directives = dict(d.strip().split(" ", 1) for d in policy.split(";") if d.strip())
        assert directives["default-src"] == "'self'", path
        assert directives["img-src"] == "'self' data:", path
        assert "http" not in policy, path
        # The policy comes before anything the page loads.
        assert html.index("Content-Security-Policy") < min(html.index("<script"), html.index("<link")), path


def test_storefront_loads_nothing_from_outside_but_stripe_js(client, settings):
    """Stripe.js is the one script from another host, and only as configured (``STRIPE_JS_URL``)."""
    settings.STRIPE_JS_URL = "https://js.stripe.com/v3/"
    paths = (
        "/",
        "/orders/order_01m8v8tx4e8q2w6r0t3y5u7i9o",
        "/account",
        "/account/sign-in",
        "/account/register",
        "/account/orders/order_01m8v8tx4e8q2w6r0t3y5u7i9o",
    )
    pages = {path: client.get(path).content.decode() for path in paths}
    for path, html in pages.items():
        assert "storefront/storefront.js" in html, path
        assert not _external(html, allowed={settings.STRIPE_JS_URL}), path
    assert any(settings.STRIPE_JS_URL in html for html in pages.values())
    assert _check_assets({p: h.replace(settings.STRIPE_JS_URL, "") for p, h in pages.items()}) >= 2


def test_the_checks_catch_an_external_reference():
    """The parser and the asset check are not vacuous."""
    html = (
        '<link rel="stylesheet" href="https://fonts.googleapis.com/css?family=Roboto">'
        '<img srcset="/static/a.png 1x, //cdn.example.com/b.png 2x">'
        '<div style="background: url(https://cdn.example.com/c.png)"></div>'
        "<style>@import 'https://cdn.example.com/d.css';</style>"
        '<script src="/static/storefront/storefront.js"></script><a href="#top">top</a>'
    )
    assert [url for _, url in _external(html)] == [
        "https://fonts.googleapis.com/css?family=Roboto",
        "//cdn.example.com/b.png",
        "https://cdn.example.com/c.png",
        "https://cdn.example.com/d.css",
    ]
    assert ASSET_HOSTS.search("cdn.jsdelivr.net/npm/swagger-ui-dist")
    assert not ASSET_HOSTS.search("www.w3.org/2000/svg")
