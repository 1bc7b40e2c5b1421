from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status, viewsets
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from common.errors import ApplicationError
from common.schema import error_response
from common.throttling import FixedWindowThrottle
from customers import services
from customers.serializers import CustomerRegisterInputSerializer, CustomerSerializer, TokenInputSerializer
from customers.throttling import AuthIpThrottle, TokenEmailThrottle

CustomerResponse = inline_serializer("CustomerResponse", {"customer": CustomerSerializer()})


class CustomerViewSet(viewsets.ViewSet):
    def get_throttles(self) -> list[FixedWindowThrottle]:
        if self.action == "token":
            return [AuthIpThrottle(), TokenEmailThrottle()]
        return [AuthIpThrottle()] if self.action == "create" else []

    def get_permissions(self) -> list[IsAuthenticated]:
        return [IsAuthenticated()] if self.action == "me" else []

    @extend_schema(
        request=CustomerRegisterInputSerializer,
        responses={201: CustomerResponse, 409: error_response(409, "`email_taken`: a customer with this email exists.")},
        operation_id="customers_create",
    )
    def create(self, request: Request) -> Response:
        data = CustomerRegisterInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = services.customer_register(**data.validated_data)
        return Response({"customer": CustomerSerializer(user).data}, status=status.HTTP_201_CREATED)

    @extend_schema(responses=CustomerResponse, operation_id="customers_me")
    def me(self, request: Request) -> Response:
        return Response({"customer": CustomerSerializer(request.user).data})

    @extend_schema(
        request=TokenInputSerializer,
        responses={200: inline_serializer("TokenResponse", {"token": serializers.CharField()})},
        operation_id="auth_token_create",
    )
    def token(self, request: Request) -> Response:
        data = TokenInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            token = services.token_issue(**data.validated_data)
        except ApplicationError as exc:
            if exc.code == "invalid_credentials":
                TokenEmailThrottle().record_failure(request, self)
            raise
        return Response({"token": token})
