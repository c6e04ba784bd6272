"""scripts/demo_data.py imports runs, which changes something: of the
API_TOKENS entries, in any of their forms, it uses the secret of the first
token that may write, and says so in one line when every token is
read-only."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from research_common.config import ConfigError

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from demo_data import writing_secret


@pytest.mark.parametrize(
    ("raw", "secret"),
    [
        ("", None),
        (" , ", None),
        ("first,second", "first"),
        ("ci-reader:r-secret:read, ci-writer:w-secret", "w-secret"),
        ("ci-reader:r-secret:read,bare-secret", "bare-secret"),
    ],
)
def test_the_first_token_that_may_write(raw: str, secret: str | None) -> None:
    assert writing_secret({"API_TOKENS": raw}) == secret


def test_no_token_configured() -> None:
    assert writing_secret({}) is None


def test_only_read_only_tokens_is_a_one_line_error() -> None:
    with pytest.raises(ConfigError) as raised:
        writing_secret({"API_TOKENS": "a:r-secret:read,b:s-secret:read"})
    message = str(raised.value)
    assert message == "API_TOKENS: every token is read-only; the demo needs one that may write"
    assert "r-secret" not in message
    assert "s-secret" not in message
