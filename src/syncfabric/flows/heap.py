"""Keep the garbage collector's work proportional to what an event loop allocates, not to the whole program.

A long-running listener or delivery consumer allocates a few short-lived objects per event; CPython's cyclic
collector, every few thousand allocations, also walks the objects that have survived earlier collections, and a
process that has loaded its estate, the web stack, the database layer and the model holds a few hundred thousand
of them, none ever garbage. On the event path that walk was about a third of the CPU time per event. Freezing
what start-up left (``gc.freeze``: moved to a generation the collector ignores) takes it out of every later
collection; objects made afterwards are collected as before.
"""

from __future__ import annotations

import gc
import threading

_done = False
_lock = threading.Lock()


def settle_after_start_up() -> None:
    """Collect once, then freeze every object alive now; once per process (later calls do nothing)."""
    global _done
    with _lock:
        if _done:
            return
        _done = True
        gc.collect()
        gc.freeze()
