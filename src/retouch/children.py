"""Child processes (the image workers, the download process) started as plain ``python`` subprocesses.

multiprocessing's ``spawn`` start method also starts a resource-tracker process the first time it is used: a
third interpreter (12 MB RSS) that would unlink semaphores and shared memory a crashed child left behind. retouch's
children use neither - a child talks to its parent over one pipe and leaves files only in folders the parent
owns (the handoff folder, the metrics directory) - so the tracker watched nothing. A :class:`Child` is started
with :class:`subprocess.Popen` instead: the parent's ``sys.path``, then the target and its arguments, go down
the child's end of a pipe (pickled as multiprocessing would), and the child calls ``target(conn, *args)``.
``fork`` is not an option: the API process runs threads (uvicorn, the pool's supervisor) when workers are
replaced.

A child ignores SIGINT and SIGTERM from its first instruction: its parent owns its lifetime. Ctrl-C in a terminal
and systemd's stop (``KillMode=control-group``) signal every process of the service at once; a child that died of
it would lose the item it was writing, while its parent is about to finish that item and then close the child's
pipe, which ends the child. The signals are blocked in the spawning thread around ``Popen`` - a blocked signal's
mask survives fork and exec, a Python handler does not - and the child unblocks them once it ignores them, so a
signal sent while the interpreter starts is discarded rather than fatal. A parent that dies closes the pipe too.
"""

from __future__ import annotations

import contextlib
import pickle
import signal
import subprocess
import sys
from collections.abc import Callable
from multiprocessing import Pipe
from multiprocessing.connection import Connection
from multiprocessing.reduction import ForkingPickler
from typing import Any

__all__ = ["Child", "main"]

#: What a child ignores (see the module docstring).
_PARENT_OWNED = {signal.SIGINT, signal.SIGTERM}


class Child:
    """A started child and the parent's end of its pipe; the subset of ``multiprocessing.Process`` we use."""

    def __init__(self, target: Callable[..., object], args: tuple[Any, ...], role: str) -> None:
        parent, child = Pipe(duplex=True)
        fd = child.fileno()
        # ``role`` only names the process for ps and top ("retouch-image-worker"); the child ignores it.
        command = [sys.executable, "-c", "from retouch.children import main; main()", str(fd), f"retouch-{role}"]
        # close_fds (the default) with pass_fds: the child inherits this pipe end and nothing else of ours.
        # Blocked in this thread only, for the fork: a signal for this process meanwhile goes to another thread, or
        # waits (it is not lost) until the mask is restored.
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, _PARENT_OWNED)
        try:
            self._popen = subprocess.Popen(command, pass_fds=(fd,), stdin=subprocess.DEVNULL)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        child.close()
        self.conn = parent
        # sys.path first: unpickling the target imports its module (tests pass functions of their own modules).
        parent.send_bytes(pickle.dumps(list(sys.path)))
        parent.send_bytes(bytes(ForkingPickler.dumps((target, args))))

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def exitcode(self) -> int | None:
        """As multiprocessing reports it: None while running, -N when killed by signal N."""
        return self._popen.poll()

    def is_alive(self) -> bool:
        return self._popen.poll() is None

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self._popen.kill()

    def join(self, timeout: float | None = None) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._popen.wait(timeout)


def main() -> None:
    """The child's side: read the path, then the target, and run it on the pipe."""
    for number in _PARENT_OWNED:
        signal.signal(number, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _PARENT_OWNED)  # blocked since the fork; pending ones are dropped
    conn = Connection(int(sys.argv[1]))
    sys.path[:] = pickle.loads(conn.recv_bytes())
    target, args = pickle.loads(conn.recv_bytes())
    target(conn, *args)
