"""Waiting for what happens in the background, the one way every test does it.

A timer's effect reaches the order's query, a message reaches the channel spy, visibility and
the records store catch up with the workflow: a moment after the call that caused it. A test
waits for that with `eventually`, reading again and again until the condition holds, never with
a fixed sleep: it goes on as soon as the effect is there, and fails loudly when it never comes.
Before a negative assertion, wait for the event that would prove it wrong (the worker having
caught up, the workflow having closed), not for a while."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

# Real seconds an effect may take to show before the wait fails. Generous on purpose: only a
# failing test waits this long, and a loaded two-core machine takes seconds where a laptop takes
# milliseconds. A wait whose effect takes longer by design (the dev server deleting a workflow,
# a warranty window running out) says so with `within`.
TIMEOUT = 30.0
# Real seconds between two reads.
POLL = 0.05


async def eventually(
    read: Callable[[], Awaitable[T]],
    expected: Callable[[T], object],
    *,
    within: float = TIMEOUT,
    explain: Callable[[T], str] = repr,
) -> T:
    """What `read` gives once `expected` holds for it, read every `POLL` seconds; after `within`
    seconds an AssertionError saying (through `explain`) what the last read gave."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + within
    while not expected(value := await read()):
        if loop.time() > give_up:
            raise AssertionError(f"not so after {within:g} s: {explain(value)}")
        await asyncio.sleep(POLL)
    return value
