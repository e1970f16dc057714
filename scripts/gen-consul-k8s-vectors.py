#!/usr/bin/env python3
"""Writes the Consul and Kubernetes scenario vectors (tests/scenarios/13x-*.json)
from the payload fixtures in tests/fixtures/consul and tests/fixtures/k8s.

Every expectation here is written by hand from the mapping tables of SPEC
§10.4 and the adapters' documentation (core/src/source/consul.rs, k8s.rs);
the files it writes are the contract, this script only a convenience.

    python3 scripts/gen-consul-k8s-vectors.py
"""

import importlib.util
import json
import os

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIXTURES = os.path.join(ROOT, "tests", "fixtures")

_spec = importlib.util.spec_from_file_location("gen_source_vectors", os.path.join(ROOT, "scripts", "gen-source-vectors.py"))
_gen = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_gen)
step, scenario, report = _gen.step, _gen.scenario, _gen.report


def fixture(*path):
    with open(os.path.join(FIXTURES, *path)) as f:
        if path[-1].endswith(".jsonl"):
            return [json.loads(line) for line in f if line.strip()]
        return json.load(f)


CONSUL = {"kind": "consul", "service": "web"}
K8S = {"kind": "k8s", "namespace": "shop", "service": "api", "port": "http"}
HEALTH = "/v1/health/service/web"
LIST = "/apis/discovery.k8s.io/v1/namespaces/shop/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3Dapi"


def consul_req(index=None):
    path = HEALTH if index is None else f"{HEALTH}?index={index}&wait=5m"
    return {"request": {"method": "GET", "path": path, "body": "", "stream": False}}


def k8s_req(rv=None):
    if rv is None:
        return {"request": {"method": "GET", "path": LIST, "body": "", "stream": False}}
    return {"request": {"method": "GET", "path": f"{LIST}&watch=1&resourceVersion={rv}&allowWatchBookmarks=true",
                        "body": "", "stream": True}}


def bad(at, message):
    return {"at": at, "code": "invalid_argument", "message": message}


def get(id, health, **extra):
    return step("get", id=id, expect={"health": health, **extra})


def entry(node, node_addr, sid, port, checks, address="", weights=None):
    service = {"ID": sid, "Service": "web", "Tags": [], "Address": address, "Meta": None, "Port": port}
    if weights is not None:
        service["Weights"] = weights
    return {"Node": {"ID": f"id-{node}", "Node": node, "Address": node_addr, "Datacenter": "dc1"},
            "Service": service,
            "Checks": [{"Node": node, "CheckID": c, "Name": c, "Status": s, "ServiceID": sid_ if sid_ is not None else sid,
                        "Notes": "", "Output": ""} for c, s, sid_ in checks]}


