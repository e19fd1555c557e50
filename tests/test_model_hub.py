"""``--model owner/name``: the Hugging Face cache first, and a quick failure when offline."""

from __future__ import annotations

import socket
import time

import pytest
from huggingface_hub.errors import LocalEntryNotFoundError

from mlx_hdr.errors import WeightsError
from mlx_hdr.infer import model_hub


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """A stand-in for ``hf_hub_download`` that records its calls: a cache holding only
    ``cached/repo``, and a network that answers nothing (each try would cost seconds)."""
    calls = []

    def download(repo_id, filename, revision=None, local_files_only=False):
        calls.append("cache" if local_files_only else "network")
        if local_files_only and repo_id == "cached/repo":
            return str(tmp_path / filename)
        if local_files_only:
            raise LocalEntryNotFoundError("not cached")
        time.sleep(2)  # the Hub client's retries
        raise LocalEntryNotFoundError("no connection")

    monkeypatch.setattr("huggingface_hub.hf_hub_download", download)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return calls


def test_a_cached_model_needs_no_network(hub, monkeypatch, tmp_path):
    monkeypatch.setattr(model_hub, "hub_reachable", lambda: pytest.fail("net"), raising=False)
    assert model_hub.resolve_model("cached/repo") == tmp_path / "model.safetensors"
    assert hub == ["cache"]


def test_hf_hub_offline_fails_at_once(hub, monkeypatch):
    # it used to spend 24 s in the Hub client's retries
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(model_hub, "hub_reachable", lambda: pytest.fail("net"), raising=False)
    with pytest.raises(WeightsError) as info:
        model_hub.resolve_model("someone/repo")
    assert str(info.value) == (  # "runs/mine" with a typo reads like a repo id: both said
        "someone/repo: no local file or folder by that name, not in the local Hugging Face "
        "cache, and HF_HUB_OFFLINE is set"
    )
    assert hub == ["cache"]


def test_unreachable_hub_fails_after_one_check(hub, monkeypatch):
    tries = []

    def no_route(address, timeout=None):
        tries.append((address, timeout))
        raise OSError(101, "Network is unreachable")

    monkeypatch.setattr(socket, "create_connection", no_route)
    for var in ("https_proxy", "HTTPS_PROXY", "HF_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    start = time.perf_counter()
    with pytest.raises(
        WeightsError,
        match="someone/repo: no local file or folder by that name, .* the Hub is unreachable",
    ):
        model_hub.resolve_model("someone/repo")
    assert time.perf_counter() - start < 1.0
    assert hub == ["cache"] and tries == [(("huggingface.co", 443), model_hub.REACH_TIMEOUT)]


def test_a_mistyped_local_path_is_not_sent_to_the_hub(monkeypatch):
    """``models/best.safetensor`` (an s short) matches a repo id's shape: it was looked up
    on the Hub ("not in the local cache ... offline?") instead of reported missing."""
    from mlx_hdr.errors import WeightsError
    from mlx_hdr.infer import model_hub

    monkeypatch.setattr(
        model_hub, "hub_download", lambda spec: pytest.fail(f"asked the Hub: {spec}")
    )
    for spec in ("models/best.safetensor", "runs/p1/model.pth", "./runs/p1", "~/models/x"):
        with pytest.raises(WeightsError, match="model file not found"):
            model_hub.resolve_model(spec)
