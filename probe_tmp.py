import asyncio, time, httpx, subprocess, sys
from tests.perf.harness import Processes, bench_database
from tests.perf.bench_workflows import TEMPLATE_APP, _timed

async def main(procs):
    async with httpx.AsyncClient(base_url=procs.base_url, timeout=60, limits=httpx.Limits(max_connections=64)) as http:
        admin = {"Authorization": "Bearer bench-admin"}
        imported = (await http.post("/console/api/apps/imports", json={"yaml_content": TEMPLATE_APP}, headers=admin)).json()
        key = (await http.post(f"/console/api/apps/{imported['app_id']}/api-keys", headers=admin)).json()["token"]
        h = {"Authorization": f"Bearer {key}"}
        async def run():
            r = await http.post("/v1/workflows/run", json={"inputs": {"name": "b"}, "response_mode": "blocking", "user": "x"}, headers=h)
            assert r.json()["data"]["status"] == "succeeded"
        await _timed(20, 4, run)
        w = subprocess.Popen([".venv/bin/py-spy", "record", "-o", "/tmp/worker.txt", "-f", "raw", "-d", "12", "-p", str(procs.procs["worker"].pid)])
        a = subprocess.Popen([".venv/bin/py-spy", "record", "-o", "/tmp/api.txt", "-f", "raw", "-d", "12", "-p", str(procs.procs["api"].pid)])
        await asyncio.sleep(1)
        rate, lat = await _timed(300, 16, run)
        print("rate", rate)
        w.wait(); a.wait()

with bench_database() as url:
    procs = Processes(url)
    try:
        procs.start_api(); procs.start_worker("worker"); time.sleep(2)
        asyncio.run(main(procs))
    finally:
        procs.close()
