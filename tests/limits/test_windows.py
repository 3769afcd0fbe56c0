"""The sliding minute: what counts, for how long, and when a request could pass."""

from __future__ import annotations

from proxy.limits.windows import KEEP_SECONDS, MinuteWindow


def test_use_counts_for_at_least_a_full_minute() -> None:
    window = MinuteWindow()
    window.add(100, 5)
    for second in range(100, 161):
        window.expire(second)
        assert window.total == 5, second
    window.expire(161)
    assert window.total == 0


def test_wait_for_frees_the_oldest_use_first() -> None:
    window = MinuteWindow()
    window.add(100, 2)
    window.add(130, 3)
    assert window.wait_for(130.5, 1, 6) == 0.0
    # 5 used of 5: one more needs the bucket of second 100 to lapse, at 161
    assert window.wait_for(130.5, 1, 5) == 161 - 130.5
    # 4 more needs 4 freed: both buckets
    assert window.wait_for(130.5, 4, 5) == 130 + KEEP_SECONDS - 130.5
    assert window.wait_for(130.5, 6, 5) is None  # more than the limit: never


def test_adjust_changes_a_bucket_that_still_counts_and_never_goes_negative() -> None:
    window = MinuteWindow()
    window.add(100, 50)
    window.add(101, 10)
    window.adjust(100, -40)
    assert window.total == 20
    window.adjust(101, -100)
    assert window.total == 10
    window.adjust(99, 5)  # gone or never there: nothing changes
    assert window.total == 10


def test_reset_in_is_when_the_newest_use_lapses() -> None:
    window = MinuteWindow()
    assert window.reset_in(5.0) == 0.0
    window.add(10, 1)
    window.add(20, 1)
    assert window.reset_in(20.25) == 20 + KEEP_SECONDS - 20.25
