"""Normalization: a parsed entry becomes the item record.

    record      the record itself (fields, ids, hashes, versions)
    clean       sanitized HTML, plain text and paragraphs
    authors     bylines and agency credits
    times       dates with their zones, to UTC
    date_names  month and weekday names the date parser knows
    language    the declared tag, else detection
"""

__all__: list[str] = []
