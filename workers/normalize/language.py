"""Item language as a BCP 47 tag: the declared one when valid, else detected.

py3langid is small (its model ships in the wheel, no download) and fast
(~0.1 ms for a paragraph); it is loaded on first use so processes that never
need detection do not pay for it.
"""

from __future__ import annotations

import functools
import re
from typing import Any

__all__ = ["detect_language", "normalize_language_tag"]

_TAG = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*$")
# Detection on a few words is a guess; below this many letters we say nothing.
_MIN_LETTERS = 40


def normalize_language_tag(tag: str | None) -> str | None:
    """"EN_us" -> "en-US", "de" -> "de", garbage -> None (BCP 47 case conventions)."""
    if not tag:
        return None
    tag = tag.strip()
    if not _TAG.match(tag):
        return None
    parts = tag.replace("_", "-").split("-")
    out = [parts[0].lower()]
    for part in parts[1:]:
        if len(part) == 2 and part.isalpha():
            out.append(part.upper())  # region
        elif len(part) == 4 and part.isalpha():
            out.append(part.title())  # script
        else:
            out.append(part.lower())
    return "-".join(out)


@functools.cache
def _identifier() -> Any:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def detect_language(text: str) -> str | None:
    """Best guess for `text`, or None when there is too little text to tell."""
    if sum(ch.isalpha() for ch in text[:2000]) < _MIN_LETTERS:
        return None
    lang, prob = _identifier().classify(text[:2000])
    if prob < 0.5:
        return None
    return normalize_language_tag(str(lang))