def consul():
    fleet = fixture("consul", "health-service-fleet.json")
    scenario(130, "consul-health-field-mapping",
             "a Consul health answer maps status from service and node checks (maintenance > critical > warning > passing), then the mirror blocks on its index",
             [
                 step("source_add", at=0, name="consul", options=CONSUL),
                 step("source_request", name="consul", expect=consul_req()),
                 step("consul_health", payload=fleet, index="12", expect={"report": report(added=7)}),
                 step("discover", service="web", all=True, expect={
                     "ids": ["web-1", "web-2", "web-3", "web-4", "web-5", "web-6", "web-7"],
                     "health": ["healthy", "degraded", "unhealthy", "unhealthy", "draining", "draining", "unhealthy"]}),
                 # A node check (serfHealth critical on node-c) applies to both of its services.
                 get("web-4", "unhealthy", source="consul", held=False),
                 # _service_maintenance:<id> and _node_maintenance are maintenance.
                 get("web-5", "draining", source="consul"),
                 get("web-6", "draining", source="consul"),
                 step("source_request", name="consul", expect=consul_req(12)),
                 # The same answer again changes nothing: no event, every entry unchanged.
                 step("events"),
                 step("consul_health", at=5, payload=fleet, index="13", expect={"report": report(unchanged=7)}),
                 step("events", expect={"events": []}),
                 step("pick", service="web", strategy="round_robin", zone="eu-west-1a", expect={"id": "web-1"}),
             ])

    weighted = [
        entry("n1", "10.0.0.1", "w-a", 80, [("serfHealth", "passing", "")], weights={"Passing": 3, "Warning": 1}),
        entry("n2", "10.0.0.2", "w-b", 80, [("serfHealth", "passing", "")]),
        entry("n3", "10.0.0.3", "w-c", 80, [("service:w-c", "warning", None)], address="192.0.2.3",
              weights={"Passing": 9, "Warning": 1}),
    ]
    scenario(131, "consul-weights-and-defaults",
             "Consul weights: Passing for a passing entry, absent Weights count 1, Warning for a warning one; no checks is passing",
             [
                 step("source_add", at=0, name="consul", options=CONSUL),
                 step("consul_health", payload=weighted, index="4", expect={"report": report(added=3)}),
                 step("discover", service="web", all=True, expect={"ids": ["w-a", "w-b", "w-c"],
                                                                   "health": ["healthy", "healthy", "degraded"]}),
                 step("picks", service="web", strategy="weighted_round_robin", count=8,
                      expect={"counts": {"w-a": 6, "w-b": 2}}),
                 # The warning check passes: w-c is healthy at its Passing weight 9.
                 step("consul_health", at=10, index="5",
                      payload=weighted[:2] + [entry("n3", "10.0.0.3", "w-c", 80, [("service:w-c", "passing", None)],
                                                    address="192.0.2.3", weights={"Passing": 9, "Warning": 1})],
                      expect={"report": report(updated=1, unchanged=2)}),
                 step("picks", service="web", strategy="weighted_round_robin", count=13,
                      expect={"counts": {"w-a": 3, "w-b": 1, "w-c": 9}}),
             ])

    scenario(132, "consul-index-rules",
             "X-Consul-Index: kept when it moves on, reset to 0 (no blocking) when it goes backwards, 0 becomes 1; a non-200 answer or a bad index changes nothing",
             [
                 step("source_add", at=0, name="consul", options=CONSUL),
                 step("consul_health", payload=fleet, index="12"),
                 step("consul_health", at=1, payload=fleet, index="15", expect={"report": report(unchanged=7)}),
                 step("source_request", name="consul", expect=consul_req(15)),
                 step("consul_health", at=2, payload=fleet, index="9", expect={"report": report(unchanged=7)}),
                 step("source_request", name="consul", expect=consul_req()),
                 step("consul_health", at=3, payload=fleet, index="0", expect={"report": report(unchanged=7)}),
                 step("source_request", name="consul", expect=consul_req(1)),
                 step("consul_health", at=4, payload=fleet, index="7"),
                 step("source_request", name="consul", expect=consul_req(7)),
                 step("consul_health", at=5, payload=[], status=500, index="99", expect={"error": "invalid_argument"}),
                 step("consul_health", at=5, payload=fleet, index="abc", expect={"error": "invalid_argument"}),
                 step("consul_health", at=5, payload={"not": "an array"}, index="8", expect={"error": "invalid_argument"}),
                 step("source_request", name="consul", expect=consul_req(7)),
                 # No header: the index stays.
                 step("consul_health", at=6, payload=fleet, expect={"report": report(unchanged=7)}),
                 step("source_request", name="consul", expect=consul_req(7)),
                 step("discover", service="web", all=True,
                      expect={"ids": ["web-1", "web-2", "web-3", "web-4", "web-5", "web-6", "web-7"]}),
             ])

    scenario(133, "consul-ids-rejects-and-empty",
             "Consul: a service registered without an ID on two nodes gets <Node>/<ID>; bad entries are rejected one by one; an empty answer is held unless trusted",
             [
                 step("source_add", at=0, name="c", options={"kind": "consul", "service": "api"}),
                 step("consul_health", name="c", payload=fixture("consul", "health-service-default-ids.json"), index="3",
                      expect={"report": report(added=3)}),
                 step("discover", service="api", all=True, expect={"ids": ["api-admin", "node-a/api", "node-b/api"]}),
                 step("consul_health", at=5, name="c", payload=[], index="4",
                      expect={"report": report(held=3)}),
                 step("get", id="node-a/api", expect={"held": True, "source": "c"}),
                 step("source_add", name="db", options={"kind": "consul", "service": "db"}),
                 step("consul_health", at=6, name="db", payload=fixture("consul", "health-service-malformed.json"),
                      index="3", expect={"report": report(added=1, rejected=[
                          bad("[1]", "Service.Port must be an integer in 1..=65535, got a string"),
                          bad("[2]", "Checks[0].Status must be passing, warning or critical, got `unknown`"),
                          bad("[3]", "Service must be an object, got nothing"),
                          bad("[4]", "entry must be an object, got a string"),
                          bad("[5]", "Service.Tags[1] must be a string, got 7")])}),
                 step("discover", service="db", all=True, expect={"ids": ["db-1"]}),
             ])

    scenario(134, "consul-snapshot-continuation",
             "a Consul mirror's index survives a snapshot: the restored registry blocks where it stopped",
             [
                 step("source_add", at=0, name="consul", options=CONSUL),
                 step("consul_health", payload=fleet, index="42"),
                 step("snapshot_restore"),
                 step("source_request", name="consul", expect=consul_req(42)),
                 get("web-5", "draining", source="consul"),
                 step("consul_health", at=10, payload=fleet[:1], index="43",
                      expect={"report": report(removed=6, unchanged=1)}),
             ], config={"self_preservation_threshold": 0.0})


