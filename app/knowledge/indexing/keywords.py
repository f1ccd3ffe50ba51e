"""Keywords of a text, for the economy (keyword) index and for keyword queries. Deterministic, no model.

A keyword is a lower-cased word token (Unicode ``\\w``) of at least two characters that is not an English stop
word; pure numbers count only from three digits (years, codes), so list numbering and single digits are noise.
Keywords are ranked by frequency, ties broken by first occurrence.
"""

from __future__ import annotations

import re
from collections import Counter

_WORD = re.compile(r"\w+")

STOPWORDS = frozenset(
    """
    a about above after again against all almost also am an and any are aren as at be because been before
    being below between both but by can cannot could couldn did didn do does doesn doing don down during each
    either else etc even ever every few for from further get gets got had hadn has hasn have haven having he
    her here hers herself him himself his how however i if in into is isn it its itself just least less let
    like ll may me might more most much must mustn my myself neither no nor not now of off often on once only
    or other ought our ours ourselves out over own per quite rather re really same say says shall shan she
    should shouldn since so some still such than that the their theirs them themselves then there these they
    this those though through thus to too under until up upon us ve very via was wasn we were weren what when
    where whether which while who whom whose why will with within without won would wouldn yet you your yours
    yourself yourselves
    """.split()
)


def extract_keywords(text: str, limit: int = 10) -> list[str]:
    """Up to ``limit`` keywords of ``text``, most frequent first (first occurrence breaks ties)."""
    if limit <= 0:
        return []
    counts: Counter[str] = Counter(token for token in _WORD.findall(text.lower()) if _is_keyword(token))
    # Counter keeps first-insertion order and sorted() is stable, so ties stay in order of first occurrence.
    return [word for word, _ in sorted(counts.items(), key=lambda item: -item[1])[:limit]]


def _is_keyword(token: str) -> bool:
    if len(token) < 2 or token in STOPWORDS:
        return False
    if token.isdigit():
        return len(token) >= 3
    return token.strip("_") != ""
