"""Group commit: the items of threads that arrive while a commit is running go in the next one,
together; each thread returns only once its own item is committed, or raises what failed it."""

from __future__ import annotations

import threading

import pytest

from neo_cli.queues.groupcommit import GroupCommit


def test_items_waiting_behind_a_commit_go_in_one_commit() -> None:
    committed: list[list[int]] = []
    first_in, release = threading.Event(), threading.Event()

    def commit(items: list[int]) -> None:
        if not committed:  # the first commit holds the turn until the others are waiting
            first_in.set()
            release.wait(10)
        committed.append(items)

    group = GroupCommit(commit)
    returned: list[int] = []

    def submit(n: int) -> None:
        group.submit(n)
        assert any(n in batch for batch in committed)  # never back before it is committed
        returned.append(n)

    first = threading.Thread(target=submit, args=(0,))
    first.start()
    assert first_in.wait(10)
    others = [threading.Thread(target=submit, args=(n,)) for n in range(1, 9)]
    for t in others:
        t.start()
    while len(group._open.items) < 8:  # all eight queued behind the running commit
        threading.Event().wait(0.001)
    release.set()
    for t in [first, *others]:
        t.join(10)
    assert len(committed) == 2 and committed[0] == [0] and sorted(committed[1]) == list(range(1, 9))
    assert sorted(returned) == list(range(9)) and group.commits == 2


def test_a_failed_commit_fails_every_item_in_it_and_not_the_next() -> None:
    calls: list[list[str]] = []

    def commit(items: list[str]) -> None:
        calls.append(items)
        if "bad" in items:
            raise OSError("disk full")

    group = GroupCommit(commit)
    with pytest.raises(OSError, match="disk full"):
        group.submit("bad")
    group.submit("good")  # the next commit is a fresh one
    assert calls == [["bad"], ["good"]]
