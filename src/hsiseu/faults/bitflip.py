"""Single bit flips through the unsigned integer view of a value's own storage.

One function serves every number format the study injects into: an IEEE-754 binary32 weight
(bit 31 sign, 30..23 exponent with 30 its MSB, 22..0 mantissa), an int8 weight (bits 0..7) or an
int32 bias (bits 0..31, two's complement). The bit pattern is XORed in the unsigned view of the
same width, so the result is exactly what a flipped memory cell holds: no arithmetic, no rounding,
and NaN payloads, signed zeros and infinities come out as the hardware would store them.
"""

from __future__ import annotations

import numpy as np

__all__ = ["bit_field", "flip_at", "flip_bit", "flip_bits", "n_bits_of"]

_UNSIGNED = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def n_bits_of(dtype: np.dtype | type) -> int:
    """Storage width in bits of a numeric dtype."""
    dtype = np.dtype(dtype)
    if dtype.itemsize not in _UNSIGNED or dtype.kind not in "fiu":
        raise TypeError(f"cannot flip bits of dtype {dtype}: not a 1/2/4/8-byte int or float")
    return 8 * dtype.itemsize


def flip_bits(values: np.ndarray, bits: np.ndarray | int) -> np.ndarray:
    """A copy of ``values`` with bit ``bits`` (broadcast, 0 = least significant) flipped in each."""
    values = np.asarray(values)
    width = n_bits_of(values.dtype)
    bits = np.asarray(bits, dtype=np.int64)
    if bits.size and (bits.min() < 0 or bits.max() >= width):
        raise ValueError(f"bit positions must be 0..{width - 1} for dtype {values.dtype}, got {bits}")
    utype = _UNSIGNED[values.dtype.itemsize]
    masks = np.left_shift(np.ones_like(bits, dtype=utype), bits.astype(utype))
    raw = np.ascontiguousarray(values).view(utype) ^ masks
    return raw.view(values.dtype)


def flip_bit(value: np.generic | float | int, bit: int, dtype: np.dtype | type = np.float32) -> np.generic:
    """One value with one bit flipped, as a numpy scalar of ``dtype``."""
    return flip_bits(np.asarray([value], dtype=dtype), bit)[0]


def flip_at(values: np.ndarray, index: int, bit: int) -> None:
    """Flip ``bit`` of value ``index`` (flat, C order) of ``values`` in place: how every engine
    puts one fault into its own copy of a tensor (a float weight, the bytes of an int8 model).
    The XOR of :func:`flip_bits` on one element, without its array copies (it runs once per
    fault in every engine's inner loop)."""
    if not values.flags.c_contiguous:
        raise ValueError("flip_at needs a contiguous array to flip in place")
    width = n_bits_of(values.dtype)
    if not 0 <= bit < width:
        raise ValueError(f"bit position must be 0..{width - 1} for dtype {values.dtype}, got {bit}")
    raw = values.reshape(-1).view(_UNSIGNED[values.dtype.itemsize])
    raw[index] ^= raw.dtype.type(1) << raw.dtype.type(bit)


def bit_field(dtype: np.dtype | type, bit: int) -> str:
    """Which field ``bit`` belongs to: sign / exponent / mantissa (floats) or sign / magnitude
    (two's-complement integers: the MSB has weight -2**(n-1)); unsigned ints are all magnitude."""
    dtype = np.dtype(dtype)
    width = n_bits_of(dtype)
    if not 0 <= bit < width:
        raise ValueError(f"bit {bit} outside 0..{width - 1} for dtype {dtype}")
    if dtype.kind == "f":
        mantissa = {16: 10, 32: 23, 64: 52}[width]
        if bit == width - 1:
            return "sign"
        return "exponent" if bit >= mantissa else "mantissa"
    if dtype.kind == "i" and bit == width - 1:
        return "sign"
    return "magnitude"
