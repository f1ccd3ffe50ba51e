"""`just bench retrieval`: retrieval quality on the labelled evaluation set (tests/perf/retrieval_eval).

Every document of the set is created through the Service API (`create_by_text`) in three datasets — the
default local model (multilingual-e5-small), the static 64-d model, and economy (keywords only) — indexed by a
real worker. Then every query is sent to `/retrieve` with each search method; rankings are taken at document
level (a hit on any segment counts as its document; repeats count once) and scored with recall@5 and nDCG@10
(graded gains). Also printed: the same metrics per query style and the median `/retrieve` latency.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from typing import Any

import httpx

from tests.perf.harness import Processes, Row, median, report, run_with_processes
from tests.perf.retrieval_eval import load_documents, load_queries, ndcg_at_k, recall_at_k

ADMIN = {"Authorization": "Bearer bench-admin"}

DATASETS: dict[str, dict[str, Any]] = {
    "e5": {"indexing_technique": "high_quality"},  # the configured default model
    "static": {
        "indexing_technique": "high_quality",
        "embedding_model_provider": "local",
        "embedding_model": "static-64",
    },
    "economy": {"indexing_technique": "economy"},
}
WEIGHTED = {
    "reranking_mode": "weighted_score",
    "weights": {"vector_setting": {"vector_weight": 0.7}, "keyword_setting": {"keyword_weight": 0.3}},
}
#: (label, dataset, retrieval_model)
METHODS: list[tuple[str, str, dict[str, Any]]] = [
    ("semantic (e5)", "e5", {"search_method": "semantic_search"}),
    ("full-text", "e5", {"search_method": "full_text_search"}),
    ("hybrid RRF (e5)", "e5", {"search_method": "hybrid_search"}),
    ("hybrid weighted 0.7/0.3 (e5)", "e5", {"search_method": "hybrid_search", **WEIGHTED}),
    ("semantic (static-64)", "static", {"search_method": "semantic_search"}),
    ("hybrid RRF (static-64)", "static", {"search_method": "hybrid_search"}),
    ("keyword (economy)", "economy", {"search_method": "keyword_search"}),
]
DEPTH = 20  # segments asked for; the document ranking is cut at 10 after merging a document's segments


async def create_datasets(client: httpx.AsyncClient) -> tuple[dict[str, str], dict[str, str]]:
    key = (await client.post("/console/api/datasets/api-keys", json={}, headers=ADMIN)).json()["token"]
    client.headers["Authorization"] = f"Bearer {key}"
    ids = {}
    for label, body in DATASETS.items():
        response = await client.post("/v1/datasets", json={"name": f"eval-{label}", **body})
        response.raise_for_status()
        ids[label] = response.json()["id"]
    return ids, {"Authorization": f"Bearer {key}"}


async def index_documents(
    client: httpx.AsyncClient, dataset_id: str, documents: list[dict[str, Any]]
) -> float:
    started = time.perf_counter()
    gate = asyncio.Semaphore(8)

    async def create(doc: dict[str, Any]) -> None:
        async with gate:
            response = await client.post(
                f"/v1/datasets/{dataset_id}/document/create_by_text",
                json={
                    "name": doc["id"],
                    "text": f"{doc['title']}\n{doc['text']}",
                    "process_rule": {"mode": "automatic"},
                },
            )
            response.raise_for_status()

    await asyncio.gather(*(create(d) for d in documents))
    while True:
        statuses: list[str] = []
        page = 1
        while True:
            body = (
                await client.get(f"/v1/datasets/{dataset_id}/documents", params={"page": page, "limit": 100})
            ).json()
            statuses += [d["indexing_status"] for d in body["data"]]
            if not body["has_more"]:
                break
            page += 1
        if "error" in statuses:
            raise RuntimeError(f"indexing failed in {dataset_id}")
        if statuses.count("completed") == len(documents):
            return time.perf_counter() - started
        await asyncio.sleep(0.5)


async def evaluate(
    client: httpx.AsyncClient, dataset_id: str, model: dict[str, Any], queries: list[dict[str, Any]]
) -> tuple[dict[str, list[float]], list[float]]:
    scores: dict[str, list[float]] = {"recall": [], "ndcg": []}
    per_style: dict[str, list[float]] = {}
    latencies = []
    for q in queries:
        started = time.perf_counter()
        response = await client.post(
            f"/v1/datasets/{dataset_id}/retrieve",
            json={"query": q["query"], "retrieval_model": {**model, "top_k": DEPTH}},
        )
        latencies.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
        ranked = list(dict.fromkeys(r["segment"]["document"]["name"] for r in response.json()["records"]))
        recall, ndcg = recall_at_k(ranked, q["relevant"], 5), ndcg_at_k(ranked, q["relevant"], 10)
        scores["recall"].append(recall)
        scores["ndcg"].append(ndcg)
        per_style.setdefault(f"recall {q['style']}", []).append(recall)
        per_style.setdefault(f"ndcg {q['style']}", []).append(ndcg)
    return {**scores, **per_style}, latencies


async def measure(procs: Processes) -> list[Row]:
    documents, queries = load_documents(), load_queries()
    rows: list[Row] = [Row("documents / queries", f"{len(documents)} / {len(queries)}")]
    async with httpx.AsyncClient(base_url=procs.base_url, timeout=120) as client:
        ids, _ = await create_datasets(client)
        for label, dataset_id in ids.items():
            seconds = await index_documents(client, dataset_id, documents)
            rows.append(Row(f"index {len(documents)} docs ({label})", round(seconds, 1), "s"))
        for label, dataset, model in METHODS:
            metrics, latencies = await evaluate(client, ids[dataset], model, queries)
            rows.append(Row(f"recall@5 {label}", round(statistics.mean(metrics["recall"]), 3)))
            rows.append(Row(f"nDCG@10 {label}", round(statistics.mean(metrics["ndcg"]), 3)))
            styles = sorted(k for k in metrics if k.startswith("ndcg "))
            note = ", ".join(f"{k[5:]} {statistics.mean(metrics[k]):.3f}" for k in styles)
            rows.append(Row(f"  nDCG@10 by style {label}", "", "", note))
            rows.append(Row(f"  /retrieve p50 {label}", round(median(latencies), 1), "ms"))
    return rows


def main(argv: list[str]) -> None:
    rows = run_with_processes(measure, Processes)
    report("retrieval", rows, {})


if __name__ == "__main__":
    main(sys.argv[1:])
