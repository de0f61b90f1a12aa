"""Clustering of near-duplicate copies of one story across feeds.

    shingles  the text cut into shingles that fit its script (pure)
    sketch    MinHash bands, shingle samples and the similarity check (pure)
    index     the shared LSH index in Redis
"""

__all__: list[str] = []
