"""What retouch keeps in its database, one module per kind: ``tables`` (every table), ``db`` (the engine and
migrations), ``accounts`` (accounts and API keys), ``storages`` (an account's storages, credentials sealed),
``tasks`` (async and batch tasks and their items: claims, leases, results), ``webhooks``."""
