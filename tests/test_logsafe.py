"""voicekit.logsafe: no secret in any log line, and log records that still format."""

from __future__ import annotations

import logging

import pytest

from voicekit import logsafe


@pytest.fixture(autouse=True)
def installed() -> None:
    logsafe.install()
    logsafe.register_secret("sk-test-0123456789")


def test_known_secrets_and_credential_shapes_are_redacted() -> None:
    token = "djM6Y2FsbA.1764643200." + "A" * 43
    cases = {
        "> Authorization: Bearer abc.def": "> Authorization: Bearer [redacted]",
        "> xi-api-key: abc123": "> xi-api-key: [redacted]",
        "GET /media?token=abc&x=1": "GET /media?token=[redacted]&x=1",
        '{"api_key": "abc"}': '{"api_key": "[redacted]"}',
        "key sk-test-0123456789 here": "key [redacted] here",
        f"url wss://h/m?{token}": "url wss://h/m?[redacted]",
        "authorization failed, try again": "authorization failed, try again",
    }
    for text, expected in cases.items():
        assert logsafe.redact(text) == expected


def test_formatters_that_read_record_args_still_work(caplog: pytest.LogCaptureFixture) -> None:
    """uvicorn's access formatter unpacks record.args: redaction keeps them a tuple."""
    logger = logging.getLogger("uvicorn.access.test")
    with caplog.at_level(logging.INFO, logger="uvicorn.access.test"):
        logger.info(
            '%s - "%s %s HTTP/%s" %d', "1.2.3.4", "GET", "/healthz?token=abc&api_key=x", "1.1", 200
        )
    (record,) = caplog.records
    _client, _method, path, _version, status = record.args  # type: ignore[misc]
    assert path == "/healthz?token=[redacted]&api_key=[redacted]" and status == 200
    assert record.getMessage() == (
        '1.2.3.4 - "GET /healthz?token=[redacted]&api_key=[redacted] HTTP/1.1" 200'
    )


def test_exceptions_and_objects_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    class Headers:
        def __str__(self) -> str:
            return "Authorization: Bearer sk-test-0123456789"

    logger = logging.getLogger("voicekit.test")
    try:
        raise RuntimeError("refused key sk-test-0123456789")
    except RuntimeError:
        logger.exception("failed with %s", Headers())
    (record,) = caplog.records
    assert "sk-test" not in record.getMessage() and "sk-test" not in (record.exc_text or "")
    assert "[redacted]" in record.exc_text  # type: ignore[operator]


def test_line_breaks_in_values_cannot_forge_log_lines(caplog: pytest.LogCaptureFixture) -> None:
    logging.getLogger("voicekit.test").warning("call=%s: hello", "v3:x\nERROR forged line")
    (record,) = caplog.records
    assert record.getMessage() == "call=v3:x\\nERROR forged line: hello"


def test_other_control_characters_are_escaped_too(caplog: pytest.LogCaptureFixture) -> None:
    hostile = "red\x1b[31m alert\x85next\u2028line\x0bvt\x0cff\x7fdel\x00nul\ttab"
    logging.getLogger("voicekit.test").warning("peer %s", hostile)
    (record,) = caplog.records
    message = record.getMessage()
    assert len(message.splitlines()) == 1
    assert message == (
        "peer red\\x1b[31m alert\\x85next\\u2028line\\x0bvt\\x0cff\\x7fdel\\x00nul\ttab"
    )
