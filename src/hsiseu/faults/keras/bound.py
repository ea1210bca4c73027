"""Pixels whose class a fault cannot move, where the chain end feeds the classifier.

Past a segmentation net's last 3x3 layer, a fault in its channel chain changes one channel c of
the classifier's input (a pointwise affine layer: a 1x1 convolution or a dense layer without an
activation, whose outputs are the closing softmax's logits) at most pixels, and most of them by
little: a flipped mantissa bit of a kernel weight moves the channel by parts per million. In
exact arithmetic the logits then move by ``W[c, k] * delta``; the kernel's rounding of each of
the two dot products (fault-free and faulty, C + 1 terms) stays within
``gamma * (sum_i |W[i, k] a[i]| + |b[k]|)`` however the kernel orders and fuses them. Where the
fault-free logits' lead over every other class survives the worst case of both by the softmax
apart's margin (:data:`~hsiseu.faults.keras.classmap.DECIDED_MARGIN`), the faulty logits are
decided for the fault-free class with finite scores, whatever the kernel computes: that pixel
keeps its class, and nothing need run for it. On the default ReLU model 96 % of the pixels a
fault at the last activation changes are such (Sigmoid: 99 %), and a third of those faults
change no other pixel.

The bound is a proof about the backend's arithmetic, not a second implementation of the
layer: nothing here computes a logit that an outcome uses. Its one assumption, that the
backend's classifier rounds as float32 arithmetic does (no bfloat16 or TF32 inside), is checked
on probe rows through the layer's own call before use, and on every cached fault-free logit
of the loaded images; a backend that fails either runs every changed pixel, as before.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np

from hsiseu.faults.keras.classmap import DECIDED_MARGIN

__all__ = ["ClassifierBound", "moved", "pointwise_affine", "safe_moves", "windows"]

_U = 2.0 ** -24  # float32's unit roundoff
_TINY = 2.0 ** -124  # absorbs flushed subnormals, per term
_HUGE = 2.0 ** 100  # logits kept below this: their sum over classes cannot overflow float32
_BLOCK = 16384  # pixels per float64 block of the thresholds


def _rounding(w: np.ndarray, b: np.ndarray, a: np.ndarray, factor: float) -> np.ndarray:
    """``factor`` times the classic bound on the rounding of a float32 dot product of C + 1
    terms in any order, FMA or not (gamma_n = n u / (1 - n u) times sum_i |W_ik a_i| + |b_k|),
    plus room for flushed subnormals; per row (pixel) and class. In float64 (the host's own
    rounding of these sums is 2^-50 of them, which the factor covers)."""
    n = w.shape[0] + 1
    return (factor * n * _U / (1 - n * _U) * (np.abs(a) @ np.abs(w) + np.abs(b))
            + _TINY * (n + np.abs(w).sum(axis=0)))


def _off_float32(w: np.ndarray, b: np.ndarray, a: np.ndarray, got: np.ndarray) -> np.ndarray:
    """Per row, whether the layer's outputs ``got`` for inputs ``a`` stray past float32's
    rounding bound from the exact values (float64 products of float32 values are exact)."""
    with np.errstate(invalid="ignore", over="ignore"):
        exact = a @ w + b
        within = np.abs(got - exact) <= _rounding(w, b, a, 1 + 2.0 ** -20)  # NaN is not
        return ~within.all(axis=1) & np.isfinite(exact).all(axis=1)


def pointwise_affine(layer: keras.layers.Layer) -> bool:
    """Whether ``layer`` is a float32 1x1 convolution (stride 1, no groups, no dilation) or a
    dense layer, with no activation: each output channel an affine function of the same
    pixel's input channels."""
    L = keras.layers
    if getattr(layer, "compute_dtype", None) != "float32" or getattr(layer, "activation", None) is not keras.activations.linear:
        return False
    if type(layer) in (L.Conv1D, L.Conv2D, L.Conv3D):
        return (layer.data_format == "channels_last" and int(layer.groups) == 1
                and all(int(k) == 1 for k in layer.kernel_size) and all(int(s) == 1 for s in layer.strides)
                and all(int(d) == 1 for d in layer.dilation_rate))
    return (type(layer) is L.Dense and not getattr(layer, "lora_enabled", False)
            and getattr(layer, "quantization_mode", None) is None)


