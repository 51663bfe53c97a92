"""Data-parallel training of one model on several processes: PyTorch's DistributedDataParallel under ``torchrun``.

``torchrun --nproc_per_node=N -m trainwell fit CONFIG`` starts N processes (ranks) that each hold the whole model.
The fit loop is the ordinary one; what differs lives here:

- **Batches.** ``train.batch_size`` is the *global* batch: every rank draws the same seeded epoch permutation, and
  step i's global batch is the same slice of it as in one process. Rank r takes every W-th example of that slice
  starting at r (``torch.utils.data.DistributedSampler`` semantics: a shared seeded permutation, strided shards),
  without padding: the last batch is split unevenly rather than filled with repeated examples, so an epoch sees
  each example once, as in one process. Each rank's loss is scaled by its share of the global batch, so the
  gradient DDP averages is exactly the gradient of the global batch's mean loss: the same config gives the same
  training at any world size, and ``optim.lr`` is used as given (no scaling rule is applied).
- **Metrics** (training loss/accuracy per step, validation per epoch) are all-reduced: every rank sees the same
  numbers, so every rank's stopping criteria reach the same decision; a stop on one rank (a signal) is shared by
  all at the end of the epoch (:class:`AgreeStop`).
- **Randomness.** Initialization and data order are identical on all ranks; dropout masks and augmentations
  differ: ranks > 0 reseed their generators every epoch from (seed, epoch, rank) (:class:`RankSeeds`), so a resumed
  run draws the same masks as an uninterrupted one. Rank 0 keeps the single-process streams.
- **Files.** Only rank 0 writes (the pipeline gives the other ranks no writing callbacks); rank 0 runs the
  pre-flight before the others start (they wait for its word, :meth:`Context.share`).
- **Failures.** Every collective has a timeout (``train.dist_timeout_minutes``); a rank that dies makes the others
  raise :class:`DistributedError` instead of hanging (torchrun then stops the group).

Example:
    >>> ctx = setup("auto", timeout_minutes=5)  # under torchrun  # doctest: +SKIP
    >>> learner = DistributedLearner(model, optimizer, ctx=ctx)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import datetime
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from trainwell.errors import DistributedError, TrainwellError
from trainwell.train.callbacks import Callback, State
from trainwell.train.learners import ModuleLearner, evaluate, predicted_classes

RANK_SEED_STRIDE = 1_000_003  # a prime: (seed, epoch, rank) -> distinct seeds for every rank's per-epoch streams


@dataclass
class Context:
    """This process's place in the group."""

    rank: int
    world_size: int
    local_rank: int
    backend: str
    device: torch.device
    owns_group: bool = True

    @property
    def main(self) -> bool:
        return self.rank == 0

    def share(self, obj=None):
        """Rank 0's ``obj``, on every rank (rank 0 passes it; the others wait for it, up to the timeout)."""
        box = [obj if self.main else None]
        try:
            dist.broadcast_object_list(box, src=0, device=self.device if self.backend == "nccl" else None)
        except RuntimeError as exc:
            raise lost(self, exc, "waiting for rank 0") from None
        return box[0]

    def all_reduce(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over the ranks, in place."""
        try:
            dist.all_reduce(tensor)
        except RuntimeError as exc:
            raise lost(self, exc, "exchanging metrics") from None
        return tensor

    def describe(self, batch_size: int) -> str:
        """The line printed at the start of a run: world size, backend, the batch per rank, the LR rule."""
        low, high = batch_size // self.world_size, -(-batch_size // self.world_size)
        per_rank = f"{low}" if low == high else f"{low}-{high}"
        return (f"distributed: {self.world_size} processes ({self.backend}, {self.device.type}); train.batch_size = "
                f"{batch_size} is the global batch: {per_rank} examples per process per step; optim.lr is used as "
                f"given (no scaling with the number of processes)")


def lost(ctx: Context, exc: BaseException, doing: str) -> DistributedError:
    """The one line a rank prints when a peer is gone: which rank stopped (with two processes it is the other
    one; with more, the transport does not say), never the transport library's own text."""
    other = f"rank {1 - ctx.rank}" if ctx.world_size == 2 else "another rank"
    return DistributedError(f"rank {ctx.rank} of {ctx.world_size}: {other} stopped (killed or crashed) while "
                            f"{doing}; torchrun's log names the rank and its exit code")


def launched() -> bool:
    """Whether this process was started by torchrun (or a launcher that sets the same variables) with > 1 rank."""
    return "RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device: str = "auto", timeout_minutes: float = 5.0) -> Context | None:
    """Join the process group torchrun describes (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``,
    ``MASTER_PORT``): nccl with one GPU per process on CUDA, gloo on CPUs. Returns None when not launched with more
    than one process. Uses an existing group if one is initialized already.

    Raises:
        TrainwellError: ``device = "cuda"`` without a GPU for this process's local rank.
        DistributedError: the other processes did not join within the timeout.
    """
    if not launched():
        return None
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if device != "cpu" and 0 < gpus <= local or (device == "cuda" and gpus == 0):
        # every process must use the same backend: on a node with GPUs, "auto" means one GPU per process
        raise TrainwellError(f"train.device = {device!r}: local rank {local} has no GPU of its own ({gpus} visible); "
                             f"start at most {gpus} processes per node (--nproc_per_node) or use train.device = 'cpu'")
    use_cuda = device != "cpu" and gpus > 0
    if use_cuda:
        torch.cuda.set_device(local)
        dev, backend = torch.device("cuda", local), "nccl"
    else:
        dev, backend = torch.device("cpu"), "gloo"
    if dist.is_initialized():
        return Context(rank, world, local, dist.get_backend(), dev, owns_group=False)
    ctx = Context(rank, world, local, backend, dev)
    try:
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=timeout_minutes),
                                **({"device_id": dev} if use_cuda else {}))
    except RuntimeError as exc:
        raise lost(ctx, exc, "joining the group") from None
    return ctx


