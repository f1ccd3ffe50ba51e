"""`just bench indexing`: the indexing pipeline against raw embedding, and retrieval at 100,000 segments.

1. Pipeline vs raw (same model, same texts, one run, one after the other so they do not share the CPU): a
   document is created through the Service API and indexed by the real worker (parse, clean, split, embed,
   store); segments/s = segments / (time from the create call until `indexing-status` says completed). Then the
   same segments are embedded in this process by the same embedder, in the pipeline's batch size: raw
   segments/s. Done for the default local model (multilingual-e5-small) and for static-64.
2. 100,000 segments (static-64 vectors: the e5 model embeds ~50 segments/s here, ~35 min for 100k): ten
   documents of 10,000 one-line segments indexed through the pipeline; then `/retrieve` latency p50/p95 for
   semantic, full-text and hybrid search, and HNSW recall@10 of the semantic query against exact search (the
   same query with index scans disabled).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import re
import sys
import time
from typing import Any

import httpx
import numpy as np
import psycopg

from app.knowledge.embeddings.embedders import make_embedder
from app.knowledge.embeddings.vectors import vector_literal
from app.knowledge.indexing.cleaning import clean
from app.knowledge.indexing.pipeline import EMBED_BATCH
from app.knowledge.indexing.splitting import ProcessRule, split_document
from app.knowledge.retrieval.search import EF_SEARCH
from db import urls
from tests.perf.harness import Processes, Row, percentile, report, run_with_processes
from tests.perf.retrieval_eval import load_documents

ADMIN = {"Authorization": "Bearer bench-admin"}
LINE_RULE = {
    "mode": "custom",
    "rules": {
        "pre_processing_rules": [],
        "segmentation": {"separator": "\\n", "max_tokens": 200, "chunk_overlap": 0},
    },
}


class Corpus:
    """Synthetic text with a realistic word distribution: the evaluation set's vocabulary plus made-up words
    (20,000 in all), drawn by Zipf's law like natural text; queries use mid-frequency words, as people do."""

    def __init__(self, seed: object, size: int = 20_000) -> None:
        self.rng = random.Random(str(seed))
        words = dict.fromkeys(
            w
            for d in load_documents()
            for w in re.findall(r"[a-z]{3,}", (d["title"] + " " + d["text"]).lower())
        )
        syllables = [c + v for c in "bcdfghklmnprstvz" for v in "aeiou"]
        while len(words) < size:
            words.setdefault("".join(self.rng.choice(syllables) for _ in range(self.rng.randint(2, 4))))
        self.words = list(words)[:size]
        self.rng.shuffle(self.words)
        self.weights = list(itertools.accumulate(1 / (rank**1.07) for rank in range(1, size + 1)))

    def sentence(self, i: int) -> str:
        n = self.rng.randint(10, 16)
        return f"Record {i}: " + " ".join(self.rng.choices(self.words, cum_weights=self.weights, k=n)) + "."

    def query(self) -> str:
        return " ".join(self.rng.choice(self.words[100:5000]) for _ in range(self.rng.randint(3, 5)))


async def wait_completed(client: httpx.AsyncClient, dataset_id: str, batch: str) -> dict[str, Any]:
    while True:
        status = (await client.get(f"/v1/datasets/{dataset_id}/documents/{batch}/indexing-status")).json()[
            "data"
        ][0]
        if status["indexing_status"] in ("completed", "error"):
            if status["indexing_status"] == "error":
                raise RuntimeError(status["error"])
            return status
        await asyncio.sleep(0.1)


async def pipeline_vs_raw(
    client: httpx.AsyncClient, label: str, body: dict[str, Any], lines: int
) -> list[Row]:
    corpus = Corpus(label)
    text = "\n".join(corpus.sentence(i) for i in range(lines))
    dataset = (await client.post("/v1/datasets", json={"name": f"bench-{label}", **body})).json()
    started = time.perf_counter()
    created = (
        await client.post(
            f"/v1/datasets/{dataset['id']}/document/create_by_text",
            json={"name": f"{label}.txt", "text": text, "process_rule": {"mode": "automatic"}},
        )
    ).json()
    status = await wait_completed(client, dataset["id"], created["batch"])
    pipeline_seconds = time.perf_counter() - started
    segments = status["total_segments"]

    rule = ProcessRule.from_api("automatic", None)
    chunks = [c.content for c in split_document(clean(text, rule.pre_processing), rule)]
    embedder = make_embedder("local", body.get("embedding_model"), api_base=None, api_key=None)
    await embedder.embed_documents(["warm up"])  # model load is not embedding time
    started = time.perf_counter()
    for i in range(0, len(chunks), EMBED_BATCH):
        await embedder.embed_documents(chunks[i : i + EMBED_BATCH])
    raw_seconds = time.perf_counter() - started
    pipeline_rate, raw_rate = segments / pipeline_seconds, len(chunks) / raw_seconds
    return [
        Row(f"{label}: segments", segments, "", f"{lines} lines, automatic rule"),
        Row(f"{label}: pipeline", round(pipeline_rate, 1), "seg/s", "create_by_text -> completed"),
        Row(f"{label}: raw embedding", round(raw_rate, 1), "seg/s", f"same texts, batches of {EMBED_BATCH}"),
        Row(f"{label}: pipeline / raw", round(pipeline_rate / raw_rate, 3), "", "target >= 0.80"),
    ]


