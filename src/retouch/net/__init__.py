"""Outgoing HTTP to user-chosen URLs, behind an SSRF guard: http(s) inputs, web folders, webhooks.

* :mod:`~retouch.net.guard`: the address policy (:class:`FetchPolicy`, :func:`check_url`,
  :func:`check_endpoint`): which URLs and resolved addresses may be reached.
* :mod:`~retouch.net.transport`: :func:`guarded_client`, an ``httpx.Client`` whose transport
  resolves each host itself and connects only to addresses the guard admitted.
* :mod:`~retouch.net.fetch`: :func:`fetch`, one http(s) download with the policy's limits
  (redirects, byte cap, deadline) -> :class:`Fetched`.

Names with a leading underscore are shared between these three modules only. This package imports
no other part of retouch but ``errors``: storage connectors, inputs, the download process and
webhooks import it, never the reverse.
"""

from __future__ import annotations

from retouch.net.fetch import Fetched, fetch
from retouch.net.guard import FetchPolicy, check_endpoint, check_url
from retouch.net.transport import guarded_client

__all__ = ["FetchPolicy", "Fetched", "check_endpoint", "check_url", "fetch", "guarded_client"]
