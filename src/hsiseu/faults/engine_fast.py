"""The fast engine: same outcomes as the reference engine, bit for bit, at a fraction of the cost.

Exact shortcuts, each either exact by construction or checked against the fault-free run:

1. **Delayed start.** The fault-free activations of every node are cached once; a fault in layer
   L only recomputes L and what lies downstream of it. Skip inputs come from the cache.
2. **One channel at the faulty layer.** A flipped value of a conv kernel, a bias or a BN
   parameter changes one output channel c of its layer. Only that channel is computed (a
   one-filter convolution; ``bias_add`` / BN on one channel), and it stays a single channel
   through per-channel nodes (BN, elementwise activations, pooling, concatenation) until a
   convolution mixes the channels.
3. **Fault dropping.** The faulty tensor is compared with the fault-free one bit for bit (uint32
   views: -0.0 differs from 0.0, NaN payloads count) along the channel chain and after every
   non-convolution node downstream (a convolution's output is practically never restored by the
   convolution itself; the BN / activation after it is checked); an equal tensor means the fault
   is masked there, and its outcome is "no change" without running further.
4. **Batching.** Faults of one parameter set run downstream together: their tensors are stacked
   along the batch axis (faults x images), so each node is one op call for the whole group.
5. **Memo.** Faults whose single faulty channel is bitwise equal at the end of the per-channel
   chain (e.g. NaN everywhere, or saturated sigmoids) have the same downstream, computed once.
   Downstream, a fault whose tensor has become NaN everywhere is keyed by the bits of everything
   still live for it (that tensor and any faulty skip tensor waiting for a concatenation): faults
   with equal keys share one downstream run, within a batch and across batches.
6. **Image chunks** (``image_chunk``). The cache holds one chunk of test images at a time, so
   memory is bounded at paper scale: each ``run`` call passes over the chunks, recomputing a
   chunk's cache once per call, and joins the class maps. Chunking relies on every node giving
   the same bits for a chunk of the batch as for the whole batch; that is checked at start, node
   by node on the real images, and chunking is refused (one chunk) where it does not hold.

Shortcuts 2, 4 and 6 rely on TensorFlow's kernels giving the same bits for a channel slice, a
larger batch or a smaller one as for the fault-free call. That is checked lazily, once per
(node, channel), (node, batch size) and chunk shape, against the fault-free results; where it
does not hold the engine falls back to the full computation at the fault-free shape, which is
exact by determinism. Spatial shortcuts (recomputing only the changed pixels) were measured and
left out: a single-value fault changes 73-99 % of the pixels of every downstream tensor (bounding
box 86-100 %), even for low mantissa bits. ``stats`` counts what happened, for profiling.
"""

from __future__ import annotations

import hashlib
from collections import Counter, OrderedDict
from collections.abc import Iterator, Sequence

import numpy as np

from hsiseu.faults.bitflip import flip_bit
from hsiseu.faults.faultlist import Fault
from hsiseu.faults.keras_executor import LayerGraph, Node
from hsiseu.faults.outcomes import Prediction, classes_from_scores

__all__ = ["FastEngine"]

GOLDEN = Prediction(None, False)  # the answer for a fault proven not to change the output


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.array_equal(a.view(np.uint32), b.view(np.uint32)))


def _chan(x: np.ndarray, c: int) -> np.ndarray:
    return x[..., c : c + 1]


def _digest(state: tuple) -> tuple:
    arr = state[-1]
    h = hashlib.blake2b(np.ascontiguousarray(arr).tobytes(), digest_size=16).digest()
    return (state[0], state[1] if state[0] == "chan" else None, arr.shape, h)


