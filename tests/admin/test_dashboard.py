"""The analytics dashboard: exact figures on a small hand-made history, and on generated demo data
checked against an independent computation (plain Python over the rows, no SQL aggregation)."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from backoffice import dashboard
from carts.models import Cart, LineItem
from common.money import round_half_up_div
from devtools import demo_orders
from orders.models import Order
from payments.models import LedgerEntry, PaymentAttempt
from tests.factories import CartFactory, LineItemFactory, RegionFactory
from tests.factories.orders import OrderFactory, PaymentSessionFactory
from webhooks.models import WebhookEvent

pytestmark = pytest.mark.django_db

URL = "/admin/orders/order/dashboard/"


def at(model, pk, when, field: str = "created_at") -> None:
    model.objects.filter(pk=pk).update(**{field: when})


def ledger_row(pi: str, kind: str, amount: int, currency: str, when, key: str) -> None:
    row = LedgerEntry.objects.create(
        payment_intent_id=pi, kind=kind, amount=amount, currency_code=currency, idempotency_key=key
    )
    at(LedgerEntry, row.pk, when)


def attempt(key: str, stage: str, outcome: str, when=None, *, pi: str = "", code: str = "") -> None:
    row = PaymentAttempt.objects.create(
        cart_id=f"cart_{key}",
        payment_intent_id=pi,
        stage=stage,
        outcome=outcome,
        decline_code=code,
        amount=1000,
        currency_code="usd",
        idempotency_key=key,
    )
    if when is not None:
        at(PaymentAttempt, row.pk, when)


def event(stripe_id: str, status: str, received, processed=None) -> None:
    row = WebhookEvent.objects.create(
        stripe_event_id=stripe_id, type="payment_intent.succeeded", status=status, payload="{}", processed_at=processed
    )
    at(WebhookEvent, row.pk, received, "received_at")


@pytest.fixture
def history(db):
    now = timezone.now()
    old = now - timedelta(days=20)
    # payment attempts in the period: 5 succeeded (one after 3-D Secure), 3 declined (2 at confirm, 1 card
    # refused on attach), 1 error, 1 3-D Secure without outcome; before it: 1 declined. Session rows
    # (any status) are not what the rate counts: a retried session is canceled, its decline stays.
    for n in range(5):
        attempt(f"s{n}", "confirm", "succeeded", pi=f"pi_s{n}")
    attempt("ra0", "confirm", "requires_action", pi="pi_s0")
    attempt("ra1", "confirm", "requires_action", pi="pi_open")
    attempt("d0", "confirm", "declined", pi="pi_d0", code="insufficient_funds")
    attempt("d1", "confirm", "declined", pi="pi_d1", code="card_declined")
    attempt("d2", "attach", "declined", code="card_declined")
    attempt("e0", "attach", "error", code="payment_provider_error")
    attempt("old", "confirm", "declined", old, pi="pi_old", code="card_declined")
    for status in ("authorized", "canceled", "failed", "pending"):
        PaymentSessionFactory(status=status)
    # orders
    jp = RegionFactory(name="Japan", currency_code="jpy", countries=["JP"], tax_rate_bps=1000, tax_inclusive=True)
    usd_a = OrderFactory(
        total=1000, payment_status="authorized", authorized_at=now, capture_before=now + timedelta(hours=50)
    )
    usd_b = OrderFactory(total=2001, payment_status="captured")
    OrderFactory(total=9999, status="canceled", payment_status="canceled")
    jpy = OrderFactory(
        cart=CartFactory(region=jp),
        total=1200,
        payment_status="authorized",
        authorized_at=now,
        capture_before=now + timedelta(hours=5),
    )
    at(Order, OrderFactory(total=7777, payment_status="captured").pk, old)
    # money
    ledger_row(usd_b.payment_intent_id, "capture", 2001, "usd", now - timedelta(days=1), "c1")
    ledger_row("pi_other", "capture", 1000, "usd", now, "c2")
    ledger_row(usd_b.payment_intent_id, "refund", 500, "usd", now, "r1")
    ledger_row(jpy.payment_intent_id, "capture", 1200, "jpy", now, "c3")
    ledger_row("pi_old", "capture", 4242, "usd", old, "c4")
    # carts with items: 2 completed, 1 open, 1 expired (the order factories' carts have no items)
    for status, expires in (
        ("completed", now),
        ("completed", now),
        ("active", now + timedelta(days=3)),
        ("expired", now),
    ):
        LineItemFactory(cart=CartFactory(status=status, expires_at=expires))
    # webhooks: lags 2 s and 4 s, one dead letter, one waiting for 10 minutes
    event("evt_1", "processed", now - timedelta(hours=3), now - timedelta(hours=3) + timedelta(seconds=2))
    event("evt_2", "processed", now - timedelta(hours=2), now - timedelta(hours=2) + timedelta(seconds=4))
    event("evt_3", "failed", now - timedelta(hours=1))
    event("evt_4", "received", now - timedelta(minutes=10))
    event("evt_old", "processed", old, old + timedelta(seconds=100))
    return {"now": now, "usd_a": usd_a, "jpy": jpy}


def test_figures_of_a_known_history(history):
    now = history["now"]
    data = dashboard.dashboard_build(period=dashboard.period_last_days(7), now=now)

    p = data.payments
    assert (p.succeeded, p.declined, p.errors, p.unfinished, p.attempts) == (5, 3, 1, 1, 9)
    assert data.payment_success_permille == 556  # 5 / 9
    assert [(r.stage, r.code, r.count) for r in data.decline_reasons] == [
        ("attach", "card_declined", 1),
        ("confirm", "card_declined", 1),
        ("confirm", "insufficient_funds", 1),
    ]
    assert sum(d.succeeded for d in data.payments_by_day) == 5 and sum(d.declined for d in data.payments_by_day) == 3
    by_currency = {c.currency_code: c for c in data.currencies}
    assert (by_currency["usd"].orders, by_currency["usd"].value, by_currency["usd"].average_order_value) == (
        2,
        3001,
        1501,
    )
    assert (by_currency["usd"].captured, by_currency["usd"].refunded, by_currency["usd"].net) == (3001, 500, 2501)
    assert (by_currency["jpy"].orders, by_currency["jpy"].average_order_value, by_currency["jpy"].captured) == (
        1,
        1200,
        1200,
    )
    today, yesterday = now.date(), now.date() - timedelta(days=1)
    revenue = {(r.day, r.currency_code): (r.captured, r.refunded, r.net) for r in data.revenue}
    assert revenue[(today, "usd")] == (1000, 500, 500)
    assert revenue[(yesterday, "usd")] == (2001, 0, 2001)
    assert revenue[(today, "jpy")] == (1200, 0, 1200)
    assert (data.carts.carts, data.carts.completed, data.carts.open, data.carts.abandoned) == (4, 2, 1, 2)
    assert data.cart_abandonment_permille == 500
    awaiting = {a.currency_code: a for a in data.awaiting}
    assert (awaiting["usd"].orders, awaiting["usd"].amount, awaiting["usd"].within_72h) == (1, 1000, 1)
    assert (awaiting["jpy"].orders, awaiting["jpy"].amount, awaiting["jpy"].within_24h) == (1, 1200, 1)
    assert [o.pk for o in data.soonest] == [history["jpy"].pk, history["usd_a"].pk]
    hooks = data.extra["webhooks"]
    assert (hooks["backlog"].pending, hooks["backlog"].dead_letters) == (1, 1)
    assert timedelta(minutes=9) < hooks["backlog"].oldest_pending_age < timedelta(minutes=11)
    stats = hooks["period"]
    assert (stats.received, stats.processed, stats.failed) == (4, 2, 1)
    assert (stats.lag_avg, stats.lag_max) == (timedelta(seconds=3), timedelta(seconds=4))


# Session, user and its permissions (4), then fixed aggregates whatever the period or the data:
# payments (1), revenue and orders (4), carts (1), awaiting capture (2), webhook section (3).
# Payments was two queries over sessions; it is one GROUP BY over the attempt rows now.
PAGE_QUERIES = 15


def test_the_page_shows_the_figures_charts_and_tables(staff_client, history, django_assert_num_queries):
    with django_assert_num_queries(PAGE_QUERIES):
        response = staff_client.get(URL + "?days=7")

    assert response.status_code == 200
    html = response.content.decode()
    assert "5 succeeded of 9 attempts; 3 declined, 1 errors" in html
    assert "insufficient_funds" in html
    for expected in ("55.6 %", "$15.01", "¥1,200", "50.0 %", "$25.01", "Webhook backlog", "3.0 s", "Dead letters"):
        assert expected in html, expected
    assert "/static/vendor/chartjs/chart.umd.min.js" in html and "cdn" not in html.lower()
    assert 'id="ck-chart-data"' in html
    charts = {chart["id"] for chart in response.context["chart_data"]}
    assert {
        "revenue-usd",
        "revenue-jpy",
        "payment-outcomes",
        "cart-funnel",
        "authorization-expiry",
        "webhooks",
    } <= charts


def test_the_charting_library_is_vendored_with_its_licence():
    vendor = Path(settings.BASE_DIR) / "static" / "vendor" / "chartjs"
    script = (vendor / "chart.umd.min.js").read_text()

    assert script.startswith("/*!\n * Chart.js v4.")
    assert "MIT" in (vendor / "LICENSE.md").read_text()


def test_the_period_selector(staff_client, history):
    assert staff_client.get(URL + "?start=2026-01-01&end=2026-01-31").context["period"].length == 31
    for junk in ("?days=abc", "?start=yesterday", "?days=-4"):
        assert staff_client.get(URL + junk).status_code == 200


def test_period_parsing():
    today = date(2026, 11, 26)
    assert dashboard.period_from_query({}, today=today) == dashboard.Period(date(2026, 10, 28), today, 30)
    assert dashboard.period_from_query({"days": "7"}, today=today).first_day == date(2026, 11, 20)
    assert dashboard.period_from_query({"start": "2026-11-30", "end": "2026-11-01"}, today=today).length == 30
    assert (
        dashboard.period_from_query({"start": "2020-01-01", "end": "2026-01-01"}, today=today).length
        == dashboard.MAX_DAYS
    )
    assert dashboard.period_from_query({"start": "nope"}, today=today).preset == 30
    assert (
        dashboard.percent(1, 3) == "33.3 %" and dashboard.percent(2, 3) == "66.7 %" and dashboard.percent(0, 0) == "–"
    )


def test_staff_without_view_order_cannot_open_the_dashboard(staff_factory, client):
    from tests.factories import UserFactory

    client.force_login(UserFactory(is_staff=True))
    assert client.get(URL).status_code == 403


# --- Generated demo data vs an independent computation -----------------------------------------------


def expected_from_rows(*, start, end, now) -> dict:
    """Every figure recomputed in Python from the raw rows, the definitions written out (docs/admin.md)."""
    in_period = lambda t: start <= t < end  # noqa: E731
    attempts = list(PaymentAttempt.objects.all())
    settled_pis = {
        a.payment_intent_id for a in attempts if a.outcome in ("succeeded", "declined") and a.payment_intent_id
    }
    success = failed = unfinished = 0
    for a in attempts:
        if not in_period(a.created_at):
            continue
        success += a.outcome == "succeeded"
        failed += a.outcome in ("declined", "error")
        unfinished += a.outcome == "requires_action" and a.payment_intent_id not in settled_pis
    orders: dict[str, list[int]] = defaultdict(list)
    for o in Order.objects.all():
        if in_period(o.created_at) and o.status != "canceled":
            orders[o.currency_code].append(o.total)
    money: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    for r in LedgerEntry.objects.all():
        if in_period(r.created_at) and r.status == "succeeded" and r.kind in ("capture", "refund"):
            money[(r.created_at.date(), r.currency_code)][0 if r.kind == "capture" else 1] += r.amount
    carts = completed = still_open = 0
    with_items = set(LineItem.objects.values_list("cart_id", flat=True))
    for c in Cart.objects.all():
        if in_period(c.created_at) and c.pk in with_items:
            carts += 1
            completed += c.status == "completed"
            still_open += c.status in ("active", "completing") and c.expires_at > now
    awaiting: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])  # orders, amount, expired, within 24 h
    for o in Order.objects.filter(payment_status="authorized"):
        expires = o.capture_before or o.authorized_at + timedelta(days=7)
        row = awaiting[o.currency_code]
        row[0] += 1
        row[1] += o.total
        row[2] += expires <= now
        row[3] += now < expires <= now + timedelta(hours=24)
    events = [e for e in WebhookEvent.objects.all() if in_period(e.received_at)]
    lags = [e.processed_at - e.received_at for e in events if e.status == "processed"]
    pending = [e for e in WebhookEvent.objects.all() if e.status in ("received", "processing")]
    return {
        "payments": (success, failed, unfinished),
        "aov": {c: (len(v), sum(v), round_half_up_div(sum(v), len(v))) for c, v in orders.items()},
        "money": {k: tuple(v) for k, v in money.items()},
        "carts": (carts, completed, still_open),
        "awaiting": {c: tuple(v) for c, v in awaiting.items()},
        "webhooks": (
            len(events),
            len(lags),
            sum(e.status == "failed" for e in events),
            sum(lags, timedelta()) / len(lags) if lags else None,
            max(lags) if lags else None,
            len(pending),
            WebhookEvent.objects.filter(status="failed").count(),
        ),
    }


DEMO_ORDERS = 12  # what the assertions need: every kind of figure, not volume (each order is a real checkout)


def test_the_dashboard_matches_an_independent_computation_on_demo_data(
    staff_client, django_assert_num_queries, localstripe, settings
):
    settings.STRIPE_WEBHOOK_SECRET = "whsec_test_dashboard"
    settings.STRIPE_CAPTURE_METHOD = "manual"
    demo_orders.demo_orders_generate(
        stripe_base=localstripe.base_url, orders=DEMO_ORDERS, seed=11, days=30, customers=2, declined=2, abandoned=5
    )
    now = timezone.now()
    period = dashboard.period_last_days(30)

    data = dashboard.dashboard_build(period=period, now=now)
    expected = expected_from_rows(start=period.start, end=period.end, now=now)

    assert Order.objects.count() == DEMO_ORDERS
    p = data.payments
    assert (p.succeeded, p.declined + p.errors, p.unfinished) == expected["payments"]
    assert p.succeeded >= DEMO_ORDERS and p.declined > 0 and p.unfinished > 0
    assert {
        c.currency_code: (c.orders, c.value, c.average_order_value) for c in data.currencies if c.orders
    } == expected["aov"]
    assert {
        (r.day, r.currency_code): (r.captured, r.refunded) for r in data.revenue if r.captured or r.refunded
    } == expected["money"]
    assert any(refunded for _, refunded in expected["money"].values())
    assert (data.carts.carts, data.carts.completed, data.carts.open) == expected["carts"]
    assert data.carts.abandoned > 0
    assert {a.currency_code: (a.orders, a.amount, a.expired, a.within_24h) for a in data.awaiting} == expected[
        "awaiting"
    ]
    hooks = data.extra["webhooks"]
    stats, backlog = hooks["period"], hooks["backlog"]
    got = (
        stats.received,
        stats.processed,
        stats.failed,
        stats.lag_avg,
        stats.lag_max,
        backlog.pending,
        backlog.dead_letters,
    )
    assert got[:3] == expected["webhooks"][:3] and got[5:] == expected["webhooks"][5:]
    assert abs(got[3] - expected["webhooks"][3]) < timedelta(milliseconds=1)  # the database's mean vs Python's
    assert got[4] == expected["webhooks"][4]

    with django_assert_num_queries(PAGE_QUERIES):
        response = staff_client.get(URL + "?days=30")
    assert response.status_code == 200
    html = response.content.decode()
    assert dashboard.percent(*expected["payments"][:1], sum(expected["payments"][:2])) in html
    for currency, (_, _, aov) in expected["aov"].items():
        from common.money import format_money

        assert format_money(aov, currency) in html
