from django.shortcuts import get_object_or_404
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from devtools.ceiling.models import Item


class ItemSerializer(serializers.ModelSerializer):
    class Meta:
        model = Item
        fields = ["id", "name", "quantity", "updated_at"]
        read_only_fields = ["id", "name", "updated_at"]


class ItemView(APIView):
    def get(self, request: Request, pk: int) -> Response:
        return Response({"item": ItemSerializer(get_object_or_404(Item, pk=pk)).data})

    def post(self, request: Request, pk: int) -> Response:
        serializer = ItemSerializer(get_object_or_404(Item, pk=pk), data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        serializer.save()
        return Response({"item": serializer.data})
