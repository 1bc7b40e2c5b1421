from django import forms
from django.contrib import admin
from django.contrib.admin.widgets import FilteredSelectMultiple

from catalog.models import Category, Price, Product, Region, ShippingOption, StockLevel, StockReservation, Variant
from common.addresses import country_choices, country_name


class RegionAdminForm(forms.ModelForm):
    """The region's countries picked by name (common.addresses.country_choices), stored as ISO codes."""

    countries = forms.MultipleChoiceField(
        choices=country_choices, widget=FilteredSelectMultiple("countries", is_stacked=False)
    )

    class Meta:
        model = Region
        fields = "__all__"

    def clean_countries(self) -> list[str]:
        # Keep the stored order (the first country is the region's default), new ones after.
        chosen = self.cleaned_data["countries"]
        kept = [code for code in (self.instance.countries or []) if code in chosen]
        return kept + [code for code in chosen if code not in kept]


@admin.register(Region)
class RegionAdmin(admin.ModelAdmin):
    form = RegionAdminForm
    list_display = ["name", "currency_code", "country_names", "tax_rate_bps", "tax_inclusive", "id"]
    search_fields = ["name", "id"]

    @admin.display(description="Countries")
    def country_names(self, obj: Region) -> str:
        return ", ".join(country_name(code=code) for code in obj.countries or [])


class PriceInline(admin.TabularInline):
    model = Price
    extra = 0


class StockLevelInline(admin.StackedInline):
    model = StockLevel
    extra = 0
    readonly_fields = ["reserved"]


class VariantInline(admin.TabularInline):
    model = Variant
    extra = 0
    show_change_link = True


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ["name", "handle", "position", "id"]
    list_editable = ["position"]
    search_fields = ["name", "handle"]
    prepopulated_fields = {"handle": ["name"]}


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["title", "handle", "category", "thumbnail", "id"]
    list_filter = ["category"]
    list_select_related = ["category"]
    search_fields = ["title", "handle", "id"]
    prepopulated_fields = {"handle": ["title"]}
    inlines = [VariantInline]


@admin.register(Variant)
class VariantAdmin(admin.ModelAdmin):
    list_display = ["sku", "title", "product", "manage_inventory", "allow_backorder"]
    list_select_related = ["product"]
    search_fields = ["sku", "title", "id"]
    inlines = [PriceInline, StockLevelInline]


@admin.register(StockLevel)
class StockLevelAdmin(admin.ModelAdmin):
    list_display = ["variant", "on_hand", "reserved"]
    list_select_related = ["variant"]
    readonly_fields = ["reserved"]
    search_fields = ["variant__sku"]


@admin.register(StockReservation)
class StockReservationAdmin(admin.ModelAdmin):
    list_display = ["cart_id", "variant", "quantity", "expires_at"]
    list_select_related = ["variant"]
    search_fields = ["cart_id", "variant__sku"]

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


@admin.register(ShippingOption)
class ShippingOptionAdmin(admin.ModelAdmin):
    list_display = ["name", "region", "amount", "is_active"]
    list_select_related = ["region"]
