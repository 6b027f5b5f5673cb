"""The fault API of a served lab, through LabClient and raw HTTP: the meter's verdicts follow the
faults put in force, bad input gets the right status and a JSON message, and the lab keeps serving."""

from __future__ import annotations

import http.client
import json
from pathlib import Path

import pytest

from proxy_lab.client import LabApiError, LabClient
from proxy_lab.serve.served import ServeConfig
from proxy_lab.serve.thread import ServedLabThread

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):
    certs = tmp_path_factory.mktemp("serve-certs")
    with ServedLabThread(ServeConfig(interval_s=1.0, certs_dir=certs)) as served:
        yield served


@pytest.fixture
def api(lab) -> LabClient:
    yield lab.client
    lab.client.clear_faults(cut=True)


def raw(lab, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None):
    """One request as a browser or a script would send it: (status, decoded JSON)."""
    host, port = lab.served.ui_address
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    return resp.status, json.loads(data) if data else None


def test_every_service_of_the_model_is_listed_and_passes_with_no_fault(api):
    status = api.status()
    names = [s["name"] for s in status["services"]]
    assert names[:2] == ["distributor", "funds"] and "parcel_shipping" not in names  # SendPro C's services
    api.wait_for("funds", "pass", timeout_s=60)
    outcomes = {s["name"]: s["outcome"] for s in api.probe()["services"]}
    assert set(outcomes.values()) == {"pass"}, outcomes
    assert status["proxy"]["url"].startswith("http://127.0.0.1:")


def test_tls_inspection_makes_funds_intercepted_with_the_issuer_and_its_removal_makes_it_pass(api):
    api.wait_for("funds", "pass", timeout_s=60)
    entry = api.add_fault("tls_inspect")
    assert entry["id"] and entry["name"] == "tls_inspect"
    funds = api.wait_for("funds", "tls_intercepted", timeout_s=30)
    assert "Corp Inspection CA" in funds["evidence"]["issuer_shown"]
    assert "PB Root" in funds["evidence"]["issuer_expected"]
    assert funds["remedy"] and funds["required"] is True
    assert [f["name"] for f in api.faults()] == ["tls_inspect"]
    api.remove_fault(entry["id"])
    assert api.wait_for("funds", "pass", timeout_s=30)["evidence"] is None
    assert api.faults() == []


def test_a_probe_on_demand_answers_with_the_meters_results_under_the_faults_in_force(api):
    api.apply_preset("stock_squid")
    outcomes = {s["name"]: s["outcome"] for s in api.probe()["services"]}
    # Squid's SSL_ports rule: port 80 refused, 443 through (the guide's distributor has both).
    assert outcomes["online_help"] == "refused" and outcomes["funds"] == "pass"
    api.clear_faults()
    outcomes = {s["name"]: s["outcome"] for s in api.probe()["services"]}
    assert outcomes["online_help"] == "pass"  # negative control


def test_the_bypass_preset_lists_every_tls_host_of_the_guide_and_the_meter_passes_through_it(api, lab):
    presets = {p["name"]: p for p in api.request("GET", "/api/presets")}
    assert set(presets) == {"compliant", "stock_squid", "ssl_inspection", "ssl_inspection_bypassed", "ntlm_only", "slow_link"}
    bypass = presets["ssl_inspection_bypassed"]["faults"][0]["settings"]["bypass"]
    assert "decometlb20.pb.com" in bypass and "pb-ota.redbend.com" in bypass and not any("*" in h for h in bypass)
    api.apply_preset("ssl_inspection_bypassed")
    assert {s["outcome"] for s in api.probe()["services"]} == {"pass"}


