from django.urls import path

from storefront import views

urlpatterns = [
    path("", views.storefront_index, name="storefront"),
    path("orders/<str:order_id>", views.storefront_order, name="storefront-order"),
]
