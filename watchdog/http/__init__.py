"""HTTP both ways: the one retrying client every remote call goes through, and the
small ASGI toolkit our own endpoints and the loopback stand-ins are served with.

- ``bounded_read``: Every HTTP response this process reads, read through one bounded path.
- ``client``: One way to call a remote API: retries on 429/5xx/connection errors with backoff,
  ``Retry-After`` honoured (seconds or HTTP date, capped), all inside a deadline on the injected
  clock; other 4xx fail at once.
- ``server``: A small ASGI toolkit: request/response, a path router, and a loopback-friendly
  server.
"""
