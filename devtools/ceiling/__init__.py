"""The framework ceiling of the benchmark: a minimal DRF app. Dev tooling only.

One model (``Item``), one read view (``GET /items/<pk>``) and one write view
(``POST /items/<pk>`` ``{"quantity": n}``), JSON in and out, no authentication, Django's two
stock middlewares. ``devtools.bench`` serves it with the same gunicorn settings as the app
(``gunicorn devtools.ceiling.wsgi``, same workers, 127.0.0.1, DEBUG off) on the app's own
database (its table is ``ceiling_item``), so the app's cart read and cart write can be
reported as a percentage of what Django + DRF + PostgreSQL do at best on this machine.
"""
