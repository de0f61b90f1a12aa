"""Polling: which feeds are due, claiming them, fetching them politely.

    registry   the feeds (a hash each) and their schedule; add/remove/enable
    opml       import/export of feed lists
    discover   finding the feeds an HTML page advertises
    schedule   pure decisions: the next poll time, backoff, disabling
    scheduler  leased claims of due feeds (one Lua script per claim)
    completions poll outcomes recorded in batches (one script call per event-loop turn)
    urlguard   which addresses may be fetched, judged where the client connects
    politeness small HTTP predicates (Retry-After, redirects, 410)
    outage     telling our own outage from a publisher's
    fetch      one conditional GET, redirects hop by hop, size and time limits
    poller     the loop: claim, fetch, hand the body to a worker, record the outcome
    enqueue    putting parse jobs on the arq queue, with backpressure

Bodies leave this package as arq jobs; nothing here parses a feed.
"""

__all__: list[str] = []
