from django.urls import path

from storefront import views

urlpatterns = [
    path("", views.storefront_index, name="storefront"),
    path("orders/<str:order_id>", views.storefront_order, name="storefront-order"),
    path("account", views.storefront_account, name="storefront-account"),
    path("account/sign-in", views.storefront_sign_in, name="storefront-sign-in"),
    path("account/register", views.storefront_register, name="storefront-register"),
    path("account/orders/<str:order_id>", views.storefront_account_order, name="storefront-account-order"),
]
