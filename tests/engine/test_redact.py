"""Secrets are masked before anything is written: keys that name secrets, passwords in URLs, tokens in queries."""

from __future__ import annotations

from typing import Any

import pytest

from engine.redact import MASK, redact, redact_text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("redis://:hunter2@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("https://ops:pa55@hooks.example/x", "https://ops:***@hooks.example/x"),
        ("connect to http://u:p@h:1 failed", "connect to http://u:***@h:1 failed"),
        ("https://hooks.example/x?channel=a&token=abc123&x=1", "https://hooks.example/x?channel=a&token=***&x=1"),
        ("http://h/?api_key=k&access_token=t", "http://h/?api_key=***&access_token=***"),
        ("http://127.0.0.1:8474/proxies", "http://127.0.0.1:8474/proxies"),  # nothing secret: unchanged
        ("user@host", "user@host"),
    ],
)
def test_secrets_in_text_are_masked(text: str, expected: str) -> None:
    assert redact_text(text) == expected


def test_values_under_secret_keys_are_masked_at_any_depth_and_references_are_kept() -> None:
    data: dict[str, Any] = {
        "targets": {
            "db": {
                "instances": [
                    {
                        "env": {
                            "DB_PASSWORD": "inline",
                            "API_TOKEN": "${API_TOKEN}",
                            "LOG_LEVEL": "info",
                            "aws-secret-access-key": "x",
                        },
                        "argv": ["svc", "--password-file", "/run/secrets/db"],
                    }
                ]
            }
        },
        "params": {"password": 1234, "timeout_s": 3, "token": None, "auth": {"kind": "basic", "user": "u"}},
    }
    clean = redact(data)
    env = clean["targets"]["db"]["instances"][0]["env"]
    assert env == {"DB_PASSWORD": MASK, "API_TOKEN": "${API_TOKEN}", "LOG_LEVEL": "info", "aws-secret-access-key": MASK}
    assert clean["targets"]["db"]["instances"][0]["argv"] == ["svc", "--password-file", "/run/secrets/db"]
    assert clean["params"] == {"password": MASK, "timeout_s": 3, "token": None, "auth": {"kind": "basic", "user": "u"}}
    assert data["params"]["password"] == 1234  # a copy: the input is untouched
