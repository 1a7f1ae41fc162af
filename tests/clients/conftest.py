"""Shared fixtures of the httpx-sse suite: where the server is, and its request log."""

import os
import uuid
from urllib.parse import urlsplit

import httpx
import pytest


@pytest.fixture(scope="session")
def base_url() -> str:
    base = os.environ.get("SSE_BASE_URL")
    assert base, "SSE_BASE_URL is not set (run tests/clients/run.sh)"
    # These tests only ever talk to a server on this machine.
    assert urlsplit(base).hostname == "127.0.0.1", f"SSE_BASE_URL must be on 127.0.0.1, got {base}"
    return base.rstrip("/")


@pytest.fixture
def client(base_url: str):
    # Every read is bounded; loops over streams carry their own deadlines.
    with httpx.Client(base_url=base_url, timeout=httpx.Timeout(5.0)) as c:
        yield c


@pytest.fixture
def session(request) -> str:
    """A session name no other test uses, for the server's request log."""
    return f"{request.node.name}-{uuid.uuid4().hex[:8]}"


def server_log(client: httpx.Client, session: str) -> list[dict]:
    response = client.get("/log", params={"session": session})
    assert response.status_code == 200
    return response.json()
