"""What a partial last batch of faulty states runs as: padded to the chain end's full batch, a
smaller size of the ladder, or the reference loop.

A chain end hit rarely sees mostly partial batches (one per image chunk and checkpoint chunk),
and padding a few states up to the full size wastes the rest of the call: on the pruned ReLU
model 24 faults at one end ran as 46 slots. Two remedies, each decided on measured times:

- **Ski rental for smaller sizes.** A smaller rung of the ladder wastes less but has to compile
  and earn trust once (its price: what the end's first compile and check took). While a rung is
  not bought, the padding paid for want of it is its rent; once the rent reaches the price the
  rung is bought (compiled and checked; a refused rung passes the rent to the next). A campaign
  so pays at most twice what the better of the two choices would have cost in hindsight, plus
  one batch's padding (the rent is looked at before a batch, not during it: a single batch
  whose padding costs more than a compile is paid in full).
- **Leftovers by the reference loop.** Where ``n`` states cost less as ``n`` passes of the
  reference loop (compiled already, exact by definition) than as one call padded to the full
  size, they go there: at an early chain end one or two states left over would otherwise pay for
  a call of twenty. Both times are measured: the end's fastest full call, the reference's
  fastest fault-free pass.

The decisions change only the time: every size that runs has reproduced the cache, and the
reference loop defines the answers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable

from hsiseu.faults.keras.softmax import next_rung, rung_at_least

__all__ = ["PartialBatches", "smaller_batches"]


def smaller_batches(k: int) -> list[int]:
    """The batch sizes tried below ``k`` where ``k`` does not reproduce the cache, largest
    first: the rungs of the compiled shapes' ladder (:func:`~hsiseu.faults.keras.softmax.next_rung`:
    ..., 16, 12, 8, 6, 4, 3, 2, 1), twice as many as halving tries."""
    out, n = [], 1
    while n < k:
        out.append(n)
        n = next_rung(n)
    return out[::-1]


class PartialBatches:
    """The measured times behind each chain end's partial batches, keyed by what the end's
    compiled shapes depend on (``end``: any hashable key)."""

    def __init__(self) -> None:
        self.price: dict[Hashable, float] = {}  # per end: seconds its first compile and trust check took
        self.rent: Counter[tuple] = Counter()  # per (end, rung): seconds of padding paid for want of the rung
        self.full_call: dict[Hashable, float] = {}  # per end: its fastest call at the full batch size

    def size(self, end: Hashable, n: int, k: int, known: Callable[[int], bool | None],
             buy: Callable[[int], bool]) -> tuple[int, int | None]:
        """Faults per call for ``n`` states at an end whose full batch is ``k``, and the smaller
        rung it rents (pays padding for) if any. ``known(r)``: whether rung ``r`` reproduces the
        cache, None while unchecked; ``buy(r)``: check it now (compiling it), its answer."""
        r = rung_at_least(n)
        while r < k:
            trusted = known(r)
            if trusted is not None:
                if trusted:
                    return r, None
            elif self.rent[(end, r)] >= self.price[end]:
                if buy(r):
                    return r, None
            else:
                return k, r
            r = next_rung(r)
        return k, None

    def cheaper_by_reference(self, end: Hashable, n: int, reference_pass: Callable[[], float]) -> bool:
        """Whether ``n`` states cost less as ``n`` reference passes (``reference_pass()``: the
        fastest fault-free pass's seconds) than as one call at the full size; never before the
        end's full call has been timed."""
        return end in self.full_call and n * reference_pass() < self.full_call[end]

    def ran(self, end: Hashable, k: int, renting: int | None, seconds: float, *, full: bool) -> None:
        """Record a call of the end that took ``seconds``: ``full``, a call at its full batch
        ``k`` (the fastest is what the reference loop and the rungs are weighed against);
        ``renting``, the rung it paid padding for want of, whose rent grows by what the call
        took beyond that rung's share of a full call."""
        if full:
            self.full_call[end] = min(self.full_call.get(end, seconds), seconds)
        if renting is not None:
            self.rent[(end, renting)] += max(0.0, seconds - self.full_call[end] * renting / k)
