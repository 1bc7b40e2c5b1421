from django.urls import path

from devtools.ceiling.views import ItemView

urlpatterns = [path("items/<int:pk>", ItemView.as_view())]
