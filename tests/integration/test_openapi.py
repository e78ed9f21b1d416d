"""The OpenAPI document describes exactly the API routes the broker serves."""

from __future__ import annotations

import re

from tests.conftest import Broker


async def test_openapi_matches_the_router(broker: Broker) -> None:
    spec = await broker.call("GET", "/api/openapi.json", status=200)
    assert spec["openapi"].startswith("3.")
    documented = {(method.upper(), path) for path, ops in spec["paths"].items() for method in ops}
    served = set()
    for resource in broker.client.app.router.resources():
        info = resource.get_info()
        path = info.get("path") or info.get("formatter")
        if not path or not path.startswith(("/api/v1/", "/download/")):
            continue
        for route in resource:
            if route.method != "HEAD":
                served.add((route.method, path))
    assert documented == served
    for path, ops in spec["paths"].items():
        for op in ops.values():
            names = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert names == set(re.findall(r"{(\w+)}", path))
    join = spec["paths"]["/api/v1/join"]["post"]
    assert join["security"] == [] and "410" in join["responses"] and "429" in join["responses"]
    assert spec["components"]["schemas"]["JoinIn"]["additionalProperties"] is False


async def test_health_and_metrics(broker: Broker) -> None:
    health = await broker.call("GET", "/healthz", status=200)
    assert health["status"] == "ok"
    metrics = await (await broker.client.get("/metrics")).text()
    assert "rsb_join_failures_total" in metrics or "rsb_join_failures" in metrics
