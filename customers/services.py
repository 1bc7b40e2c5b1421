from __future__ import annotations

import logging
import secrets

from django.contrib.auth import authenticate
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction

from common.errors import ApplicationError, Conflict, ValidationError
from customers.models import AuthToken, User, token_digest

logger = logging.getLogger(__name__)


def customer_register(*, email: str, password: str, first_name: str = "", last_name: str = "") -> User:
    email = email.strip().lower()
    try:
        validate_password(password)
    except DjangoValidationError as exc:
        raise ValidationError(" ".join(exc.messages), param="password") from exc
    try:
        with transaction.atomic():
            user = User.objects.create_user(email, password, first_name=first_name, last_name=last_name)
    except IntegrityError as exc:
        raise Conflict("A customer with this email already exists.", code="email_taken", param="email") from exc
    logger.info("customer.registered customer_id=%s", user.id)
    return user


def token_issue(*, email: str, password: str) -> str:
    user = authenticate(username=email.strip().lower(), password=password)
    if user is None:
        raise ApplicationError("Invalid email or password.", code="invalid_credentials", http_status=401)
    raw = secrets.token_urlsafe(32)
    AuthToken.objects.create(user=user, digest=token_digest(raw))
    logger.info("customer.token_issued customer_id=%s", user.id)
    return raw
