from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularJSONAPIView, SpectacularRedocView, SpectacularSwaggerView

from carts.api import CartViewSet, ShippingOptionViewSet
from catalog.api import CategoryViewSet, ProductViewSet, RegionViewSet
from common.views import LiveView, ReadyView, api_not_found
from customers.api import CustomerViewSet
from orders.api import CartCompleteViewSet, OrderViewSet
from payments.api import PaymentMethodViewSet
from webhooks.views import MetricsView, StripeWebhookView


def _p(route: str) -> str:
    """Exact API.md path, with an optional trailing slash (a non-capturing group, so the
    OpenAPI schema shows the path without it)."""
    return rf"^{route}(?:/)?$"


store = [
    re_path(_p("regions"), RegionViewSet.as_view({"get": "list"}), name="regions"),
    re_path(_p("categories"), CategoryViewSet.as_view({"get": "list"}), name="categories"),
    re_path(_p("products"), ProductViewSet.as_view({"get": "list"}), name="products"),
    re_path(_p(r"products/(?P<pk>[^/]+)"), ProductViewSet.as_view({"get": "retrieve"}), name="product"),
    re_path(_p("shipping-options"), ShippingOptionViewSet.as_view({"get": "list"}), name="shipping-options"),
    re_path(_p("carts"), CartViewSet.as_view({"post": "create"}), name="carts"),
    re_path(_p(r"carts/(?P<pk>[^/]+)"), CartViewSet.as_view({"get": "retrieve", "post": "update"}), name="cart"),
    re_path(
        _p(r"carts/(?P<pk>[^/]+)/line-items"), CartViewSet.as_view({"post": "line_item_add"}), name="cart-line-items"
    ),
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
    re_path(
        _p(r"carts/(?P<pk>[^/]+)/complete"), CartCompleteViewSet.as_view({"post": "complete"}), name="cart-complete"
    ),
    re_path(_p(r"orders/(?P<pk>[^/]+)"), OrderViewSet.as_view({"get": "retrieve"}), name="order"),
    re_path(_p("customers/me/orders"), OrderViewSet.as_view({"get": "list_mine"}), name="customers-me-orders"),
    re_path(
        _p(r"carts/(?P<pk>[^/]+)/payment-sessions"),
        CartViewSet.as_view({"post": "payment_session_create"}),
        name="cart-payment-sessions",
    ),
    re_path(_p("customers/me/payment-methods"), PaymentMethodViewSet.as_view({"get": "list"}), name="payment-methods"),
    re_path(
        _p(r"customers/me/payment-methods/(?P<pk>[^/]+)"),
        PaymentMethodViewSet.as_view({"delete": "destroy"}),
        name="payment-method",
    ),
    re_path(_p("customers"), CustomerViewSet.as_view({"post": "create"}), name="customers"),
    re_path(_p("customers/me"), CustomerViewSet.as_view({"get": "me"}), name="customers-me"),
    re_path(_p("auth/token"), CustomerViewSet.as_view({"post": "token"}), name="auth-token"),
    re_path(r"^openapi\.json$", SpectacularJSONAPIView.as_view(), name="openapi"),
    # The API explorer (Swagger UI, try-it-out against this server) and a read-only Redoc view,
    # both from drf-spectacular-sidecar's static files: no CDN.
    re_path(_p("docs"), SpectacularSwaggerView.as_view(url_name="openapi"), name="api-docs"),
    re_path(_p("redoc"), SpectacularRedocView.as_view(url_name="openapi"), name="api-redoc"),
    # Unknown paths under /store answer in the API's error shape, DEBUG or not.
    re_path(r"", api_not_found),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("store/", include(store)),
    re_path(_p("health/live"), LiveView.as_view(), name="health-live"),
    re_path(_p("health/ready"), ReadyView.as_view(), name="health-ready"),
    re_path(_p("webhooks/stripe"), StripeWebhookView.as_view(), name="webhooks-stripe"),
    re_path(_p("metrics"), MetricsView.as_view(), name="metrics"),
    re_path(r"^(?:webhooks|health)/", api_not_found),
    # The demo catalog's product images (MEDIA_ROOT); DEBUG only: production serves them elsewhere.
    *static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT),
    path("", include("storefront.urls")),
]

handler400 = "common.views.handler400"
handler403 = "common.views.handler403"
handler404 = "common.views.handler404"
handler500 = "common.views.handler500"