async def at_scale(client: httpx.AsyncClient, database_url: str, total: int, per_document: int) -> list[Row]:
    corpus = Corpus(100_000)
    body = {
        "indexing_technique": "high_quality",
        "embedding_model_provider": "local",
        "embedding_model": "static-64",
    }
    dataset = (await client.post("/v1/datasets", json={"name": "bench-100k", **body})).json()
    started = time.perf_counter()
    batches = []
    for d in range(total // per_document):
        text = "\n".join(corpus.sentence(d * per_document + i) for i in range(per_document))
        created = await client.post(
            f"/v1/datasets/{dataset['id']}/document/create_by_text",
            json={"name": f"part-{d}.txt", "text": text, "process_rule": LINE_RULE},
        )
        created.raise_for_status()
        batches.append(created.json()["batch"])
    segments = 0
    for batch in batches:
        segments += (await wait_completed(client, dataset["id"], batch))["total_segments"]
    index_seconds = time.perf_counter() - started
    with psycopg.connect(urls.libpq(database_url), autocommit=True) as conn:
        conn.execute("ANALYZE segments")  # what autovacuum does after a bulk load; the bench need not wait
    rows = [
        Row("100k: segments indexed", segments, "", f"{total // per_document} documents, static-64"),
        Row("100k: pipeline", round(segments / index_seconds, 1), "seg/s", "incl. HNSW inserts"),
    ]
    queries = [corpus.query() for _ in range(200)]
    api_top10: list[list[str]] = []
    for method in ("semantic_search", "full_text_search", "hybrid_search"):
        latencies = []
        for q in queries:
            t0 = time.perf_counter()
            r = await client.post(
                f"/v1/datasets/{dataset['id']}/retrieve",
                json={"query": q, "retrieval_model": {"search_method": method, "top_k": 10}},
            )
            latencies.append((time.perf_counter() - t0) * 1000)
            r.raise_for_status()
            if method == "semantic_search" and len(api_top10) < 100:
                api_top10.append([rec["segment"]["id"] for rec in r.json()["records"]])
        rows.append(
            Row(
                f"100k: /retrieve {method}",
                round(percentile(latencies, 50), 1),
                "ms p50",
                f"p95 {percentile(latencies, 95):.1f} ms",
            )
        )
    rows += await hnsw_recall(database_url, dataset["id"], queries[:100], api_top10)
    return rows


async def hnsw_recall(
    database_url: str, dataset_id: str, queries: list[str], api_top10: list[list[str]]
) -> list[Row]:
    """Recall@10 against exact search of the same query vectors: of the HNSW index scan itself, and of what
    `/retrieve` answered (the service's own query, with its joins and filters)."""
    embedder = make_embedder("local", "static-64", api_base=None, api_key=None)
    vectors = await embedder.embed_documents(queries)
    sql = (
        "SELECT id FROM segments WHERE embedding_space_id = {space} "
        "ORDER BY embedding::vector({dim}) <=> %s::vector({dim}) LIMIT 10"
    )
    recalls: list[float] = []
    api_recalls: list[float] = []
    # autocommit: each `transaction()` below is a real transaction, so its SET LOCALs end with it
    with psycopg.connect(urls.libpq(database_url), prepare_threshold=None, autocommit=True) as conn:
        space, dim = conn.execute(
            "SELECT id, dimension FROM embedding_spaces WHERE model = %s", (embedder.model,)
        ).fetchone()  # type: ignore[misc]
        query = sql.format(space=int(space), dim=int(dim))
        dataset_query = query.replace("ORDER BY", "AND dataset_id = %s ORDER BY")
        for vector in vectors:
            literal = vector_literal(np.asarray(vector))
            with conn.transaction():
                conn.execute(f"SET LOCAL hnsw.ef_search = {EF_SEARCH}")
                conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
                plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + query, (literal,)))
                assert "hnsw" in plan, plan
                approx = [r[0] for r in conn.execute(query, (literal,))]
            with conn.transaction():
                conn.execute("SET LOCAL enable_indexscan = off")
                conn.execute("SET LOCAL enable_bitmapscan = off")
                exact = [r[0] for r in conn.execute(query, (literal,))]
                # what /retrieve may answer: the rows of its dataset (the space also holds other datasets')
                in_dataset = [r[0] for r in conn.execute(dataset_query, (dataset_id, literal))]
            recalls.append(len(set(approx) & set(exact)) / len(exact))
            answered = api_top10[len(api_recalls)]
            api_recalls.append(len({str(e) for e in in_dataset} & set(answered)) / len(in_dataset))
    return [
        Row(
            "100k: HNSW recall@10 vs exact",
            round(float(np.mean(recalls)), 4),
            "",
            f"index scan, ef_search {EF_SEARCH}",
        ),
        Row(
            "100k: /retrieve recall@10 vs exact", round(float(np.mean(api_recalls)), 4), "", "target >= 0.95"
        ),
    ]


async def measure(procs: Processes) -> list[Row]:
    async with httpx.AsyncClient(base_url=procs.base_url, timeout=600) as client:
        key = (await client.post("/console/api/datasets/api-keys", json={}, headers=ADMIN)).json()["token"]
        client.headers["Authorization"] = f"Bearer {key}"
        lines = int(os.environ.get("BENCH_E5_LINES", "1500"))
        rows = await pipeline_vs_raw(client, "e5 (default)", {"indexing_technique": "high_quality"}, lines)
        rows += await pipeline_vs_raw(
            client,
            "static-64",
            {
                "indexing_technique": "high_quality",
                "embedding_model_provider": "local",
                "embedding_model": "static-64",
            },
            int(os.environ.get("BENCH_STATIC_LINES", "40000")),
        )
        total = int(os.environ.get("BENCH_SEGMENTS", "100000"))
        rows += await at_scale(client, procs.database_url, total, min(10_000, total))
    return rows


def main(argv: list[str]) -> None:
    rows = run_with_processes(measure, Processes)
    report("indexing", rows, {})


if __name__ == "__main__":
    main(sys.argv[1:])
