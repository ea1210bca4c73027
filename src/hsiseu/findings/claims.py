"""The paper's claims, in one place: what each says, what the paper shows for it, which statistic
answers it, and the value one replicate gives.

A claim is one row of the findings table. Each has an ``id`` (``base[qualifier]``, the qualifier
naming the AF, or the AF pair, or AF/stage), the ``claim`` in words, ``paper`` (what the paper
states, quoted, with its figure or table), the ``statistic`` (a name of
:data:`hsiseu.faults.stats.aggregate.STATISTICS`, or of :data:`OTHER_STATISTICS`), the
``measure`` (how one replicate's value is computed from it), and a ``direction`` and
``threshold``: the claim holds when the value over replicates is ``>`` (or ``<``) the threshold.
Where the paper compares AFs, one row per pair; where it says "for each AF", one row per AF of
the run. A claim that names an AF the run does not have (``sigmoid``, ``hard_sigmoid`` or
``relu``) is left out.

Which statistic for which question (docs/statistics.md): the paper's Figs. 3, 5, 8 compare the
*mean over parameter sets* (``set_mean``), so the rows that restate those figures use it; "which
model errs less after a random soft error in its parameters" is the *network-wise rate*
(``network_rate``), used for the conclusion on quantization and added beside the float AF
comparison. Per-bit and per-kind questions restrict these (``bits=``, ``kinds=``).

Central layers (Figs. 4, 6: "the last layers of the encoder, the base, and the first layers of
the decoder"): the layers whose rank in graph order (by the ``order`` of their first set in
``parameter_sets.csv``), counted from 0 among the model's L layers, is in [L/4, 3L/4): the middle
half of the network in the order data flows through it, which holds the deepest levels of the
U-Net. Their sets (kernel, bias, gamma, beta) enter the correlation of the bit-30 error rate
with the share of values in 1 < |x| < 2; it is computed per AF and stage (original, pruned), each
replicate's r one value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from hsiseu.activations import af_label
from hsiseu.faults.stats.aggregate import STATISTICS, network_rate, per_set_mean, set_mean
from hsiseu.findings.models import Model

__all__ = ["OTHER_STATISTICS", "Claim", "central_sets", "claims", "statistic_label"]

#: one replicate's models, by (af, stage)
Models = Mapping[tuple[str, str], Model]
Value = Callable[[Models], float]

#: statistics of the findings that are not error rates.
OTHER_STATISTICS: dict[str, str] = {
    "global_iou": "Global IoU on the test split",
    "weighted_iou": "Weighted IoU on the test split",
    "pearson_r": "Pearson correlation over the central layers' sets",
}
MSB = 30
RELU, SIGMOID, HARD_SIGMOID = "relu", "sigmoid", "hard_sigmoid"
BOUNDED = (SIGMOID, HARD_SIGMOID)


def statistic_label(name: str) -> str:
    """What a statistic's name means, for captions and table notes."""
    if name in STATISTICS:
        return STATISTICS[name].label
    return OTHER_STATISTICS[name]


@dataclass(frozen=True)
class Claim:
    """One row of the findings table (module docstring). ``needs`` lists the (af, stage) models
    a replicate must have; ``value`` computes the replicate's value from them."""

    id: str
    claim: str
    paper: str
    statistic: str
    measure: str
    unit: str
    direction: str
    threshold: float
    needs: tuple[tuple[str, str], ...]
    value: Value

    @property
    def afs(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(af for af, _ in self.needs))


# --- per-replicate values -------------------------------------------------------------------------

def _cells(models: Models, af: str, stage: str) -> pd.DataFrame:
    return models[(af, stage)].need("cells")


def _stat(name: str, af: str, stage: str, **restrict) -> Value:
    function = STATISTICS[name].function

    def value(models: Models) -> float:
        return float(function(_cells(models, af, stage), **restrict)["mean"])  # type: ignore[index]
    return value


def _minus(a: Value, b: Value) -> Value:
    return lambda models: a(models) - b(models)


def _msb_margin(af: str, stage: str) -> Value:
    """network-wise rate given bit 30 minus the largest network-wise rate given another bit."""
    def value(models: Models) -> float:
        cells = _cells(models, af, stage)
        bits = sorted(set(cells["bit"].astype(int)))
        if MSB not in bits or len(bits) < 2:
            return float("nan")
        rates = {b: network_rate(cells, bits=[b])["mean"] for b in bits}
        others = [r for b, r in rates.items() if b != MSB and not np.isnan(r)]
        return float(rates[MSB] - max(others)) if others else float("nan")
    return value


