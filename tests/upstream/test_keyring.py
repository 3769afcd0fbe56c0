"""Upstream key rotation and resting."""

from __future__ import annotations

from proxy.upstream.keyring import KeyRing, key_id

KEYS = ["sk-a", "sk-b", "sk-c"]


def test_round_robin() -> None:
    ring = KeyRing()
    assert [ring.pick(KEYS, now=0) for _ in range(6)] == KEYS * 2


def test_resting_key_is_skipped_until_it_has_rested() -> None:
    ring = KeyRing()
    ring.rest("sk-b", 30, now=0)
    assert [ring.pick(KEYS, now=1) for _ in range(4)] == ["sk-a", "sk-c", "sk-a", "sk-c"]
    assert "sk-b" in [ring.pick(KEYS, now=31) for _ in range(3)]


def test_all_resting() -> None:
    ring = KeyRing()
    for key in KEYS:
        ring.rest(key, 10 + len(key), now=0)
    assert ring.pick(KEYS, now=5) is None
    assert ring.ready_in(KEYS, now=5) == 9


def test_key_id_does_not_reveal_the_key() -> None:
    assert "sk-a" not in key_id("sk-a") and len(key_id("sk-a")) == 12
