from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle

from common.errors import ApplicationError
from common.schema import envelope, error_example, error_response
from customers import services
from customers.serializers import CustomerRegisterInputSerializer, CustomerSerializer, TokenInputSerializer
from customers.throttling import AuthIpThrottle, TokenEmailThrottle

CustomerResponse = envelope("CustomerResponse", {"customer": CustomerSerializer()})

EXAMPLE_CUSTOMER = {
    "id": "cus_01m8v8trwbqr5acem9xkdz0am4",
    "email": "grace@example.com",
    "first_name": "Grace",
    "last_name": "Hopper",
    "date_joined": "2026-12-02T11:39:25.451160Z",
}


class CustomerViewSet(viewsets.ViewSet):
    def get_throttles(self) -> list[BaseThrottle]:
        if self.action == "token":
            return [AuthIpThrottle(), TokenEmailThrottle()]
        return [AuthIpThrottle()] if self.action == "create" else []

    def get_permissions(self) -> list[IsAuthenticated]:
        return [IsAuthenticated()] if self.action == "me" else []

    @extend_schema(
        request=CustomerRegisterInputSerializer,
        responses={
            201: CustomerResponse,
            409: error_response(
                409,
                "`email_taken`: a customer with this email exists.",
                examples=[error_example(409, "email_taken", "A customer with this email already exists.", "email")],
            ),
        },
        operation_id="customers_create",
        summary="Register a customer",
        description="Creates the account; then `POST /store/auth/token` for a bearer token.",
        tags=["customers"],
        examples=[
            OpenApiExample(
                "Registration",
                value={
                    "email": "grace@example.com",
                    "password": "correct horse battery",
                    "first_name": "Grace",
                    "last_name": "Hopper",
                },
                request_only=True,
            ),
            OpenApiExample(
                "Registered", value={"customer": EXAMPLE_CUSTOMER}, response_only=True, status_codes=["201"]
            ),
        ],
    )
    def create(self, request: Request) -> Response:
        data = CustomerRegisterInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = services.customer_register(**data.validated_data)
        return Response({"customer": CustomerSerializer(user).data}, status=status.HTTP_201_CREATED)

    @extend_schema(
        responses=CustomerResponse,
        operation_id="customers_me",
        summary="Retrieve the signed-in customer",
        description="Needs a bearer token (click Authorize and paste the token from `POST /store/auth/token`).",
        tags=["customers"],
        examples=[
            OpenApiExample("Customer", value={"customer": EXAMPLE_CUSTOMER}, response_only=True, status_codes=["200"])
        ],
    )
    def me(self, request: Request) -> Response:
        return Response({"customer": CustomerSerializer(request.user).data})

    @extend_schema(
        request=TokenInputSerializer,
        responses={
            200: envelope("TokenResponse", {"token": serializers.CharField()}),
            401: error_response(
                401,
                "`invalid_credentials`: wrong email or password.",
                examples=[error_example(401, "invalid_credentials", "Invalid email or password.")],
            ),
        },
        operation_id="auth_token_create",
        summary="Issue a bearer token",
        description="Send it as `Authorization: Bearer <token>`. Repeated failures for an email are "
        "throttled (429 with `Retry-After`).",
        tags=["customers"],
        examples=[
            OpenApiExample(
                "Credentials",
                value={"email": "grace@example.com", "password": "correct horse battery"},
                request_only=True,
            ),
            OpenApiExample(
                "Token",
                value={"token": "zHqFKGUJ1O88cLI8dtqMsnfzDu47EFvPTF3zGRVsd8Y"},
                response_only=True,
                status_codes=["200"],
            ),
        ],
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
