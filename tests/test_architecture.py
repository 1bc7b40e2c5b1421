"""The app dependency direction (../shared/STYLE.md, docs/architecture.md), checked on the source.

Every ``import`` in a product app, at module level or inside a function, is read with ``ast``:

* an app imports only the apps below it: ``common`` <- ``catalog``, ``customers`` <- ``payments``
  <- ``carts`` <- ``orders`` <- ``webhooks`` <- ``backoffice`` (``payments`` never imports ``orders``);
* ``backoffice`` (the staff back office) is the top layer: it may import every domain app, and no
  product app imports it;
* product code never imports ``devtools``, ``tests`` or localstripe (GPL, a dev tool);
* no module imports another module's underscore names (a package's internal API is public names).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# app -> the product apps it may import
ALLOWED: dict[str, set[str]] = {
    "common": set(),
    "catalog": {"common"},
    "customers": {"common"},
    "payments": {"common", "catalog", "customers"},
    "carts": {"common", "catalog", "customers", "payments"},
    "orders": {"common", "catalog", "customers", "payments", "carts"},
    "webhooks": {"common", "catalog", "customers", "payments", "carts", "orders"},
    "backoffice": {"common", "catalog", "customers", "payments", "carts", "orders", "webhooks"},
    "storefront": {"common"},
}
# Known, documented exceptions: (importing file, imported app) -> why.
EXCEPTIONS = {
    ("common/idempotency.py", "customers"): "identifies the caller with the API's own authentication class, lazily",
}
NEVER = {"devtools", "tests", "localstripe"}
PRODUCT_APPS = sorted(ALLOWED)


def _imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, module, imported names) of every absolute import in the file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module, [alias.name for alias in node.names]))
    return found


def _sources(app: str) -> list[Path]:
    return [p for p in (ROOT / app).rglob("*.py") if "migrations" not in p.parts]


def _violations(app: str) -> list[str]:
    bad = []
    for path in _sources(app):
        relative = str(path.relative_to(ROOT))
        for line, module, names in _imports(path):
            top = module.split(".")[0]
            where = f"{relative}:{line} imports {module}"
            if top in NEVER:
                bad.append(f"{where} (product code never imports {top})")
            elif top in ALLOWED and top != app and top not in ALLOWED[app] and (relative, top) not in EXCEPTIONS:
                bad.append(f"{where} ({app} may import only {sorted(ALLOWED[app])})")
            private = [name for name in names if name.startswith("_") and not name.startswith("__")]
            if private and top in ALLOWED:
                bad.append(f"{where}: private names {private}")
    return bad


@pytest.mark.parametrize("app", PRODUCT_APPS)
def test_app_imports_follow_the_dependency_direction(app):
    assert _violations(app) == []


def test_every_product_app_is_checked():
    apps = {p.parent.name for p in ROOT.glob("*/apps.py")}
    assert apps - {"devtools"} <= set(ALLOWED), apps - set(ALLOWED)


def test_the_check_catches_an_upward_and_a_private_import(tmp_path, monkeypatch):
    """Not vacuous: payments importing orders, and a private name, are both reported."""
    fake = tmp_path / "payments"
    fake.mkdir()
    (fake / "bad.py").write_text("from orders.services.core import _secret\nimport devtools.demo\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    found = _violations("payments")
    assert any("imports orders.services.core (payments may import only" in v for v in found), found
    assert any("private names ['_secret']" in v for v in found), found
    assert any("never imports devtools" in v for v in found), found


def test_no_product_app_imports_the_back_office(tmp_path, monkeypatch):
    """backoffice is the top layer: orders (or webhooks) importing it, even lazily, is reported."""
    for app in ("orders", "webhooks"):
        fake = tmp_path / app
        fake.mkdir()
        (fake / "bad.py").write_text("def f():\n    from backoffice import dashboard\n")
    (tmp_path / "backoffice").mkdir()
    (tmp_path / "backoffice" / "fine.py").write_text("from orders import services\nfrom webhooks import services\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    for app in ("orders", "webhooks"):
        found = _violations(app)
        assert any(f"imports backoffice ({app} may import only" in v for v in found), found
    assert _violations("backoffice") == []