def safe_moves(kernel: np.ndarray, bias: np.ndarray, inputs: np.ndarray, logits: np.ndarray,
               classes: np.ndarray) -> np.ndarray:
    """Per input channel c and pixel, float32 thresholds T (C, pixels): a faulty input equal
    to the fault-free one but for channel c, with |faulty - fault-free| < T there, has logits
    that the softmax apart decides for the fault-free class, with finite scores. 0 where no
    move is safe (a tie, a non-finite value, a pixel whose fault-free class the logits do not
    decide), and everywhere when the cached logits themselves stray past float32's rounding.

    For the fault-free class t and every other class j, with m_j the fault-free lead
    z_t - z_j and E_k = gamma S_k + eta_k the rounding bound of logit k (S_k = sum_i
    |W_ik a_i| + |b_k|), a move delta in channel c keeps the lead above the margin
    2^-10 (1 + |z'_t|) while
    |delta| (|W_ct - W_cj| + gamma (|W_ct| + |W_cj|) + 2^-10 (1 + gamma) |W_ct|)
        < m_j - 2 E_t - 2 E_j - 2^-10 (1 + |z_t| + 2 E_t)."""
    channels, n_classes = kernel.shape
    a = inputs.reshape(-1, channels)
    z = logits.reshape(-1, n_classes)
    c = classes.reshape(-1)
    out = np.empty((channels, len(a)), np.float32)
    for lo in range(0, len(a), _BLOCK):  # pixels x C x classes in float64: bounded memory
        block = _safe_block(kernel, bias, a[lo:lo + _BLOCK], z[lo:lo + _BLOCK], c[lo:lo + _BLOCK])
        if block is None:
            return np.zeros_like(out)
        out[:, lo:lo + _BLOCK] = block
    return out


def _safe_block(kernel: np.ndarray, bias: np.ndarray, inputs: np.ndarray, logits: np.ndarray,
                classes: np.ndarray) -> np.ndarray | None:
    """The thresholds of a block of pixels; None when the cached logits themselves stray past
    float32's rounding (the kernel that made them rounds coarser: no bound holds)."""
    channels = kernel.shape[0]
    w, b = kernel.astype(np.float64), bias.astype(np.float64)
    a, z = inputs.astype(np.float64), logits.astype(np.float64)
    if _off_float32(w, b, a, z).any():
        return None
    gamma = 2 * (channels + 1) * _U / (1 - 2 * (channels + 1) * _U)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        err = _rounding(w, b, a, 2.0)
        t = z.argmax(axis=1)
        rows = np.arange(len(z))
        zt, et = z[rows, t], err[rows, t]
        num = zt[:, None] - z - 2 * et[:, None] - 2 * err - DECIDED_MARGIN * (1 + np.abs(zt) + 2 * et)[:, None]
        wt = w[:, t].T  # pixels x C: W[c, t(p)]
        den = (np.abs(wt[:, :, None] - w[None]) + gamma * (np.abs(wt)[:, :, None] + np.abs(w)[None])
               + DECIDED_MARGIN * (1 + gamma) * np.abs(wt)[:, :, None])  # pixels x C x classes
        ratio = np.where(num[:, None, :] > 0, num[:, None, :] / den, 0.0)
        ratio[rows, :, t] = np.inf  # the class itself is no rival
        safe = ratio.min(axis=2)
        # the logits stay far from float32's overflow, so their sum (the decision's finiteness
        # test) stays finite; and the pixel's fault-free class is the one its logits name (a
        # subnormal input that the kernel flushes to zero moves a term by less than eta)
        safe = np.minimum(safe, _HUGE / np.maximum(np.abs(w).max(axis=1), _TINY)[None])
        ok = (np.isfinite(safe) & np.all(np.abs(z) + 2 * err < _HUGE, axis=1)[:, None]
              & (classes == t)[:, None] & np.isfinite(a).all(axis=1)[:, None])
        safe = np.where(ok, safe * (1 - 2.0 ** -20), 0.0).T
    out = safe.astype(np.float32)
    return np.where(out > safe, np.nextafter(out, np.float32(0)), out)  # rounded toward zero


