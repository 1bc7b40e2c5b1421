from django.contrib import admin

from carts.models import Cart, LineItem


class LineItemInline(admin.TabularInline):
    model = LineItem
    extra = 0
    readonly_fields = ["id", "variant", "sku", "title", "quantity", "unit_price"]
    can_delete = False

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


@admin.register(Cart)
class CartAdmin(admin.ModelAdmin):
    """Read-only: carts change only through the store API's services."""

    list_display = ["id", "status", "email", "currency_code", "customer", "expires_at", "created_at"]
    list_filter = ["status", "currency_code"]
    search_fields = ["id", "email"]
    list_select_related = ["customer"]
    inlines = [LineItemInline]

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False