def _kind_margin(af: str, stage: str, kind: str) -> Value:
    """mean over the ``kind`` sets of their per-set means minus the largest such mean of
    another kind."""
    def value(models: Models) -> float:
        cells = _cells(models, af, stage)
        kinds = sorted(set(cells["kind"]))
        if kind not in kinds or len(kinds) < 2:
            return float("nan")
        means = {k: set_mean(cells, kinds=[k])["mean"] for k in kinds}
        others = [m for k, m in means.items() if k != kind and not np.isnan(m)]
        return float(means[kind] - max(others)) if others else float("nan")
    return value


def central_sets(sets: pd.DataFrame) -> list[str]:
    """The sets of the central layers (module docstring) of a ``parameter_sets.csv`` table."""
    first = sets.groupby("layer")["order"].min().sort_values()
    n = len(first)
    rank = pd.Series(np.arange(n), index=first.index)
    central = rank[(rank >= n / 4) & (rank < 3 * n / 4)].index
    return sets.loc[sets["layer"].isin(central)].sort_values("order")["name"].tolist()


def _msb_share_r(af: str, stage: str) -> Value:
    """Pearson r, over the central layers' sets, of the bit-30 error rate and the share of
    values in 1 < |x| < 2 (NaN when either is constant or fewer than 3 sets)."""
    def value(models: Models) -> float:
        model = models[(af, stage)]
        cells, sets = model.need("cells"), model.need("sets")
        names = central_sets(sets)
        msb = per_set_mean(cells, bits=[MSB])["mean"].reindex(names)
        share = sets.set_index("name")["share_1_2"].reindex(names)
        ok = msb.notna() & share.notna()
        x, y = msb[ok].to_numpy(dtype=np.float64), share[ok].to_numpy(dtype=np.float64)
        if len(x) < 3 or np.std(x) == 0 or np.std(y) == 0:
            return float("nan")
        return float(np.corrcoef(x, y)[0, 1])
    return value


def _iou(af: str, stage: str, key: str, split: str = "test") -> Value:
    return lambda models: float(models[(af, stage)].need("metrics")[split][key])


# --- the registry ----------------------------------------------------------------------------------

_FIG3 = ("Fig. 3, Sec. III-A: \"The error rates are smaller for the DNNs with squashed AFs, especially in the "
         "kernel/bias parameters of the Conv2D layers\"")
_FIG3_HS = "Fig. 3, Sec. III-A: \"The Hard-Sigmoid-based model exhibits the highest level of robustness.\""
_FIG2_MSB = ("Fig. 2, Sec. III-A: \"the most sensitive bit is the MSB bit of the exponent as it is originally a '0' "
             "in most of the DNNs parameters\"")
_FIG2_MANT = ("Fig. 2: \"Only sign and exponent bits are shown because perturbations in mantissa bits generate a "
              "negligible amount of errors.\"")
_FIG2_GAMMA = ("Fig. 2, Sec. III-A: \"the most sensitive parameter is the gamma set of Batch Normalization layers as "
               "it usually has a value near 1\"")
_FIG4 = ("Fig. 4: \"the MSB bit-flip errors in the central area of the U-Net [...] mainly occur because of the MSB "
         "bit-flip of the parameters which are in the 1 < |x| < 2 interval\"")
_FIG6 = ("Fig. 6: \"almost all errors in the central region are due to this kind of bit-flips\" (values in "
         "1 < |x| < 2)")
_FIG5 = ("Figs. 3 vs 5, Sec. III-B: \"From the comparison between Fig. 3 and Fig. 5 it can be concluded that the error "
         "rate has augmented after the DNNs have been pruned.\"")
_FIG5_SIG = ("Fig. 5, Sec. III-B: \"the Sigmoid-based DNN now exhibits the highest robustness, surpassing the "
             "Hard-Sigmoid in terms of mean bit-flip error rate (as indicated by the black bar in Fig. 5)\"")
_FIG7 = ("Fig. 7, Sec. III-C: \"in this case only the biases are sensitive parameters\"")
_FIG8 = ("Fig. 8, Sec. III-C: \"bounded ones consistently offer greater robustness to the model as depicted in "
         "Fig. 8\"")
