"""gunicorn settings: ``gunicorn -c config/gunicorn.conf.py`` (add ``--bind``).

* Workers: ``gthread``, one process per CPU (``WEB_CONCURRENCY`` overrides), each with
  ``GUNICORN_THREADS`` (8) request threads and HTTP keep-alive (``GUNICORN_KEEPALIVE``, 75 s:
  longer than a load balancer's usual 60 s idle timeout, so the balancer closes first). Threads
  let concurrent webhook deliveries of one process share a commit (webhooks/handoff.py, group
  commit) and keep a request waiting on Stripe from blocking the process; keep-alive saves a
  TCP handshake per delivery. ``timeout`` (``WEB_REQUEST_TIMEOUT``, 60 s) restarts a worker
  whose main loop stops answering; with threads it does not cut a single slow request (its
  Stripe calls are bounded by ``STRIPE_TIMEOUT``; ``WEB_REQUEST_TIMEOUT`` is that bound). Every thread may hold a database connection (``CONN_MAX_AGE``): size
  PostgreSQL's ``max_connections`` for workers x threads per host, plus the Celery workers.

* Logging: gunicorn's own loggers (``gunicorn.error``, ``gunicorn.access``) are configured
  with the project's ``settings.LOGGING`` (config/logging.py) as ``logconfig_dict``, so
  they print in the same format (``LOG_FORMAT=json|console``) as Django's and ours. The
  access line is an ``http.access`` event with the ``X-Request-ID`` the response carries
  (common/request_context.py), so it joins the request's other lines.
* Metrics: with ``PROMETHEUS_MULTIPROC_DIR`` set (a directory shared by the web and Celery
  processes of the host, emptied before they start), a worker that exits is marked dead
  so its live gauges leave ``/metrics`` (its counters stay summed in).
"""

import os

from django.conf import settings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

wsgi_app = "config.wsgi:application"
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY") or os.cpu_count() or 1)
threads = int(os.environ.get("GUNICORN_THREADS") or 8)
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE") or 75)
timeout = settings.WEB_REQUEST_TIMEOUT  # the longest a request can run (config/settings/base.py)
logconfig_dict = settings.LOGGING  # reads the settings module only (no app loading in the master)
accesslog = "-"
access_log_format = (
    "http.access method=%(m)s path=%(U)s status=%(s)s bytes=%(B)s duration_ms=%(M)s request_id=%({x-request-id}o)s"
)


def child_exit(server, worker):  # noqa: ANN001, ANN201 - gunicorn's hook signature
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
