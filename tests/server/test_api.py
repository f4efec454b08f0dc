"""The registry HTTP API: authentication, roles, owner scoping and the main flows."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from fastapi import APIRouter
from fastapi.testclient import TestClient

from flexheg.device.license import verify_license
from flexheg.registry import CustodyHandover, CustodyStage, DestructionRecord
from flexheg.registry._models import Principal
from flexheg.server import ServerConfig, TranslogOptions, create_app
from flexheg.wire import Envelope, SigningKey, encode, sha256_digest

from .conftest import AGREEMENT, NOW, Server


def _entity(entity_id: str, kind: str = "data-center", owner: str = "acme", **extra: Any) -> dict[str, Any]:
    return {"id": entity_id, "kind": kind, "owner": owner, "latitude": 52.37, "longitude": 4.90,
            "region": "NL", **extra}


def _device(server: Server, entity_id: str, owner: str = "acme") -> dict[str, Any]:
    body = _entity(entity_id, "device", owner, site_id="dc-1",
                   identity_key=SigningKey.generate().public.to_dict())
    response = server.client.post("/v1/entities", json=body, headers=server.headers("ib"))
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


@pytest.fixture
def world(server: Server) -> Server:
    response = server.client.post("/v1/entities", json=_entity("dc-1"), headers=server.headers("ib"))
    assert response.status_code == 201
    _device(server, "gpu-1")
    _device(server, "gpu-2", owner="globex")
    return server


def test_health_needs_no_token(server: Server) -> None:
    assert server.client.get("/v1/health").json() == {"status": "ok"}


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic abc"])
def test_requests_need_valid_token(server: Server, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    response = server.client.get("/v1/entities", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_revoked_token_rejected(server: Server) -> None:
    server.registry.revoke_token("insp-1", actor="test")
    assert server.client.get("/v1/entities", headers=server.headers("inspector")).status_code == 401


def test_tokens_stored_as_digests(server: Server) -> None:
    with server.registry.db.read() as session:
        stored = {p.token_digest for p in session.query(Principal)}
    assert not set(server.tokens.values()) & stored
    assert all(digest.startswith("sha256:") for digest in stored)


@pytest.mark.parametrize("who", ["inspector", "acme", "NL"])
def test_writes_need_role(world: Server, who: str) -> None:
    response = world.client.post("/v1/entities", json=_entity("dc-9"), headers=world.headers(who))
    assert response.status_code == 403
    assert "international-body" in response.json()["detail"]
    patch = world.client.patch("/v1/entities/dc-1", json={"owner": "x", "reason": "r"},
                               headers=world.headers(who))
    assert patch.status_code == 403


def test_owner_sees_only_own(world: Server) -> None:
    listed = world.client.get("/v1/entities", headers=world.headers("acme")).json()
    assert sorted(e["id"] for e in listed) == ["dc-1", "gpu-1"]
    assert world.client.get("/v1/entities/gpu-2", headers=world.headers("acme")).status_code == 404
    assert world.client.get("/v1/entities/gpu-2/history", headers=world.headers("acme")).status_code == 404
    assert world.client.get("/v1/entities/gpu-2", headers=world.headers("globex")).status_code == 200
    assert len(world.client.get("/v1/entities", headers=world.headers("ib")).json()) == 3
    missing = world.client.get("/v1/reports/missing", headers=world.headers("acme"))
    assert missing.status_code == 403


def test_update_and_history(world: Server) -> None:
    response = world.client.patch("/v1/entities/dc-1", json={"risk_weight": 4, "reason": "audit"},
                                  headers=world.headers("ib"))
    assert response.status_code == 200
    assert response.json()["risk_weight"] == 4
    history = world.client.get("/v1/entities/dc-1/history", headers=world.headers("acme")).json()
    assert history[-1]["old"] == {"risk_weight": 1}
    assert history[-1]["actor"] == "ib"


def test_error_codes(world: Server) -> None:
    duplicate = world.client.post("/v1/entities", json=_entity("dc-1"), headers=world.headers("ib"))
    assert duplicate.status_code == 409
    unknown = world.client.get("/v1/entities/nope", headers=world.headers("ib"))
    assert unknown.status_code == 404
    bad = world.client.post("/v1/entities", json=_entity("dc-2", latitude=100),
                            headers=world.headers("ib"))
    assert bad.status_code == 422
    device_without_key = world.client.post("/v1/entities", json=_entity("gpu-9", "device"),
                                           headers=world.headers("ib"))
    assert device_without_key.status_code == 400
    assert "identity key" in device_without_key.json()["detail"]


def test_license_renewal_flow(world: Server) -> None:
    ib, nl = world.headers("ib"), world.headers("NL")
    assert world.client.post("/v1/devices/gpu-1/attestations", json={"tick": NOW},
                             headers=ib).status_code == 200
    granted = world.client.post("/v1/devices/gpu-1/license-renewals", headers=nl)
    assert granted.status_code == 201
    decision = granted.json()
    assert decision["granted"] is True
    license_ = verify_license(Envelope.from_dict(decision["license"], what="license"),
                              device_id="gpu-1", agreement_digest=AGREEMENT,
                              licensing_states={"NL": [world.state_key.public]}, now=NOW)
    assert license_.licensing_state == "NL"

    away = world.client.post("/v1/devices/gpu-1/locations", json={"latitude": 1.35, "longitude": 103.8,
                                                                   "source": "inspector"},
                             headers=world.headers("inspector"))
    assert away.json()["contradicts_registration"] is True
    refused = world.client.post("/v1/devices/gpu-1/license-renewals", headers=nl).json()
    assert refused["granted"] is False
    assert refused["reasons"] == ["away-from-registered-location"]
    decisions = world.client.get("/v1/devices/gpu-1/license-decisions", headers=world.headers("acme"))
    assert [d["granted"] for d in decisions.json()] == [True, False]
    unknown_state = world.client.post("/v1/devices/gpu-1/license-renewals?state=FR", headers=ib)
    assert unknown_state.status_code == 400
    missing = world.client.get("/v1/reports/missing", headers=ib).json()
    assert {row["device_id"] for row in missing} == {"gpu-1"}


def test_census_upload(world: Server) -> None:
    key = SigningKey.generate().public.key.keyval["public"]
    body = ("kind,id,owner,latitude,longitude,region,identity_key,site_id\n"
            f"device,gpu-10,acme,52.3,4.9,NL,{key},dc-1\nchip,c-1,acme,1,2,SG,,\n")
    response = world.client.post("/v1/census", content=body, headers={
        **world.headers("ib"), "Content-Type": "text/csv"})
    assert response.status_code == 201, response.text
    assert response.json()["rows"] == 2
    bad_csv = "kind,id,owner,latitude,longitude,region\nchip,c-2,a,1,x,SG\n"
    bad = world.client.post("/v1/census", content=bad_csv, headers=world.headers("ib"))
    assert bad.status_code == 400
    assert "line 2" in bad.json()["detail"]


def test_inspection_flow(world: Server) -> None:
    drawn = world.client.post("/v1/inspection-rounds", json={"seed": "cp-1", "sample_size": 3},
                              headers=world.headers("ib"))
    assert drawn.status_code == 201
    round_ = drawn.json()
    assert len(round_["inspections"]) == 3
    entries, previous = [], "sha256:" + 64 * "0"
    for seq, (event, tick) in enumerate([("power-on", NOW - 9000), ("power-off", NOW - 8000),
                                         ("power-on", NOW - 100)]):
        entry = {"seq": seq, "event": event, "tick": tick, "prev": previous}
        entries.append(entry)
        previous = sha256_digest(encode(entry))
    recorded = world.client.post("/v1/inspections", headers=world.headers("inspector"), json={
        "entity_id": "gpu-1", "round_id": round_["id"], "seen": True, "seals_intact": True,
        "power_log": entries, "power_log_head": previous, "power_log_count": 3})
    assert recorded.status_code == 201, recorded.text
    assert recorded.json()["problems"] == [f"unexplained-power-off: {NOW - 8000}..{NOW - 100}"]
    periods = world.client.get("/v1/devices/gpu-1/power-off-periods", headers=world.headers("acme"))
    assert periods.json()[0]["off_tick"] == NOW - 8000
    wrong_owner = world.client.post("/v1/devices/gpu-1/power-off-explanations",
                                    json={"off_tick": NOW - 8000, "explanation": "x"},
                                    headers=world.headers("globex"))
    assert wrong_owner.status_code == 404
    explained = world.client.post("/v1/devices/gpu-1/power-off-explanations",
                                  json={"off_tick": NOW - 8000, "explanation": "maintenance"},
                                  headers=world.headers("acme"))
    assert explained.status_code == 201
    as_inspector = world.client.post("/v1/devices/gpu-1/power-off-explanations",
                                     json={"off_tick": NOW - 8000, "explanation": "x"},
                                     headers=world.headers("inspector"))
    assert as_inspector.status_code == 403
    fetched = world.client.get(f"/v1/inspection-rounds/{round_['id']}", headers=world.headers("NL"))
    assert fetched.json()["selection_digest"] == round_["selection_digest"]


def test_custody_and_destruction(world: Server) -> None:
    keys = {name: SigningKey.generate() for name in ("fab-1", "lab-1", "shredder")}
    for name, role in (("fab-1", "fab"), ("lab-1", "testing-facility"),
                       ("shredder", "destruction-facility")):
        response = world.client.post("/v1/parties", headers=world.headers("ib"), json={
            "name": name, "role": role, "public_key": keys[name].public.to_dict()})
        assert response.status_code == 201
    statement = CustodyHandover(device_ids=("gpu-1",), package_seal="s-1", sender="fab-1",
                                receiver="lab-1", from_stage=CustodyStage.FAB,
                                to_stage=CustodyStage.TESTING, seal_intact=True, tick=NOW)
    good = Envelope.sign(statement, keys["fab-1"], keys["lab-1"]).to_dict()
    response = world.client.post("/v1/custody/handovers", json=good, headers=world.headers("ib"))
    assert response.json()["problems"] == {"gpu-1": []}
    forged = Envelope.sign(statement, keys["fab-1"]).to_dict()
    flagged = world.client.post("/v1/custody/handovers", json=forged, headers=world.headers("ib"))
    assert flagged.json()["problems"]["gpu-1"]
    chain = world.client.get("/v1/devices/gpu-1/custody", headers=world.headers("acme")).json()
    assert len(chain) == 2
    assert world.client.get("/v1/devices/gpu-2/custody", headers=world.headers("acme")).status_code == 404


def test_destruction_rejection_is_422(world: Server) -> None:
    record = DestructionRecord(device_id="gpu-1", identity_keyid="k", facility="nobody",
                               method="m", reason="r", tick=NOW)
    response = world.client.post("/v1/custody/destructions",
                                 json=Envelope.sign(record, SigningKey.generate()).to_dict(),
                                 headers=world.headers("ib"))
    assert response.status_code == 422
    assert response.json()["detail"]["reason"] == "unknown-signer"


def test_oversight_endpoints(world: Server) -> None:
    ids = [f"d-{i}" for i in range(200)]
    ib = world.headers("ib")
    drawn = world.client.post("/v1/oversight/extensive-testing", headers=ib, json={
        "seed": "s", "device_ids": ids, "rate": {"numerator": 1, "denominator": 10}}).json()
    assert drawn["kind"] == "extensive-testing"
    assert 5 <= len(drawn["result"]) <= 40
    assigned = world.client.post("/v1/oversight/testing-assignments", headers=ib, json={
        "seed": "s", "lines": {"l1": ids[:10]}, "facilities": ["lab-1", "lab-2"]}).json()
    assert sorted(set(assigned["result"].values())) == ["lab-1", "lab-2"]
    allocated = world.client.post("/v1/oversight/customer-allocations", headers=ib, json={
        "seed": "s", "device_ids": ids, "orders": {"c1": 5}}).json()
    assert len(allocated["result"]["c1"]) == 5
    samples = world.client.post("/v1/oversight/research-samples", headers=ib, json={
        "seed": "s", "device_ids": ids, "researchers": ["u1"], "per_researcher": 2}).json()
    assert len(samples["result"]["u1"]) == 2
    detection = world.client.get("/v1/oversight/detection?compromised=1000",
                                 headers=world.headers("acme")).json()
    assert detection["p_at_least_one_sampled"] == pytest.approx(0.632, abs=1e-3)
    too_high = world.client.get("/v1/oversight/detection?compromised=1&rate_numerator=3&rate_denominator=2",
                                headers=ib)
    assert too_high.status_code == 400


def test_issue_token_over_api(server: Server) -> None:
    response = server.client.post("/v1/principals", json={"name": "insp-2", "role": "inspector"},
                                  headers=server.headers("ib"))
    assert response.status_code == 201
    token = response.json()["token"]
    listed = server.client.get("/v1/entities", headers={"Authorization": f"Bearer {token}"})
    assert listed.status_code == 200


def test_mounted_router_and_error_logging(tmp_path: Any, caplog: pytest.LogCaptureFixture) -> None:
    extra = APIRouter()

    @extra.get("/ping")
    def ping() -> dict[str, str]:
        return {"pong": "yes"}

    @extra.get("/boom")
    def boom() -> dict[str, str]:
        raise RuntimeError("exploded")

    app = create_app(ServerConfig(database_url=f"sqlite:///{tmp_path / 'r.db'}"),
                     routers=[("/v1/extra", extra)])
    with caplog.at_level(logging.INFO, logger="flexheg"), \
            TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/v1/extra/ping").json() == {"pong": "yes"}
        assert client.get("/v1/extra/boom").status_code == 500
    messages = [record.getMessage() for record in caplog.records]
    assert any("server started" in m for m in messages)
    assert any("server stopped" in m for m in messages)
    assert any("GET /v1/extra/boom failed with an internal error" in m for m in messages)


def test_translog_mounted_when_configured(tmp_path: Any) -> None:
    key_path = tmp_path / "log-key.pem"
    key_path.write_bytes(Ed25519PrivateKey.generate().private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    config = ServerConfig(database_url=f"sqlite:///{tmp_path / 'r.db'}",
                          translog=TranslogOptions(tmp_path / "log.sqlite", key_path, "example.org/log"))
    app = create_app(config)
    with TestClient(app) as client:
        registry = app.state.registry
        token = registry.issue_token("ib", role="international-body", actor="t", now=NOW)
        owner = registry.issue_token("o", role="owner", actor="t", now=NOW)
        assert client.post("/v1/log/entries", json={"entries": ["aGVsbG8="]}).status_code == 401
        assert client.post("/v1/log/entries", json={"entries": ["aGVsbG8="]},
                           headers={"Authorization": f"Bearer {owner}"}).status_code == 403
        appended = client.post("/v1/log/entries", json={"entries": ["aGVsbG8="]},
                               headers={"Authorization": f"Bearer {token}"})
        assert appended.status_code == 200, appended.text
        assert client.get("/v1/log/entries/0").json()["entry"] == "aGVsbG8="
