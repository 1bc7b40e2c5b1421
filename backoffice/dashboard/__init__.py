"""The admin analytics dashboard (``/admin/orders/order/dashboard/``, ``backoffice.views.dashboard_view``).

* ``periods``: the period shown (``?days=7|30|90`` or ``?start=…&end=…``, whole UTC days);
* ``selectors``: the aggregate queries (one GROUP BY each, money per currency in minor units);
* ``figures``: the raw figures they give (``DashboardData``), for the tables and the tests;
* ``presenters``: cards, tables, charts, sections and the formatting of rates and durations;
* ``sections`` (orders, payments, carts) and ``inbox`` (the webhook inbox): what the page says;
* ``build``: ``dashboard_build`` runs a fixed number of queries for a period and returns
  ``DashboardData`` with its ``sections``; ``chart_payload`` is the JSON the page's Chart.js code
  reads (money stays in minor units there; the browser only scales it for display).
"""

from backoffice.dashboard.build import chart_payload, dashboard_build
from backoffice.dashboard.figures import CurrencySummary, DashboardData, RevenueRow
from backoffice.dashboard.periods import DEFAULT_DAYS, MAX_DAYS, PRESETS, Period, period_from_query, period_last_days
from backoffice.dashboard.presenters import percent

__all__ = [
    "DEFAULT_DAYS",
    "MAX_DAYS",
    "PRESETS",
    "CurrencySummary",
    "DashboardData",
    "Period",
    "RevenueRow",
    "chart_payload",
    "dashboard_build",
    "percent",
    "period_from_query",
    "period_last_days",
]
