"""Child processes ignore the signals their parent owns, from their very first instruction: a SIGTERM sent to the
whole process group (systemd's stop, a test's killpg) must not kill an image worker mid-write, not even one that
is still starting."""

from __future__ import annotations

import os
import signal
import time
from multiprocessing.connection import Connection

from retouch.children import Child


def _echo(conn: Connection) -> None:
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return  # the parent closed the pipe: the only way a child is asked to stop
        conn.send(message)


def test_a_child_survives_sigterm_and_sigint_sent_while_it_starts() -> None:
    child = Child(_echo, (), role="test")
    try:
        # At once: the interpreter has not even started, so no Python handler could be in place yet.
        os.kill(child.pid, signal.SIGTERM)
        os.kill(child.pid, signal.SIGINT)
        child.conn.send("hello")
        assert child.conn.poll(30)
        assert child.conn.recv() == "hello"
        for number in (signal.SIGTERM, signal.SIGINT):  # and later, while it waits on its pipe
            os.kill(child.pid, number)
        time.sleep(0.2)
        assert child.is_alive()
        child.conn.send("still here")
        assert child.conn.recv() == "still here"
    finally:
        child.conn.close()
        child.join(timeout=10)
        if child.is_alive():
            child.kill()
    assert child.exitcode == 0  # it ended because its pipe closed, not by a signal


def test_the_parent_keeps_its_own_signal_mask_after_a_spawn() -> None:
    before = signal.pthread_sigmask(signal.SIG_BLOCK, set())
    child = Child(_echo, (), role="test")
    child.conn.close()
    child.join(timeout=10)
    assert signal.pthread_sigmask(signal.SIG_BLOCK, set()) == before