def finish(ctx: Context | None) -> None:
    """Wait until every rank has finished (a barrier with the group's timeout), so that no process leaves the group
    while another still talks to it: a gloo peer that exits mid-teardown can abort the others."""
    if ctx is not None and dist.is_initialized():
        try:
            dist.barrier()
        except RuntimeError as exc:
            raise lost(ctx, exc, "finishing") from None


def teardown(ctx: Context | None) -> None:
    """Leave the group this module created (a group the caller made stays)."""
    if ctx is not None and ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


class StartUp:
    """The start of a run under torchrun: rank 0 builds, checks and claims the run first; the other ranks wait for
    its word (the run directory) and start when it says so. A failure on rank 0 before it has spoken is shared, so
    the others stop at once instead of waiting out the timeout. Without a group (``ctx = None``) it does nothing.

    Use: ``word = start.wait()`` first (ranks > 0 get rank 0's word), ``start.tell(run_dir, batch_size)`` on rank 0
    once the run is set up, and ``with start.guard():`` around both.
    """

    def __init__(self, ctx: Context | None):
        self.ctx = ctx
        self.told = ctx is None or not ctx.main  # whether rank 0 has told the other ranks how its setup went

    def wait(self) -> dict:
        """Rank 0's word on ranks > 0 (``{"run": path}``); ``{}`` on rank 0 and in one process.

        Raises:
            DistributedError: rank 0 stopped before training.
        """
        if self.ctx is None or self.ctx.main:
            return {}
        word = self.ctx.share()
        if word.get("error"):
            raise DistributedError(f"rank {self.ctx.rank}: rank 0 stopped before training: {word['error']}")
        return word

    def tell(self, run_dir: str, batch_size: int) -> None:
        """Rank 0: the run is set up in ``run_dir``; the others may start (printed: how the run is spread)."""
        if self.told:
            return
        self.ctx.share({"run": run_dir})
        self.told = True
        print(self.ctx.describe(batch_size), file=sys.stderr, flush=True)

    @contextlib.contextmanager
    def guard(self):
        """Share a failure raised inside (on rank 0, before :meth:`tell`) with the other ranks, then re-raise it."""
        try:
            yield self
        except BaseException as exc:
            if not self.told:
                self.told = True
                self.ctx.share({"error": _one_line(exc)})
            raise


def from_rank0(ctx: Context, compute: Callable[[], object], what: str):
    """``compute()`` on rank 0 alone, its result shared with every rank (a failure too: the others raise).

    Raises:
        DistributedError: on ranks > 0, when rank 0's ``compute`` failed (``what`` names it).
    """
    word = None
    if ctx.main:
        try:
            word = {"value": compute()}
        except BaseException as exc:
            ctx.share({"error": _one_line(exc)})
            raise
    word = ctx.share(word)
    if word.get("error"):
        raise DistributedError(f"rank {ctx.rank}: rank 0's {what} failed: {word['error']}")
    return word["value"]


def convert_sync_bn(model: nn.Module, ctx: Context) -> nn.Module:
    """``model`` with its BatchNorm layers as :class:`torch.nn.SyncBatchNorm` (statistics over the global batch).

    Raises:
        TrainwellError: not on CUDA (torch's SyncBatchNorm runs on GPUs only).
    """
    if ctx.device.type != "cuda":
        raise TrainwellError("train.sync_bn = true needs CUDA processes (nccl): torch's SyncBatchNorm does not run "
                             "on CPUs; set train.sync_bn = false (each process then normalizes over its own shard)")
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)


