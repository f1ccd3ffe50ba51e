"""What a segment or child chunk stores about its text besides the text: length, token estimate, keywords, hash.

One definition for the indexing pipeline and the segment API, so a chunk edited through the API looks exactly
like one the splitter made.
"""

from __future__ import annotations

from typing import Any

from app.knowledge.embeddings.vectors import content_hash
from app.knowledge.indexing.keywords import extract_keywords

#: ``tokens`` is an estimate: characters / 4 (the usual rule of thumb); Dify asks the embedding model's
#: tokenizer, which Sluice does not run for a count.
CHARS_PER_TOKEN = 4


def estimate_tokens(characters: int) -> int:
    return characters // CHARS_PER_TOKEN


def text_fields(content: str, keywords: list[str] | None = None) -> dict[str, Any]:
    """``content`` with its ``word_count`` (characters, like Dify), ``keywords`` (counted here unless given:
    the indexing pipeline has a confined child count them) and ``content_hash``."""
    return {
        "content": content,
        "word_count": len(content),
        "keywords": extract_keywords(content) if keywords is None else keywords,
        "content_hash": content_hash(content),
    }
