"""The calls themselves: every POST answered in order, from any thread, and no answer said as such.

(Headers such as Retry-After reaching the error parsing: ``test_push_fcm_deliver.py``.)
"""

from __future__ import annotations

import socket
import threading

import orjson
from fcm_support import FakeServer
from tessera_push_fcm.transport import Answer, Post, Unreachable, post_all


def test_every_post_gets_its_own_answer_in_order(clean: FakeServer) -> None:
    """Answers come back in the order asked, whichever finished first."""
    clean.post("delay", {"seconds": 0.05})
    posts = [
        Post(f"{clean.url}/_sandbox/nowhere/{i}", b"{}", ["Content-Type: application/json"])
        for i in range(30)
    ]
    answers = post_all(posts, concurrency=8)
    assert [a.status for a in answers if isinstance(a, Answer)] == [404] * 30
    paths = [orjson.loads(a.content)["error"]["message"] for a in answers if isinstance(a, Answer)]
    assert paths == [f"The sandbox for FCM does not serve POST /_sandbox/nowhere/{i}." for i in range(30)]


def test_a_server_that_is_not_there_is_unreachable_not_an_error() -> None:
    """A refused connection is an answer of its own, with libcurl's reason."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again when the block ends: nothing listens there
    (answer,) = post_all([Post(f"http://127.0.0.1:{port}/v1/x", b"{}", [])], concurrency=1)
    assert isinstance(answer, Unreachable) and "connect" in answer.reason.lower()


def test_threads_send_at_once_each_with_their_own_connections(clean: FakeServer) -> None:
    """Worker threads call at the same time; none sees another's answers."""
    found: dict[int, list[int]] = {}

    def send(thread: int) -> None:
        posts = [Post(f"{clean.url}/_sandbox/state", b"{}", []) for _ in range(10)]
        found[thread] = [a.status if isinstance(a, Answer) else 0 for a in post_all(posts, concurrency=4)]

    threads = [threading.Thread(target=send, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    # /_sandbox/state is a GET route: each POST is refused by the catch-all, answered all the same.
    assert found == {n: [404] * 10 for n in range(4)}
