"""Function nodes' webhooks (respx, no network): templating, saved fields, retries only
when idempotent, the SSRF guard after DNS resolution, and secrets kept out of the logs."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import anyio
import httpx
import pytest
import respx

from voicekit.flows import WebhookRunner
from voicekit.flows.model import FunctionNode
from voicekit.retry import RetryPolicy

pytestmark = pytest.mark.anyio

PUBLIC = "93.184.216.34"
TOKEN = "tok-9f8e7d6c5b4a"


def node(**overrides: Any) -> FunctionNode:
    fields: dict[str, Any] = {
        "id": "book",
        "type": "function",
        "method": "POST",
        "url": "https://crm.example.test/api/{{name}}/bookings",
        "headers": {"Authorization": "Bearer {{env.CRM_TOKEN}}"},
        "body": {"name": "{{name}}", "party": "{{party}}"},
        "save": {"booking_id": "booking.id", "slot": "slots.0"},
        "next": "done",
        **overrides,
    }
    return FunctionNode.model_validate(fields)


def runner(answers: dict[str, Sequence[str]] | None = None) -> WebhookRunner:
    table = answers or {"crm.example.test": [PUBLIC]}

    async def resolve(host: str, port: int) -> Sequence[str]:
        if host not in table:
            raise OSError("no such host")
        return table[host]

    async def no_wait(_: float) -> None:
        return None

    return WebhookRunner(
        resolve=resolve, env={"CRM_TOKEN": TOKEN}, retry=RetryPolicy(sleep=no_wait)
    )


VARIABLES = {"name": "Ana", "party": 3}


async def test_the_request_goes_to_the_checked_address_and_saves_dotted_fields() -> None:
    with respx.mock(assert_all_called=False) as mock:
        route = mock.post(f"https://{PUBLIC}/api/Ana/bookings").respond(
            json={"booking": {"id": "B-7"}, "slots": ["10:30", "11:00"]}
        )
        result = await runner().run(node(), VARIABLES, allow_private=False, call_id="c1")
    assert result.ok and result.saved == {"booking_id": "B-7", "slot": "10:30"}
    request = route.calls.last.request
    assert request.headers["host"] == "crm.example.test"  # the name, for the server
    assert request.extensions["sni_hostname"] == "crm.example.test"  # and for TLS
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert json.loads(request.content) == {"name": "Ana", "party": 3}  # typed, not "3"


@pytest.mark.parametrize(
    ("url", "resolves_to", "reason"),
    [
        ("http://127.0.0.1:8080/x", None, "loopback"),
        ("http://169.254.169.254/latest/meta-data", None, "link-local"),
        ("http://10.1.2.3/x", None, "private"),
        ("http://[::1]/x", None, "loopback"),
        ("http://[::ffff:127.0.0.1]/x", None, "loopback"),
        ("https://intranet.example.test/x", ["10.0.0.8"], "private"),
        ("https://mixed.example.test/x", [PUBLIC, "192.168.1.4"], "private"),
        ("https://zero.example.test/x", ["0.0.0.0"], "unspecified"),
    ],
)
async def test_destinations_inside_the_network_are_refused(
    url: str, resolves_to: list[str] | None, reason: str
) -> None:
    answers = {"crm.example.test": [PUBLIC]}
    host = httpx.URL(url).host
    if resolves_to is not None:
        answers[host] = resolves_to
    with respx.mock(assert_all_called=False) as mock:
        any_request = mock.route().respond(json={})
        result = await runner(answers).run(
            node(url=url, save={}), VARIABLES, allow_private=False, call_id="c1"
        )
    assert not result.ok and result.error is not None
    assert f"a {reason} address" in result.error or reason in result.error
    assert not any_request.called


async def test_a_flow_that_allows_private_networks_may_call_loopback() -> None:
    with respx.mock(assert_all_called=False) as mock:
        mock.post("http://127.0.0.1:9000/hook").respond(json={"booking": {"id": 1}, "slots": [2]})
        result = await runner().run(
            node(url="http://127.0.0.1:9000/hook"), VARIABLES, allow_private=True, call_id="c1"
        )
    assert result.ok and result.saved == {"booking_id": 1, "slot": 2}


async def test_idempotent_methods_are_retried_and_posts_are_not() -> None:
    answers = [httpx.Response(503), httpx.Response(200, json={"ok": True})]
    with respx.mock(assert_all_called=False) as mock:
        get = mock.get(f"https://{PUBLIC}/api/Ana/bookings").mock(side_effect=answers)
        result = await runner().run(
            node(method="GET", save={"ok": "ok"}), VARIABLES, allow_private=False, call_id="c"
        )
        assert result.ok and get.call_count == 2
        # A GET carries its body as the query.
        assert get.calls.last.request.url.params["party"] == "3"
        post = mock.post(f"https://{PUBLIC}/api/Ana/bookings").respond(503)
        result = await runner().run(node(), VARIABLES, allow_private=False, call_id="c")
        assert not result.ok and result.status == 503 and post.call_count == 1


async def test_redirects_big_answers_and_missing_fields_are_failures() -> None:
    url = f"https://{PUBLIC}/api/Ana/bookings"
    with respx.mock(assert_all_called=False) as mock:
        mock.post(url).respond(302, headers={"location": "http://127.0.0.1/admin"})
        redirected = await runner().run(node(), VARIABLES, allow_private=False, call_id="c")
        mock.post(url).respond(200, content=b"x" * (300 * 1024))
        huge = await runner().run(node(), VARIABLES, allow_private=False, call_id="c")
        mock.post(url).respond(json={"booking": {}})
        missing = await runner().run(node(), VARIABLES, allow_private=False, call_id="c")
        mock.post(url).respond(content=b"[" * 50_000)
        deep = await runner().run(node(), VARIABLES, allow_private=False, call_id="c")
    assert not redirected.ok and redirected.status == 302
    assert not huge.ok and "bytes" in (huge.error or "")
    assert missing.error == "the answer has no field 'booking.id' (for booking_id)"
    assert deep.error == "the answer is not JSON"


async def test_no_secret_url_or_body_reaches_the_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secret_url = "https://crm.example.test/hook?key={{env.CRM_TOKEN}}&who={{name}}"
    with respx.mock(assert_all_called=False) as mock:
        mock.route().respond(500, json={"detail": f"bad key {TOKEN}"})
        result = await runner().run(
            node(url=secret_url, method="PUT"), VARIABLES, allow_private=False, call_id="c9"
        )
        mock.route().mock(side_effect=httpx.ConnectError(f"failed for key={TOKEN}"))
        await runner().run(node(url=secret_url), VARIABLES, allow_private=False, call_id="c9")
    assert not result.ok
    assert TOKEN not in caplog.text and "Ana" not in caplog.text
    assert "call=c9" in caplog.text


async def test_a_server_that_drips_its_answer_meets_the_deadline() -> None:
    async def drip(request: httpx.Request) -> httpx.Response:
        await anyio.sleep(30)  # as good as a byte a second: never a complete answer
        return httpx.Response(200, json={})

    with respx.mock(assert_all_called=False) as mock:
        mock.route().mock(side_effect=drip)
        with anyio.fail_after(5):
            result = await runner().run(
                node(timeout_s=0.2, retries=0, method="GET"),
                VARIABLES,
                allow_private=False,
                call_id="c",
            )
    assert not result.ok and result.error is not None and "within 0.2 s" in result.error


async def test_hostile_values_and_unset_secrets_never_become_a_request() -> None:
    with respx.mock(assert_all_called=False) as mock:
        any_request = mock.route().respond(json={"booking": {"id": 1}, "slots": [1]})
        climbing = await runner().run(node(), {"name": ".."}, allow_private=False, call_id="c")
        unset = await WebhookRunner(env={}).run(node(), VARIABLES, allow_private=True, call_id="c")
        ok = await runner().run(node(), VARIABLES, allow_private=False, call_id="c")
    assert climbing.error == "the value of name is not a URL segment"
    assert unset.error == "environment variable(s) not set: CRM_TOKEN"
    assert ok.ok and any_request.call_count == 1  # only the sound request went out
    assert any_request.calls.last.request.headers["accept-encoding"] == "identity"
