from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView

from carts.api import CartViewSet, ShippingOptionViewSet
from catalog.api import ProductViewSet, RegionViewSet
from common.views import LiveView, ReadyView
from customers.api import CustomerViewSet


def _p(route: str) -> str:
    """Exact API.md path, with an optional trailing slash."""
    return rf"^{route}/?$"


store = [
    re_path(_p("regions"), RegionViewSet.as_view({"get": "list"}), name="regions"),
    re_path(_p("products"), ProductViewSet.as_view({"get": "list"}), name="products"),
    re_path(_p(r"products/(?P<pk>[^/]+)"), ProductViewSet.as_view({"get": "retrieve"}), name="product"),
    re_path(_p("shipping-options"), ShippingOptionViewSet.as_view({"get": "list"}), name="shipping-options"),
    re_path(_p("carts"), CartViewSet.as_view({"post": "create"}), name="carts"),
    re_path(_p(r"carts/(?P<pk>[^/]+)"), CartViewSet.as_view({"get": "retrieve", "post": "update"}), name="cart"),
    re_path(_p(r"carts/(?P<pk>[^/]+)/line-items"), CartViewSet.as_view({"post": "line_item_add"}), name="cart-line-items"),
    re_path(
        _p(r"carts/(?P<pk>[^/]+)/line-items/(?P<item_id>[^/]+)"),
        CartViewSet.as_view({"post": "line_item_update", "delete": "line_item_remove"}),
        name="cart-line-item",
    ),
    re_path(
        _p(r"carts/(?P<pk>[^/]+)/shipping-methods"),
        CartViewSet.as_view({"post": "shipping_method_set"}),
        name="cart-shipping-methods",
    ),
    re_path(_p("customers"), CustomerViewSet.as_view({"post": "create"}), name="customers"),
    re_path(_p("customers/me"), CustomerViewSet.as_view({"get": "me"}), name="customers-me"),
    re_path(_p("auth/token"), CustomerViewSet.as_view({"post": "token"}), name="auth-token"),
    re_path(_p("openapi.json"), SpectacularAPIView.as_view(), name="openapi"),
    re_path(_p("docs"), SpectacularRedocView.as_view(url_name="openapi"), name="api-docs"),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("store/", include(store)),
    re_path(_p("health/live"), LiveView.as_view(), name="health-live"),
    re_path(_p("health/ready"), ReadyView.as_view(), name="health-ready"),
]

handler400 = "common.views.handler400"
handler403 = "common.views.handler403"
handler404 = "common.views.handler404"
handler500 = "common.views.handler500"
