"""Keep the garbage collector's work proportional to what an event loop allocates, not to the whole program.

A long-running listener or delivery consumer allocates a few short-lived objects per event; CPython's cyclic
collector, every few thousand allocations, also walks the objects that have survived earlier collections, and a
process that has loaded its estate, the web stack, the database layer and the model holds a few hundred thousand
of them, none ever garbage. On the event path that walk was about a third of the CPU time per event. Freezing
what start-up left (``gc.freeze``: moved to a generation the collector ignores) takes it out of every later
collection; objects made afterwards are collected as before.

A batch job has the opposite problem: a page of thousands of records lives through dozens of young collections,
so most of its objects reach the oldest generation, whose growth soon triggers a walk of everything (a third of a
mapping worker's CPU time per record). :func:`collect_per_page` pauses automatic collection for the job and lets
it collect the young generations itself, between pages, when the page's objects are gone.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

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


@contextmanager
def collect_per_page() -> Iterator[Callable[[], None]]:
    """Automatic collection paused while the block runs; call what it gives after each page to collect the young
    generations (what the page left that refers to itself). Everything is collected as usual again afterwards; a
    block inside another, or in a program that disabled collection, changes nothing."""
    if not gc.isenabled():
        yield _nothing
        return
    gc.disable()
    try:
        yield _collect_young
    finally:
        gc.enable()


def _collect_young() -> None:
    gc.collect(1)


def _nothing() -> None:
    pass
