"""Table III (IoU of the int8 models) and Table IV (deployment), in the paper's shape plus the
rows that say how far the int8 models are from their float originals."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import pandas as pd

from hsiseu.deployment import PAPER_KV260, deployment_table_from_files, paper_dpu_efficiency
from hsiseu.io import read_json
from hsiseu.reporting.tables import iou_table, write_table
from hsiseu.quantization.interpreter import KERNEL_LABELS, kernels_of
from hsiseu.activations import af_label

__all__ = ["int8_iou_table", "write_table3", "write_table4"]


def int8_iou_table(metrics_by_af: Mapping[str, Mapping[str, Any]], split: str = "test") -> pd.DataFrame:
    """Per-class, Global and Weighted IoU of the int8 models, then the float (pruned) models'
    Global and Weighted IoU and the int8/float pixel agreement, all in %."""
    table = iou_table(metrics_by_af, split)
    extra = {}
    for af, m in metrics_by_af.items():
        extra[af_label(af)] = {
            "Global (float)": m["float"][split]["global_iou"],
            "Weighted (float)": m["float"][split]["weighted_iou"],
            "Agreement with float": m["agreement"][split],
        }
    return pd.concat([table, pd.DataFrame(extra).astype(float).round(2)])


def _recovery_note(metrics_by_af: Mapping[str, Mapping[str, Any]]) -> str:
    parts = []
    for af, m in metrics_by_af.items():
        r = m["recovery"]
        label = af_label(af)
        if not r["applied"]:
            parts.append(f"{label}: not applied (method {r['method']}, validation GIoU drop "
                         f"{r['validation_drop']:.2f} <= {r['min_drop']:.2f})")
        else:
            b, a = r["before"]["test"], r["after"]["test"]
            parts.append(f"{label}: {r['method']} test GIoU {b['global_iou']:.2f} -> {a['global_iou']:.2f}, "
                         f"WIoU {b['weighted_iou']:.2f} -> {a['weighted_iou']:.2f} "
                         f"agreement {b['agreement']:.2f} -> {a['agreement']:.2f} % "
                         f"({'kept' if r['kept'] else 'discarded: no closer to float on validation'})")
    return "Accuracy recovery: " + "; ".join(parts) + "."


def write_table3(paths_by_af: Mapping[str, str | os.PathLike[str]], csv: str, md: str) -> pd.DataFrame:
    metrics = {af: read_json(p) for af, p in paths_by_af.items()}
    table = int8_iou_table(metrics)
    ops = "; ".join(f"{af_label(af)}: " + ", ".join(f"{k} x{v}" for k, v in m["ops"].items())
                    for af, m in metrics.items())
    write_table(
        table, csv, md,
        title=f"Table III: IoU (%) of the pruned full-int8 models on the test split (LiteRT, {kernels_of(metrics)} kernels)",
        notes=[
            f"Kernels: {KERNEL_LABELS[kernels_of(metrics)]} (config quantization.kernels), the same for "
            "int8 evaluation, throughput and fault injection.",
            "Agreement with float: % of test pixels the int8 model gives the same class as the "
            "float pruned model it was quantized from.",
            _recovery_note(metrics),
            f"Integer-only graphs (int8 activations and weights, int32 biases); operators: {ops}.",
        ],
    )
    return table


def write_table4(paths_by_af: Mapping[str, str | os.PathLike[str]], deployment: Mapping[str, Any],
                 csv: str, md: str) -> pd.DataFrame:
    table = deployment_table_from_files(paths_by_af, deployment)
    kernels = kernels_of({af: read_json(p) for af, p in paths_by_af.items()})
    opc, clock = int(deployment["dpu_ops_per_cycle"]), float(deployment["dpu_clock_mhz"]) * 1e6
    implied = ", ".join(f"{af_label(af)} {paper_dpu_efficiency(af, ops_per_cycle=opc, clock_hz=clock):.3f}"
                        for af in PAPER_KV260 if af in paths_by_af)
    write_table(
        table, csv, md,
        title="Table IV: deployment characterization of the pruned int8 models",
        notes=[
            f"LiteRT: {KERNEL_LABELS[kernels]} (config quantization.kernels, as for evaluation and "
            "fault injection); Keras: the float32 pruned model. FPS = repeated inferences of one "
            "test image after a warm-up run.",
            f"DPU estimate: {opc} ops/cycle x {deployment['dpu_clock_mhz']} MHz x efficiency "
            f"{deployment['dpu_efficiency']} / (2 x MACs per frame). Efficiencies implied by the "
            f"paper's own FPS and OPS (Tables II, IV): {implied}. A model with sigmoid activations "
            "(LOGISTIC) runs them on the CPU (not supported by the DPU): its estimate leaves that "
            "time out and is an upper bound (the paper measured 0.59 FPS*).",
            "Power and energy: no meter on this machine (ours: not measured); the paper's KV260 "
            "figures (INA260 sensor, energy = power / FPS) are given for reference. "
            "*Activation runs on CPU (paper).",
        ],
    )
    return table
