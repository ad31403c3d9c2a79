"""Requests that arrive together, segmented together: a small batching queue.

Each request puts a :class:`Job` on an asyncio queue and awaits its future. One consumer takes
the first job, waits up to ``wait_s`` for more (at most ``max_batch``), groups them by what a
single :func:`iem.segment_batch` call can share (settings, working shape, whether a box
replaces the initial squares) and runs each group in a worker thread, one group at a time, so
the event loop keeps answering while IEM computes. A job whose request gave up (time limit,
client gone) is dropped before computing. An exception fails the jobs of its group only.
Masks do not depend on the batch (:func:`iem.segment_batch` is per-image deterministic).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Callable, Dict, Hashable, List, Optional, Sequence, Tuple

import anyio
import torch


@dataclass
class Job:
    """One image to segment at its working resolution.

    Attributes:
        key: jobs with equal keys can share a :func:`iem.segment_batch` call.
        image: ``(3, h, w)`` float in [-1, 1].
        init: ``(1, 1, h, w)`` bool initial mask (a box), or None for the preset's squares.
        fixed: ``(1, 2, h, w)`` bool pinned pixels, or None.
    """

    key: Hashable
    image: torch.Tensor
    init: Optional[torch.Tensor] = None
    fixed: Optional[torch.Tensor] = None


@dataclass
class Outcome:
    """A job's ``(h, w)`` soft mask and the number of images of the call that computed it."""

    soft: torch.Tensor
    batch: int


#: ``compute(key, images, init, fixed)`` -> ``(B, 1, h, w)`` soft masks.
Compute = Callable[[Hashable, torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor]], torch.Tensor]


def stack_group(jobs: Sequence[Job]) -> Tuple[torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor]]:
    """The images, initial masks and pins of same-key jobs as batch tensors."""
    images = torch.stack([job.image for job in jobs])
    init = None if jobs[0].init is None else torch.cat([job.init for job in jobs])  # type: ignore[misc]
    fixed = None
    if any(job.fixed is not None for job in jobs):
        empty = torch.zeros((1, 2) + tuple(images.shape[2:]), dtype=torch.bool)
        fixed = torch.cat([empty if job.fixed is None else job.fixed for job in jobs])
    return images, init, fixed


class Batcher:
    """The queue and its consumer; the consumer starts with the first job."""

    def __init__(self, compute: Compute, max_batch: int, wait_s: float) -> None:
        self.compute, self.max_batch, self.wait_s = compute, max_batch, wait_s
        self.queue: Optional[asyncio.Queue] = None
        self.task: Optional[asyncio.Task] = None
        self.batches = 0

    async def submit(self, job: Job) -> Outcome:
        """Queue a job and wait for its result (cancellable: the job is then skipped)."""
        loop = asyncio.get_running_loop()
        if self.task is None or self.task.done() or self.task.get_loop() is not loop:
            self.queue = asyncio.Queue()
            self.task = loop.create_task(self._consume())
        future: asyncio.Future = loop.create_future()
        assert self.queue is not None
        self.queue.put_nowait((job, future))
        return await future

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass

    async def _collect(self) -> List[Tuple[Job, asyncio.Future]]:
        assert self.queue is not None
        taken = [await self.queue.get()]
        deadline = asyncio.get_running_loop().time() + self.wait_s
        while len(taken) < self.max_batch:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                break
            try:
                taken.append(await asyncio.wait_for(self.queue.get(), remaining))
            except asyncio.TimeoutError:
                break
        return taken

    async def _consume(self) -> None:
        while True:
            groups: Dict[Hashable, List[Tuple[Job, asyncio.Future]]] = {}
            for job, future in await self._collect():
                groups.setdefault(job.key, []).append((job, future))
            for key, members in groups.items():
                members = [(job, future) for job, future in members if not future.done()]
                if members:
                    await self._run(key, members)

    async def _run(self, key: Hashable, members: List[Tuple[Job, asyncio.Future]]) -> None:
        try:
            images, init, fixed = stack_group([job for job, _ in members])
            soft = await anyio.to_thread.run_sync(self.compute, key, images, init, fixed)
        except Exception as err:  # one group's failure is reported to its requests only
            for _, future in members:
                if not future.done():
                    future.set_exception(err)
            return
        self.batches += 1
        for index, (_, future) in enumerate(members):
            if not future.done():
                future.set_result(Outcome(soft[index, 0], len(members)))
