"""The upload sink: a download host reads a POST /upload body, discards it and answers its byte count."""

from __future__ import annotations

from proxy_lab.cloud import Cloud
from proxy_lab.cloud.routes import SINK_PATH, sink_answer
from proxy_lab.pki import PKI
from tests.cloud.cloud_testclient import http

OCTETS = (("Content-Type", "application/octet-stream"),)


def test_the_sink_answers_the_byte_count_of_the_body_posted(cloud: Cloud, pki: PKI) -> None:
    body = bytes(range(256)) * 300
    addr = cloud.resolver.lookup("pbdlsp1.pb.com", 443)
    reply = http(addr, "POST", SINK_PATH, "pbdlsp1.pb.com", body, tls=pki.device_context(), headers=OCTETS)
    assert reply.status == 200 and reply.body == sink_answer(len(body)) == b"SINK OK bytes=76800"
    assert cloud.state.uploads["upload_sink"] == 1


def test_the_sink_takes_only_post_and_only_on_download_hosts(cloud: Cloud, pki: PKI) -> None:
    ctx = pki.device_context()
    get = http(cloud.resolver.lookup("pbdlsp1.pb.com", 443), "GET", SINK_PATH, "pbdlsp1.pb.com", b"", tls=ctx)
    assert get.status == 405
    elsewhere = http(cloud.resolver.lookup("decometlb20.pb.com", 443), "POST", SINK_PATH, "decometlb20.pb.com",
                     b"x", tls=ctx, headers=OCTETS)  # fmt: skip
    assert elsewhere.status == 404
