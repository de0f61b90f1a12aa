"""Delivery: records onto the stream and channels, and the consumer groups that read them.

    publish    dedup, version check, XADD and PUBLISH as one atomic script
    entry      one stream entry as a consumer group hands it over
    groups     the shared consumer-group loop (claim, retry, dead-letter, prune)
    dead       the dead-letter stream and retrying from it
    subscribe  `ingest subscribe`: live channels, replay, a group of one's own
    webhooks   signed HTTP delivery through a consumer group
    events     feed state changes on the events channel
    retention  what the stream may lose, and when to stop taking work (pure, #20)
    trim       the stream trimmer task: durable groups, caps, backpressure (#20)
"""

__all__: list[str] = []
