"""Clustering of near-duplicate copies of one story across feeds.

    sketch  shingles, MinHash signatures and the banding decision (pure)
    index   the shared LSH index in Redis
"""

__all__: list[str] = []
