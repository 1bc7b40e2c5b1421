"""The back office's admin registrations (Django's autodiscovery imports this module).

* ``orders``: the order list and the read-only order page with its money and fulfillment
  actions (confirmation pages in ``backoffice/views.py``), checkout incidents;
* ``webhooks``: the Stripe webhook inbox, with replay.

The other apps' plain registrations (catalog, carts, customers, the dj-stripe mirror) stay in
their own ``admin.py``.
"""

from backoffice.admin import orders, webhooks

__all__ = ["orders", "webhooks"]