def k8s():
    listing = fixture("k8s", "endpointslice-list.json")
    events = fixture("k8s", "watch-events.jsonl")
    scenario(135, "k8s-slices-field-mapping",
             "EndpointSlices: slices merged and de-duplicated by pod (ready wins), nil conditions ready, serving+terminating draining, the named port; then a watch with bookmarks",
             [
                 step("source_add", at=0, name="k8s", options=K8S),
                 step("source_request", name="k8s", expect=k8s_req()),
                 step("k8s_slices", payload=listing, expect={"report": report(added=5)}),
                 step("discover", service="api", all=True, expect={
                     "ids": ["10.1.3.7", "api-7d9f-w1", "api-7d9f-x2", "api-7d9f-y7", "api-7d9f-z4"],
                     "health": ["healthy", "unhealthy", "healthy", "healthy", "unhealthy"]}),
                 get("api-7d9f-y7", "healthy", source="k8s", held=False),
                 step("source_request", name="k8s", expect=k8s_req(10245)),
                 step("pick", service="api", strategy="round_robin", zone="us-west2-b", expect={"id": "api-7d9f-y7"}),
             ])

    scenario(136, "k8s-watch-events-and-bookmark",
             "a Kubernetes watch: ADDED, MODIFIED and DELETED rebuild the service from every slice; a BOOKMARK only moves the resource version; several lines feed as one message",
             [
                 step("source_add", at=0, name="k8s", options=K8S),
                 step("k8s_slices", payload=listing),
                 step("k8s_watch", at=1, payload=events[0], expect={"report": report(added=1, unchanged=5)}),
                 step("source_request", name="k8s", expect=k8s_req(10596)),
                 step("k8s_watch", at=2, payload=events[1], expect={"report": report(updated=1, removed=1, unchanged=4)}),
                 step("k8s_watch", at=3, payload=events[2], expect={"report": report(removed=3, unchanged=2)}),
                 step("discover", service="api", all=True, expect={"ids": ["api-7d9f-q3", "api-7d9f-x2"],
                                                                   "health": ["healthy", "draining"]}),
                 step("k8s_watch", at=4, payload=events[3], expect={"report": report()}),
                 step("source_request", name="k8s", expect=k8s_req(12746)),
                 # The same events again as one message of three lines: nothing new, the version moves.
                 step("k8s_watch", at=5, payload=events[:3], expect={"report": report(unchanged=2)}),
                 step("source_request", name="k8s", expect=k8s_req(11100)),
                 step("k8s_watch", at=6, payload={"type": "SOMETHING", "object": {}}, expect={"error": "invalid_argument"}),
                 step("k8s_watch", at=6, payload="not json", expect={"error": "invalid_argument"}),
                 step("source_request", name="k8s", expect=k8s_req(11100)),
             ], config={"self_preservation_threshold": 0.0})

    scenario(137, "k8s-410-relists",
             "Kubernetes 410: an ERROR event in the stream, or an HTTP 410 answer, resets the mirror and the next request lists again; the relist reconciles",
             [
                 step("source_add", at=0, name="k8s", options=K8S),
                 step("k8s_slices", payload=listing),
                 step("k8s_watch", at=1, payload=events[0]),
                 step("k8s_watch", at=2, payload=fixture("k8s", "watch-error-410.json"),
                      expect={"report": report(resync=True, rejected=[
                          bad("status", "Kubernetes Status 410 Expired: too old resource version: 10245 (12000)")])}),
                 step("source_request", name="k8s", expect=k8s_req()),
                 # Instances stay while the mirror lists again.
                 step("discover", service="api", all=True, expect={
                     "ids": ["10.1.3.7", "api-7d9f-q3", "api-7d9f-w1", "api-7d9f-x2", "api-7d9f-y7", "api-7d9f-z4"]}),
                 step("k8s_slices", at=3, payload=listing, expect={"report": report(removed=1, unchanged=5)}),
                 step("source_request", name="k8s", expect=k8s_req(10245)),
                 step("k8s_watch", at=4, status=410, payload=fixture("k8s", "status-410.json"),
                      expect={"report": report(resync=True)}),
                 step("source_request", name="k8s", expect=k8s_req()),
                 step("k8s_watch", at=4, status=500, payload="oops", expect={"error": "invalid_argument"}),
                 step("k8s_slices", at=5, payload=listing, expect={"report": report(unchanged=5)}),
             ], config={"self_preservation_threshold": 0.0})

    malformed = fixture("k8s", "endpointslice-list-malformed.json")
    scenario(138, "k8s-malformed-and-snapshot",
             "Kubernetes: unusable slices and endpoints are rejected one by one; the mirror's slices and resource version survive a snapshot",
             [
                 step("source_add", at=0, name="k8s", options=K8S),
                 step("k8s_slices", payload=malformed, expect={"report": report(added=1, rejected=[
                     bad("api-good/endpoints[1]", "addresses[0] must be a non-empty string, got nothing"),
                     bad("api-good/endpoints[2]", "conditions.ready must be a boolean, got a string"),
                     bad("items[1]", "metadata.name is missing"),
                     bad("api-noport", "ports has no port named `http`"),
                     bad("other-xyz", "metadata.labels.kubernetes.io/service-name is `other`, not `api`")])}),
                 step("k8s_slices", payload={"kind": "EndpointSliceList", "items": []}, expect={"error": "invalid_argument"}),
                 step("source_add", name="k8s2", options=K8S),
                 step("k8s_slices", name="k8s2", payload=listing),
                 step("k8s_watch", name="k8s2", at=1, payload=events[0]),
                 step("snapshot_restore"),
                 step("source_request", name="k8s2", expect=k8s_req(10596)),
                 # The restored mirror still knows every slice: deleting one removes its endpoints, and
                 # api-7d9f-y7 falls back to its copy in the other slice (terminating: draining).
                 step("k8s_watch", name="k8s2", at=2, payload=events[2], expect={"report": report(removed=2, updated=1, unchanged=3)}),
             ], config={"self_preservation_threshold": 0.0})


if __name__ == "__main__":
    consul()
    k8s()