class DistributedLearner(ModuleLearner):
    """A :class:`~trainwell.train.learners.ModuleLearner` whose module trains under DistributedDataParallel.

    ``self.model`` stays the plain module (checkpoints have the same keys as a single-process run); forward passes
    of training go through the DDP wrapper, which averages gradients over the ranks during ``backward``.
    A DataLoader given to the trainer is read once into memory: each rank trains on its shard of every global batch.
    """

    iterates_loaders = False

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: str | Callable = "cross_entropy",
                 *, ctx: Context, aug_seed: int = 1, **kwargs):
        model.to(ctx.device)  # in place: the optimizer keeps its parameters
        super().__init__(model, optimizer, loss_fn, aug_seed=aug_seed, **kwargs)
        self.ctx, self.device = ctx, ctx.device
        self.ddp = DistributedDataParallel(model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)

    def train_step(self, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One step on this rank's shard of the global batch ``idx``; returns the global batch's mean loss and
        number of right predictions (all-reduced)."""
        ctx, total = self.ctx, idx.shape[-1]
        local = idx[ctx.rank :: ctx.world_size]
        xb, yb = x[local], y[local]
        if self.augment is not None and len(local):
            xb = self.augment(xb, self.aug_generator)
        with self.autocast():
            out = self.ddp(xb)
            if len(local):
                mean = self.loss_fn(out, yb)
                # DDP averages gradients over W ranks: scaling by W * n_local / n_global makes that average the
                # gradient of the global batch's mean loss, also when the shards are uneven
                loss = mean * (ctx.world_size * len(local) / total)
            else:  # more ranks than examples left: take part in the gradient all-reduce with a zero gradient
                mean = loss = out.sum() * 0.0
        try:
            self.update(loss, total)
        except RuntimeError as exc:
            if isinstance(exc, torch.OutOfMemoryError):
                raise
            raise lost(ctx, exc, "averaging gradients") from None
        right = (predicted_classes(out.detach()) == yb).sum()
        stats = torch.stack([mean.detach().double() * len(local), right.double()])
        ctx.all_reduce(stats)
        self._labelled += total  # the accuracy's denominator: the global batch, as the count is the global batch's
        return (stats[0] / total).float(), stats[1].round().long()

    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> tuple[list[float], list[float]]:
        """Mean loss and accuracy over all of ``(x, y)``: each rank evaluates its strided shard, then all-reduce."""
        ctx = self.ctx
        xs, ys = x[ctx.rank :: ctx.world_size], y[ctx.rank :: ctx.world_size]
        if len(xs):
            with self.autocast():
                m = evaluate(self.model, xs, ys, self.loss_fn)
        else:
            m = {"loss": 0.0, "acc": 0.0}
        stats = torch.tensor([m["loss"] * len(xs), m["acc"] * len(xs), len(xs)], dtype=torch.float64,
                             device=ctx.device)
        ctx.all_reduce(stats)
        n = max(float(stats[2]), 1.0)
        return [float(stats[0]) / n], [float(stats[1]) / n]


class RankSeeds(Callback):
    """Ranks > 0: reseed torch's global generator (dropout) and the augmentation generator at every epoch start
    from (seed, epoch, rank), so ranks draw different masks and a resumed run draws the same ones. Rank 0 keeps
    its streams (a one-process run's)."""

    def __init__(self, ctx: Context, seed: int):
        self.ctx, self.seed = ctx, seed

    def on_epoch_start(self, state: State) -> None:
        if self.ctx.main:
            return
        s = (self.seed * RANK_SEED_STRIDE + state.epoch) * RANK_SEED_STRIDE + self.ctx.rank
        s %= 2**63 - 1
        torch.manual_seed(s)
        state.learner.aug_generator.manual_seed((s + 1) % (2**63 - 1))


class AgreeStop(Callback):
    """At the end of every epoch, share the stop reasons: if any rank stops (a signal, a guard), all stop with the
    lowest rank's reason. Place it after the callbacks that may stop and before the checkpoint."""

    def __init__(self, ctx: Context):
        self.ctx = ctx

    def on_epoch_end(self, state: State) -> None:
        reasons = [None] * self.ctx.world_size
        try:
            dist.all_gather_object(reasons, (state.stop, state.failure))
        except RuntimeError as exc:
            raise lost(self.ctx, exc, "agreeing on the stop") from None
        for stop, failure in reasons:
            if stop is not None:
                state.stop, state.failure = stop, failure
                break


__all__ = ["AgreeStop", "Context", "DistributedError", "DistributedLearner", "RankSeeds", "convert_sync_bn",
           "launched", "setup", "teardown"]