def test_a_patch_changes_a_faults_settings_and_the_meter_sees_it(api):
    entry = api.add_fault("deny_hosts", {"patterns": ["nothing.example"]})
    assert api.probe()["services"][1]["outcome"] == "pass"  # funds: the pattern matches none of its hosts
    changed = api.update_fault(entry["id"], {"patterns": ["*.pb.com"]})
    assert changed["settings"] == {"patterns": ["*.pb.com"]}
    funds = next(s for s in api.probe()["services"] if s["name"] == "funds")
    assert funds["outcome"] == "refused" and funds["evidence"]["connect"]["status"] == 403


def test_the_event_stream_carries_fault_changes_and_probe_runs(api, lab):
    since = api.status()["last_event"]
    entry = api.add_fault("latency", {"delay_ms": 1})
    api.remove_fault(entry["id"])
    kinds = []
    for event in api.events(since=since, timeout_s=30):
        kinds.append((event["kind"], event.get("action")))
        if event["kind"] == "probe":
            assert {s["name"] for s in event["services"]} >= {"funds", "distributor"}
            break
    assert kinds[:2] == [("fault", "added"), ("fault", "removed")]


@pytest.mark.parametrize(
    ("body", "status", "field", "says"),
    [
        (b'{"name": ', 400, None, "malformed JSON"),  # cut-off JSON
        (b'{"name": "no_such_fault"}', 404, None, "unknown fault 'no_such_fault'"),
        (b'{"name": "throttle", "settings": {"rate_kbps": "fast"}}', 422, "settings.rate_kbps", "expected float"),
        (b'{"name": "throttle", "settings": {"rate_kbps": -5}}', 422, "settings.rate_kbps", "must be > 0"),
        (b'{"name": "throttle", "settings": {"speed": 1}}', 422, "settings.speed", "unknown setting"),
        (b'{"name": 7}', 422, "name", "valid string"),  # a number where the fault's name goes
        (b'{"settings": {}}', 422, "name", "Field required"),
        (b'["tls_inspect"]', 422, None, ""),  # a list, not an object
    ],
)
def test_bad_fault_input_gets_its_status_and_a_json_message_and_the_lab_keeps_serving(lab, body, status, field, says):
    got, answer = raw(lab, "POST", "/api/faults", body)
    assert got == status, answer
    assert says in answer["error"] and answer["field"] == field
    assert raw(lab, "GET", "/api/faults")[1] == []  # nothing was put in force
    assert raw(lab, "GET", "/api/status")[0] == 200


def test_unknown_ids_and_presets_are_404_with_a_message(lab):
    assert raw(lab, "DELETE", "/api/faults/f999")[0] == 404
    status, answer = raw(lab, "PATCH", "/api/faults/f999", b'{"settings": {}}')
    assert status == 404 and "no fault with id 'f999'" in answer["error"]
    status, answer = raw(lab, "POST", "/api/presets/everything_broken")
    assert status == 404 and "compliant" in answer["error"]


def test_a_request_from_another_origin_is_refused_and_the_pages_own_origin_is_not(lab):
    host, port = lab.served.ui_address
    status, answer = raw(lab, "POST", "/api/presets/compliant", headers={"Origin": "http://evil.example"})
    assert status == 403 and "cross-site" in answer["error"]
    assert raw(lab, "POST", "/api/presets/compliant", headers={"Origin": f"http://{host}:{port}"})[0] == 200


def test_a_rebound_host_name_is_refused_on_a_lab_without_token(lab):
    status, answer = raw(lab, "GET", "/api/status", headers={"Host": "attacker.example"})
    assert status == 403 and "IP address or localhost" in answer["error"]


def test_the_openapi_document_describes_the_fault_api(lab):
    status, doc = raw(lab, "GET", "/api/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.")
    assert {"/api/status", "/api/faults", "/api/faults/{fault_id}", "/api/probe", "/api/events"} <= set(doc["paths"])
    assert {"get", "post"} <= set(doc["paths"]["/api/faults"]) and {"patch", "delete"} <= set(doc["paths"]["/api/faults/{fault_id}"])