class FastEngine:
    def __init__(self, graph: LayerGraph, x: np.ndarray, batch_size: int = 8, memo_size: int = 4096, *,
                 image_chunk: int | None = None, memo_bytes: int = 256 << 20) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
        if image_chunk is not None and int(image_chunk) < 1:
            raise ValueError(f"image_chunk must be >= 1 or None, got {image_chunk!r}")
        self.graph = graph
        self.batch_size = int(batch_size)
        self.x = np.ascontiguousarray(x, dtype=np.float32)
        self.n_images = int(self.x.shape[0])
        self.memo_size = int(memo_size)
        self.memo_bytes = int(memo_bytes)
        self._memo: OrderedDict[tuple, Prediction] = OrderedDict()
        self._memo_nbytes = 0
        self._checked: dict[tuple, bool] = {}
        self.stats: Counter[str] = Counter()
        self._position = {name: i for i, name in enumerate(graph.order)}
        self._bn = {n: graph.bn_vectors(node, graph.params) for n, node in graph.nodes.items() if node.kind == "bn"}
        chunk = self.n_images if image_chunk is None else min(int(image_chunk), self.n_images)
        self.chunks = [(a, min(a + chunk, self.n_images)) for a in range(0, self.n_images, chunk)]
        self._chunk: int | None = None
        self.scores: np.ndarray | None = None
        if len(self.chunks) > 1 and not self._chunks_exact():
            self.chunks = [(0, self.n_images)]
        if len(self.chunks) == 1:
            self._load(0)
            self.scores = self.cache[graph.output]
            self._check_finite(self.scores)
            self.classes = self._classes
        else:
            self.cache = {}

    @staticmethod
    def _check_finite(scores: np.ndarray) -> None:
        if not np.isfinite(scores).all():
            raise ValueError("the fault-free model output holds NaN or inf; outcomes would be undefined")

    # ----------------------------------------------------------------- chunks

    def _chunks_exact(self) -> bool:
        """Run the whole batch node by node (as the reference engine does) and check that every
        node gives the same bits on each chunk of its inputs; keeps the fault-free class map."""
        g = self.graph
        values: dict[str, np.ndarray] = {g.input: self.x}
        pending = {n: len(node.consumers) for n, node in g.nodes.items()}
        for name in g.order:
            node = g.nodes[name]
            if node.kind == "input":
                continue
            ins = [values[s] for s in node.inputs]
            out, pre = g.apply(node, ins, g.params)
            for a, b in self.chunks:
                part = g.apply(node, [v[a:b] for v in ins], g.params)
                for k, whole in enumerate((out, pre)):
                    if whole is not None and not self._holds(("chunk", name, k, a, b), lambda: part[k], whole[a:b]):
                        return False
            values[name] = out
            for s in node.inputs:
                pending[s] -= 1
                if pending[s] == 0 and s != g.output:
                    del values[s]
        self._check_finite(values[g.output])
        self.classes = classes_from_scores(values[g.output])
        return True

    def _load(self, i: int) -> None:
        """Make chunk ``i``'s fault-free activations the cache (a no-op when they already are)."""
        if self._chunk == i:
            return
        self.cache = {}  # free the previous chunk first
        a, b = self.chunks[i]
        self.cache = self.graph.forward(self.x[a:b], keep_all=True)
        self._classes = classes_from_scores(self.cache[self.graph.output])
        if len(self.chunks) > 1 and not np.array_equal(self._classes, self.classes[a:b]):
            raise AssertionError(f"images {a}:{b}: chunk class map differs from the checked whole-batch one")
        self._n = b - a
        self._chunk = i
        self.stats["chunk_loads"] += 1

    # ----------------------------------------------------------------- checks

    def _holds(self, key: tuple, compute, expected: np.ndarray) -> bool:
        """Whether a shortcut's computation gives the fault-free bits (checked once per key)."""
        ok = self._checked.get(key)
        if ok is None:
            ok = _same_bits(np.ascontiguousarray(compute()), np.ascontiguousarray(expected))
            self._checked[key] = ok
            if not ok:
                self.stats[f"shortcut_refused:{key[0]}"] += 1
        return ok

    # ------------------------------------------------------- faulty channel

    def _faulty_channel(self, fault: Fault) -> tuple[Node, int, np.ndarray]:
        g, cache, n = self.graph, self.cache, self._n
        node = g.nodes[g.layer_of[fault.set]]
        role = g.role_of[fault.set]
        values = g.params[fault.set]
        coords = np.unravel_index(fault.index, values.shape)
        axis = g.channel_axis[fault.set]
        c = int(coords[axis])
        faulty = flip_bit(values.reshape(-1)[fault.index], fault.bit, values.dtype)
        p = node.params
        if node.kind in ("conv", "tconv"):
            x_in = cache[node.inputs[0]]
            pre_gold = cache[f"{node.name}:pre"]
            bias = g.params[p["bias"]] if "bias" in p else None
            if role == "kernel":
                sl = tuple(slice(c, c + 1) if a == axis else slice(None) for a in range(values.ndim))
                k_slice = np.array(values[sl], copy=True)
                if self._holds(("conv_slice", node.name, c, n), lambda: g.conv(node, x_in, np.ascontiguousarray(values[sl])), _chan(pre_gold, c)):
                    k_slice[tuple(0 if a == axis else coords[a] for a in range(values.ndim))] = faulty
                    pre_c = g.conv(node, x_in, k_slice)
                else:
                    kernel = values.copy()
                    kernel.reshape(-1)[fault.index] = faulty
                    pre_c = np.ascontiguousarray(_chan(g.conv(node, x_in, kernel), c))
                bias_c = bias[c : c + 1] if bias is not None else None
            else:  # bias
                pre_c = np.ascontiguousarray(_chan(pre_gold, c))
                bias_c = np.array([faulty], dtype=values.dtype)
            if bias_c is None:
                return node, c, pre_c
            if self._holds(("bias_slice", node.name, c, n), lambda: g.bias_add(np.ascontiguousarray(_chan(pre_gold, c)), bias[c : c + 1]), _chan(cache[node.name], c)):
                return node, c, g.bias_add(pre_c, bias_c)
            full_bias = bias.copy()
            full_bias[c] = bias_c[0]
            full_pre = pre_gold.copy()
            full_pre[..., c : c + 1] = pre_c
            return node, c, np.ascontiguousarray(_chan(g.bias_add(full_pre, full_bias), c))
        if node.kind == "bn":
            params = dict(g.params)
            vec = values.copy()
            vec[fault.index] = faulty
            params[fault.set] = vec
            scale, offset = g.bn_vectors(node, params)
            x_in = cache[node.inputs[0]]
            gs, go = self._bn[node.name]
            if self._holds(("bn_slice", node.name, c, n), lambda: g.bn(np.ascontiguousarray(_chan(x_in, c)), gs[c : c + 1], go[c : c + 1]), _chan(cache[node.name], c)):
                return node, c, g.bn(np.ascontiguousarray(_chan(x_in, c)), scale[c : c + 1], offset[c : c + 1])
            return node, c, np.ascontiguousarray(_chan(g.bn(x_in, scale, offset), c))
        raise ValueError(f"parameter set {fault.set} of node kind {node.kind} is not injectable")

    def _channel_through(self, node: Node, c: int, x_c: np.ndarray) -> np.ndarray:
        """A per-channel node applied to one faulty channel of its (only) input."""
        g, cache = self.graph, self.cache
        src = node.inputs[0]
        if node.kind == "bn":
            scale, offset = self._bn[node.name]
            fn = lambda t: g.bn(t, scale[c : c + 1], offset[c : c + 1])  # noqa: E731
        else:
            fn = lambda t: g.elementwise(node, t)  # noqa: E731
        if self._holds(("channel", node.name, c, self._n), lambda: fn(np.ascontiguousarray(_chan(cache[src], c))), _chan(cache[node.name], c)):
            return fn(x_c)
        full = cache[src].copy()
        full[..., c : c + 1] = x_c
        out, _ = g.apply(node, [full], g.params)
        return np.ascontiguousarray(_chan(out, c))

    # ------------------------------------------------------------- running

    def run(self, faults: Sequence[Fault]) -> Iterator[Prediction]:
        if len(self.chunks) == 1:
            self._load(0)
            yield from self._run_chunk(faults)
            return
        parts: list[list[Prediction]] = []
        for i in range(len(self.chunks)):
            self._load(i)
            parts.append(list(self._run_chunk(faults)))
        for per_chunk in zip(*parts):
            if all(p.classes is None for p in per_chunk):
                yield GOLDEN
                continue
            classes = np.concatenate([self.classes[a:b] if p.classes is None else p.classes
                                      for p, (a, b) in zip(per_chunk, self.chunks)])
            yield Prediction(classes, any(p.nonfinite for p in per_chunk))

    def _run_chunk(self, faults: Sequence[Fault]) -> Iterator[Prediction]:
        i = 0
        while i < len(faults):
            j = i + 1
            while j < len(faults) and j - i < self.batch_size and faults[j].set == faults[i].set:
                j += 1
            yield from self._run_group(faults[i:j])
            i = j

    def _predict(self, out: np.ndarray) -> Prediction:
        return Prediction(classes_from_scores(out), not bool(np.isfinite(out).all()))

    def _remember(self, key: tuple, pred: Prediction) -> None:
        if key in self._memo:
            return
        self._memo[key] = pred
        self._memo_nbytes += 0 if pred.classes is None else pred.classes.nbytes
        while self._memo and (len(self._memo) > self.memo_size or self._memo_nbytes > self.memo_bytes):
            _, old = self._memo.popitem(last=False)
            self._memo_nbytes -= 0 if old.classes is None else old.classes.nbytes

    def _recall(self, key: tuple) -> Prediction | None:
        pred = self._memo.get(key)
        if pred is not None:
            self._memo.move_to_end(key)
        return pred

    def _run_group(self, faults: Sequence[Fault]) -> list[Prediction]:
        g, cache = self.graph, self.cache
        results: list[Prediction | None] = [None] * len(faults)
        # states[node][j] for fault j: ("chan", c, array) or ("full", array); absent = golden
        states: dict[str, dict[int, tuple]] = {}
        start: Node | None = None
        waiting: dict[tuple, list[int]] = {}
        for j, fault in enumerate(faults):
            self.stats["faults"] += 1
            node, c, x_c = self._faulty_channel(fault)
            # follow single-consumer per-channel nodes: the state there decides everything after
            end = node
            while True:
                if _same_bits(x_c, _chan(cache[end.name], c)):
                    x_c = None
                    break
                nxt = [g.nodes[n] for n in end.consumers]
                if len(nxt) != 1 or not nxt[0].per_channel or end.name == g.output:
                    break
                end = nxt[0]
                x_c = self._channel_through(end, c, x_c)
            if x_c is None:
                self.stats["masked_in_faulty_layer"] += 1
                results[j] = GOLDEN
                continue
            key = (self._chunk, end.name, c, x_c.shape, hashlib.blake2b(x_c.tobytes(), digest_size=16).digest())
            known = self._recall(key)
            if known is not None:
                self.stats["memo_hits"] += 1
                results[j] = known
                continue
            if key in waiting:
                self.stats["memo_hits"] += 1
                waiting[key].append(j)
                continue
            waiting[key] = [j]
            states.setdefault(end.name, {})[j] = ("chan", c, x_c)
            if start is not None and start is not end:
                raise AssertionError(f"faults of one set end their channel chains at {start.name} and {end.name}")
            start = end
        if waiting:
            final = self._downstream(start, states)
            for key, members in waiting.items():
                pred = final.get(members[0], GOLDEN)
                if pred is GOLDEN:
                    self.stats["masked_downstream"] += 1
                for j in members:
                    results[j] = pred
                self._remember(key, pred)
        return [r if r is not None else GOLDEN for r in results]

    def _materialize(self, src: str, state: tuple | None) -> np.ndarray:
        gold = self.cache[src]
        if state is None:
            return gold
        if state[0] == "full":
            return state[1]
        _, c, x_c = state
        out = gold.copy()
        out[..., c : c + 1] = x_c
        return out

    def _downstream(self, start: Node, states: dict[str, dict[int, tuple]]) -> dict[int, Prediction]:
        """Propagate the faulty states from ``start`` (exclusive) to the output."""
        g, cache = self.graph, self.cache
        pending = {name: len(g.nodes[name].consumers) for name in states}
        known: dict[int, Prediction] = {}  # faults answered by the memo on the way
        follows: dict[int, int] = {}  # fault -> an earlier fault of the batch with the same key
        leaders: dict[tuple, int] = {}
        keys_of: dict[int, list[tuple]] = {}
        for name in g.order[self._position[start.name] + 1 :]:
            node = g.nodes[name]
            active = sorted({j for s in node.inputs for j in states.get(s, {})})
            if active:
                out_states: dict[int, tuple] = {}
                batch: list[int] = []
                for j in active:
                    ins = [states.get(s, {}).get(j) for s in node.inputs]
                    faulty = [(k, st) for k, st in enumerate(ins) if st is not None]
                    if len(faulty) == 1 and faulty[0][1][0] == "chan" and (node.per_channel or node.kind == "cat"):
                        k, (_, c, x_c) = faulty[0]
                        if node.kind == "cat":
                            c = c + sum(cache[s].shape[-1] for s in node.inputs[:k])
                        else:
                            x_c = self._channel_through(node, c, x_c)
                            if _same_bits(x_c, _chan(cache[name], c)):
                                continue
                        out_states[j] = ("chan", c, x_c)
                    else:
                        batch.append(j)
                if batch:
                    outs = self._full(node, batch, states)
                    check = node.kind not in ("conv", "tconv", "cat") or name == g.output
                    if check:
                        gold = cache[name].view(np.uint32)
                        same = (outs.view(np.uint32) == gold).reshape(len(batch), -1).all(axis=1)
                    else:
                        same = np.zeros(len(batch), bool)
                    for j, out, masked in zip(batch, outs, same):
                        if masked:
                            continue
                        if check and name != g.output and np.isnan(out.flat[0]) and np.isnan(out).all():
                            key = self._live_key(node, j, out, states, pending)
                            hit = self._recall(key)
                            if hit is not None or key in leaders:
                                self.stats["nan_memo_hits"] += 1
                                if hit is not None:
                                    known[j] = hit
                                else:
                                    follows[j] = leaders[key]
                                for st in states.values():
                                    st.pop(j, None)
                                continue
                            leaders[key] = j
                            keys_of.setdefault(j, []).append(key)
                        out_states[j] = ("full", out)
                self.stats[f"node_faults:{name}"] += len(active)
                if out_states:
                    states[name] = out_states
                    pending[name] = len(node.consumers)
            for s in node.inputs:
                if s in pending:
                    pending[s] -= 1
                    if pending[s] == 0:
                        del pending[s]
                        states.pop(s, None)
        final = {j: self._predict(self._materialize(g.output, st)) for j, st in states.get(g.output, {}).items()}

        def answer(j: int) -> Prediction:
            while j in follows:
                j = follows[j]
            return known[j] if j in known else final.get(j, GOLDEN)

        for j in list(known) + list(follows):
            final[j] = answer(j)
        for j, keys in keys_of.items():
            for key in keys:
                self._remember(key, answer(j))
        return final

    def _live_key(self, node: Node, j: int, out: np.ndarray, states: dict[str, dict[int, tuple]],
                  pending: dict[str, int]) -> tuple:
        """What decides fault ``j``'s outcome after ``node``: its new tensor and every faulty tensor
        of it that a later node still reads (skip connections)."""
        live = [(node.name, _digest(("full", out)))]
        for s, st in states.items():
            if j in st and pending.get(s, 0) - node.inputs.count(s) > 0:
                live.append((s, _digest(st[j])))
        return (self._chunk, "live", node.name, tuple(sorted(live)))

    def _full(self, node: Node, batch: list[int], states: dict[str, dict[int, tuple]]) -> np.ndarray:
        """A channel-mixing node for several faults at once: one op on faults x images."""
        g, cache = self.graph, self.cache
        k = len(batch)
        self.stats["full_node_runs"] += 1
        self.stats["full_node_faults"] += k
        if k > 1:
            batched_ok = self._holds(
                ("batch", node.name, k, self._n),
                lambda: g.apply(node, [np.concatenate([cache[s]] * k) for s in node.inputs], g.params)[0],
                np.concatenate([cache[node.name]] * k),
            )
        else:
            batched_ok = True
        if batched_ok:
            inputs = [self._stack(s, batch, states.get(s, {})).reshape(k * self._n, *cache[s].shape[1:])
                      for s in node.inputs]
            out, _ = g.apply(node, inputs, g.params)
            return out.reshape(k, self._n, *out.shape[1:])
        return np.stack([
            g.apply(node, [self._materialize(s, states.get(s, {}).get(j)) for s in node.inputs], g.params)[0]
            for j in batch
        ])

    def _stack(self, src: str, batch: list[int], src_states: dict[int, tuple]) -> np.ndarray:
        """(faults, images, ...) input of ``src`` for a batch: fault-free rows with the faulty
        channels or tensors written over them, in one pass over memory."""
        gold = self.cache[src]
        arr = np.empty((len(batch), *gold.shape), dtype=gold.dtype)
        for r, j in enumerate(batch):
            st = src_states.get(j)
            if st is not None and st[0] == "full":
                arr[r] = st[1]
                continue
            arr[r] = gold
            if st is not None:
                _, c, x_c = st
                arr[r, ..., c : c + 1] = x_c
        return arr
