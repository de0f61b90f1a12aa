"""The HTTP server (aiohttp's own): JSON API, live SSE stream, metrics, status page.

    app           the application: shared clients, middlewares, route modules
    server        serve the app on `listen` until stopped (`ingest run`, `ingest api`)
    access        the listen rule (no token: loopback only), bearer token, CORS
    errors        failures as JSON with the right status
    params        query parameters, JSON bodies and page cursors (400 naming the field)
    routes_ops    health, enqueue, dead letters, stats, poll everything now
    routes_feeds  feeds: list, add, get, change, remove, poll now
    routes_items  stored items: query and full-text search
    sse           live items over Server-Sent Events, resumable by Last-Event-ID
    metrics       /metrics from the counters in Redis (service-wide)
    status, page  the status page's content, and its HTML
    openapi       the OpenAPI 3 document

docs/api.md documents every route.
"""

__all__: list[str] = []