_CONCL = ("Sec. V: \"For pruned and quantized integer models, the inherent binary representation prevents the "
          "occurrence of NaNs or infinities, significantly reducing the error rate\"; Sec. III-C: \"the overall "
          "proportion of sensitive parameters is much smaller than in the nonquantized model\"")
_TABLE1 = ("Table I: test Global IoU 94.71 (ReLU), 93.32 (Sigmoid), 92.02 (Hard Sigmoid); Sec. V: \"the ReLU-based "
           "model achieved the best results\"")
_DROP = ("Sec. II-B: \"To consider pruning as valid, a maximum degradation of 1.5 points in both GIoU and WIoU has "
         "been accepted\"")


def _rate_diff(name: str, a: str, stage_a: str, b: str, stage_b: str) -> tuple[str, Value]:
    measure = f"{name}({af_label(a)}, {stage_a}) - {name}({af_label(b)}, {stage_b})"
    return measure, _minus(_stat(name, a, stage_a), _stat(name, b, stage_b))


def claims(afs: Sequence[str], *, heatmap_af: str | None = None, negligible_rate: float = 1.0,
           max_drop: float = 1.5) -> list[Claim]:
    """The paper's claims that the run's ``afs`` can answer, in the table's order.

    ``heatmap_af``: the AF of the single-AF claims (Figs. 2, 7; default the first of ``afs``);
    ``negligible_rate``: the network-wise rate (%) below which mantissa flips count as
    negligible; ``max_drop``: the IoU points pruning may cost (the paper's 1.5)."""
    afs = list(afs)
    hm = heatmap_af or afs[0]
    if hm not in afs:
        raise ValueError(f"heatmap_af {hm!r} is not one of the run's AFs {afs}")
    out: list[Claim] = []

    def add(id_: str, claim: str, paper: str, statistic: str, measure: str, unit: str, direction: str,
            threshold: float, needs: Sequence[tuple[str, str]], value: Value) -> None:
        if all(af in afs for af, _ in needs):
            out.append(Claim(id_, claim, paper, statistic, measure, unit, direction, float(threshold),
                             tuple(needs), value))

    L = af_label
    # Fig. 3: original float models, bounded AFs below ReLU, Hard Sigmoid the lowest
    for bounded in BOUNDED:
        measure, value = _rate_diff("set_mean", RELU, "original", bounded, "original")
        add(f"bounded_below_relu_float[{bounded}]", f"Original float models: {L(bounded)} has a lower mean error "
            "rate over parameter sets than ReLU", _FIG3, "set_mean", measure, "points (%)", ">", 0,
            [(RELU, "original"), (bounded, "original")], value)
    measure, value = _rate_diff("set_mean", SIGMOID, "original", HARD_SIGMOID, "original")
    add("hard_sigmoid_lowest_float[sigmoid]", "Original float models: Hard Sigmoid has a lower mean error rate over "
        "parameter sets than Sigmoid (with the rows above: the lowest)", _FIG3_HS, "set_mean", measure, "points (%)",
        ">", 0, [(SIGMOID, "original"), (HARD_SIGMOID, "original")], value)
    for bounded in BOUNDED:
        measure, value = _rate_diff("network_rate", RELU, "original", bounded, "original")
        add(f"bounded_below_relu_float_network[{bounded}]", f"Original float models: a random bit flip in parameter "
            f"memory errs less often in the {L(bounded)} model than in the ReLU one",
            _FIG3 + " (the paper shows the mean over parameter sets only)", "network_rate", measure, "points (%)",
            ">", 0, [(RELU, "original"), (bounded, "original")], value)
    # Fig. 2: the heatmap AF's original model
    add(f"exponent_msb_most_sensitive[{hm}]", f"{L(hm)} original model: a flip of the exponent MSB (bit 30) errs "
        "more often than a flip of any other bit", _FIG2_MSB, "network_rate",
        "network_rate(bit 30) - max over other bits b of network_rate(bit b)", "points (%)", ">", 0,
        [(hm, "original")], _msb_margin(hm, "original"))
    add(f"mantissa_negligible[{hm}]", f"{L(hm)} original model: mantissa flips are negligible (network-wise rate "
        f"of a flip in bits 22..0 below {negligible_rate:g} %)", _FIG2_MANT, "network_rate",
        "network_rate(bits 22..0)", "%", "<", negligible_rate, [(hm, "original")],
        _stat("network_rate", hm, "original", bits=range(23)))
    add(f"gamma_most_sensitive[{hm}]", f"{L(hm)} original model: BatchNorm gamma is the most sensitive kind of "
        "parameter set", _FIG2_GAMMA, "set_mean", "set_mean(gamma sets) - max over other kinds k of set_mean(k sets)",
        "points (%)", ">", 0, [(hm, "original")], _kind_margin(hm, "original", "gamma"))
    # Figs. 4, 6: MSB errors of the central layers follow the share of values in 1 < |x| < 2
    for stage, paper in (("original", _FIG4), ("pruned", _FIG6)):
        for af in afs:
            add(f"msb_follows_share_1_2[{af}/{stage}]", f"{L(af)} {stage} model: over the central layers' sets, "
                "the bit-30 error rate rises with the share of values in 1 < |x| < 2", paper, "pearson_r",
                "Pearson r over central sets of per_set_mean(bit 30) and share_1_2", "r", ">", 0,
                [(af, stage)], _msb_share_r(af, stage))
    # Figs. 3 vs 5: pruning raises the error rate; after pruning Sigmoid the most robust
    for af in afs:
        measure, value = _rate_diff("set_mean", af, "pruned", af, "original")
        add(f"pruning_raises_error[{af}]", f"{L(af)}: pruning raises the mean error rate over parameter sets",
            _FIG5, "set_mean", measure, "points (%)", ">", 0, [(af, "original"), (af, "pruned")], value)
    for other in afs:
        if other == SIGMOID:
            continue
        measure, value = _rate_diff("set_mean", other, "pruned", SIGMOID, "pruned")
        add(f"sigmoid_most_robust_pruned[{other}]", f"Pruned float models: Sigmoid has a lower mean error rate over "
            f"parameter sets than {L(other)}", _FIG5_SIG, "set_mean", measure, "points (%)", ">", 0,
            [(other, "pruned"), (SIGMOID, "pruned")], value)
    # Figs. 7, 8: int8 models
    add(f"int8_biases_carry_errors[{hm}]", f"{L(hm)} int8 model: bias sets err more than kernel sets",
        _FIG7, "set_mean", "set_mean(bias sets) - set_mean(kernel sets)", "points (%)", ">", 0,
        [(hm, "quantized")], _minus(_stat("set_mean", hm, "quantized", kinds=["bias"]),
                                    _stat("set_mean", hm, "quantized", kinds=["kernel"])))
    for bounded in BOUNDED:
        measure, value = _rate_diff("set_mean", RELU, "quantized", bounded, "quantized")
        add(f"bounded_below_relu_int8[{bounded}]", f"int8 models: {L(bounded)} has a lower mean error rate over "
            "parameter sets than ReLU", _FIG8, "set_mean", measure, "points (%)", ">", 0,
            [(RELU, "quantized"), (bounded, "quantized")], value)
    # Conclusions: quantization lowers the rate of a random bit flip in parameter memory
    for af in afs:
        measure, value = _rate_diff("network_rate", af, "pruned", af, "quantized")
        add(f"quantization_lowers_network_rate[{af}]", f"{L(af)}: a random bit flip in parameter memory errs less "
            "often in the int8 model than in the pruned float one", _CONCL, "network_rate", measure, "points (%)",
            ">", 0, [(af, "pruned"), (af, "quantized")], value)
    # Table I and the acceptance rule
    for other in afs:
        if other == RELU:
            continue
        add(f"relu_best_float_iou[{other}]", f"Original float models: ReLU has a higher test Global IoU than "
            f"{L(other)}", _TABLE1, "global_iou", f"global_iou(ReLU, original) - global_iou({L(other)}, original)",
            "points", ">", 0, [(RELU, "original"), (other, "original")],
            _minus(_iou(RELU, "original", "global_iou"), _iou(other, "original", "global_iou")))
    for key, short in (("global_iou", "Global"), ("weighted_iou", "Weighted")):
        for af in afs:
            add(f"pruning_{key}_drop_within[{af}]", f"{L(af)}: pruning costs less than {max_drop:g} points of test "
                f"{short} IoU", _DROP, key, f"{key}(original) - {key}(pruned)", "points", "<", max_drop,
                [(af, "original"), (af, "pruned")],
                _minus(_iou(af, "original", key), _iou(af, "pruned", key)))
    return out