def windows(safe: np.ndarray, gold: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The open intervals (lo, hi), channel-major like ``safe`` (C, ...), that a value of a
    fault-free channel-major state ``gold`` may move in by less than its threshold: gold -/+
    safe, exact in float64 and rounded inward to float32, so that comparing a faulty value
    with them is exact."""
    g, t = gold.astype(np.float64), safe.astype(np.float64)
    with np.errstate(over="ignore"):
        lo, hi = (g - t).astype(np.float32), (g + t).astype(np.float32)
    lo = np.where(lo < g - t, np.nextafter(lo, np.float32(np.inf)), lo)
    hi = np.where(hi > g + t, np.nextafter(hi, np.float32(-np.inf)), hi)
    return lo, hi


def moved(states: np.ndarray, differs: np.ndarray, window: tuple[np.ndarray, np.ndarray],
          c: np.ndarray) -> np.ndarray:
    """Of the values where faulty channel states (K, ...) differ from the fault-free ones,
    those outside their channel's window (:func:`windows`; NaN never inside)."""
    lo, hi = window
    out = np.empty(states.shape, bool)
    inside = np.empty(states.shape[1:], bool)
    above = np.empty(states.shape[1:], bool)
    for r, channel in enumerate(c):
        np.greater(states[r], lo[channel], out=above)
        np.less(states[r], hi[channel], out=inside)
        inside &= above
        np.greater(differs[r], inside, out=out[r])  # differs and not inside
    return out


def probe_rows(kernel: np.ndarray, rows: int, seed: int = 0) -> np.ndarray:
    """Input rows of magnitudes 1e-4 to 1e4, half of them with the first class's products
    cancelling (a sum far below its terms, where a coarser rounding shows most)."""
    rng = np.random.default_rng(seed)
    channels = kernel.shape[0]
    scales = np.geomspace(1e-4, 1e4, 8).repeat(-(-rows // 8))[:rows]
    a = rng.uniform(-1, 1, (rows, channels)) * scales[:, None]
    w0 = kernel[:, 0].astype(np.float64)
    if channels > 1 and np.abs(w0[-1]) > 0:
        cancel = np.arange(rows) % 2 == 0
        a[cancel, -1] = -(a[cancel, :-1] @ w0[:-1]) / w0[-1]
    return a.astype(np.float32)


class ClassifierBound:
    """:func:`safe_moves` for the chain end ``end`` of a :class:`~hsiseu.faults.keras.pixels.PixelTail`
    whose layers are one pointwise affine layer and the softmax apart."""

    def __init__(self, kernel: np.ndarray, bias: np.ndarray, logits: str) -> None:
        self.kernel, self.bias, self.logits = kernel, bias, logits

    @classmethod
    def of(cls, tail, stored: Callable[[keras.Variable], np.ndarray]) -> ClassifierBound | None:
        """One for ``tail`` where it applies and the backend's classifier rounds within the
        float32 bound on the probe rows (``stored`` gives a variable's fault-free value); else
        None."""
        if not tail.split or len(tail.layers) != 2 or not pointwise_affine(tail.layers[0]):
            return None
        layer = tail.layers[0]
        kernel = stored(layer.kernel)
        kernel = kernel.reshape(-1, kernel.shape[-1])
        bias = stored(layer.bias) if layer.use_bias else np.zeros(kernel.shape[1], np.float32)
        bound = cls(kernel, bias, tail.apart.logits)
        return bound if bound.rounds_as_float32(tail.outputs) else None

    def rounds_as_float32(self, run: Callable[[np.ndarray], np.ndarray]) -> bool:
        """Whether ``run`` (host rows -> the layer's outputs) stays within the float32 rounding
        bound on :func:`probe_rows`."""
        a = probe_rows(self.kernel, 256)
        got = run(a).astype(np.float64)
        return not _off_float32(self.kernel.astype(np.float64), self.bias.astype(np.float64), a.astype(np.float64), got).any()

    def windows(self, inputs: np.ndarray, logits: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:func:`windows` of :func:`safe_moves` for the loaded images: (C, N, ...) each, like
        a channel-major state."""
        safe = safe_moves(self.kernel, self.bias, inputs, logits, classes)
        gold = np.moveaxis(inputs, -1, 0).reshape(safe.shape)
        return tuple(w.reshape((len(safe),) + inputs.shape[:-1]) for w in windows(safe, gold))
