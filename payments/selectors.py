from __future__ import annotations

from payments.models import PaymentSession


def payment_session_active_for_cart(*, cart_id: str) -> PaymentSession | None:
    return PaymentSession.objects.filter(cart_id=cart_id, is_active=True).first()