def test_the_dashboard_page_is_served_self_contained(lab):
    host, port = lab.served.ui_address
    conn = http.client.HTTPConnection(host, port, timeout=30)
    conn.request("GET", "/")
    resp = conn.getresponse()
    page = resp.read().decode()
    conn.close()
    assert resp.status == 200 and "default-src 'none'" in resp.getheader("Content-Security-Policy", "")
    assert 'id="tiles"' in page and "__SPRITE__" not in page and "__FAMILY__" not in page
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")  # no external asset


def test_a_lab_with_a_token_refuses_calls_without_it_and_takes_them_with_it(tmp_path: Path):
    config = ServeConfig(interval_s=5.0, ui_token=TOKEN, certs_dir=tmp_path / "certs")
    with ServedLabThread(config) as served:
        anonymous = LabClient(served.ui_url)
        with pytest.raises(LabApiError) as missing:
            anonymous.faults()
        assert missing.value.status == 401 and "token" in missing.value.message
        with pytest.raises(LabApiError) as wrong:
            LabClient(served.ui_url, token="wrong-token").faults()
        assert wrong.value.status == 401
        assert served.client.faults() == []  # the fixture's client carries the token


def test_a_non_loopback_ui_without_a_token_is_refused_before_anything_starts():
    from proxy_lab.errors import ConfigError

    with pytest.raises(ConfigError, match="--ui-token"):
        ServeConfig(ui=("0.0.0.0", 8080))
    ServeConfig(ui=("0.0.0.0", 8080), ui_token=TOKEN)  # negative control: with a token it is allowed


def test_the_pytest_fixtures_give_a_served_lab_whose_faults_are_cleared_after_each_test(proxy_lab_served, proxy_lab_faults):
    """The plugin's `proxy_lab_served` / `proxy_lab_faults`, used as a suite of another project would."""
    assert proxy_lab_served.proxy_url.startswith("http://127.0.0.1:")
    assert proxy_lab_faults.faults() == []  # nothing left from another test
    with proxy_lab_faults.fault("allow_ports", {"preset": "ssl_ports_only"}):
        outcomes = {s["name"]: s["outcome"] for s in proxy_lab_faults.probe()["services"]}
        assert outcomes["online_help"] == "refused"
    proxy_lab_faults.add_fault("latency", {"delay_ms": 1})  # left in force: the fixture clears it


def test_with_proxy_users_the_meter_authenticates_and_a_client_without_credentials_gets_407(tmp_path: Path):
    import socket

    config = ServeConfig(interval_s=5.0, users={"meter": "S3cret"}, certs_dir=tmp_path / "certs")
    with ServedLabThread(config) as served:
        assert {s["outcome"] for s in served.client.probe()["services"]} == {"pass"}
        host, port = served.served.proxy.address
        with socket.create_connection((host, port), timeout=30) as s:  # negative control: no credentials
            s.sendall(b"CONNECT decometlb20.pb.com:443 HTTP/1.1\r\nHost: decometlb20.pb.com:443\r\n\r\n")
            assert s.recv(64).startswith(b"HTTP/1.1 407")


def test_the_fault_catalog_says_which_input_each_setting_takes_and_the_choices_of_a_choice(api):
    catalog = {f["name"]: {s["name"]: s for s in f["settings"]} for f in api.request("GET", "/api/catalog/faults")}
    action = catalog["allow_ports"]["action"]
    assert (action["kind"], action["choices"], action["default"]) == ("choice", ["403", "405", "close", "reset"], "403")
    assert action["type"] == "'403'|'405'|'close'|'reset'"  # the type as `proxy-lab faults` names it, kept
    ports = catalog["allow_ports"]["ports_allowed"]
    assert (ports["kind"], ports["items"], ports["choices"]) == ("list", "int", None)
    assert (catalog["throttle"]["up_kbps"]["kind"], catalog["throttle"]["up_kbps"]["optional"]) == ("float", True)
    assert (catalog["throttle"]["rate_kbps"]["kind"], catalog["throttle"]["rate_kbps"]["optional"]) == ("float", False)
