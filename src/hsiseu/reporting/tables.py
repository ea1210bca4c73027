"""Tables I-IV of the paper, written as CSV (for machines) and Markdown (for people), with their
titles and notes: one module per artifact kind, whatever the number format of the models.

- Table I / III: classes (then Global and Weighted) as rows, AFs as columns; Table III adds the
  float models' IoU and the int8 / float pixel agreement.
- Table II: size and cost of the original model and each AF's pruned model. Rows as in the
  paper: Params (M), OPS (G) (2 x MACs of the convolutions, ``hsiseu.model.complexity``), Memory
  (MB) as the paper computes it (params x 8 bytes: 31.13 M -> 249.04 MB), and the real size of
  the saved ``.keras`` file.
- Table IV: deployment (``hsiseu.deployment``): measured, estimated and the paper's figures.

Every writer takes ``{af: {rep: path}}``: each replicate's table is built alone, then
:func:`hsiseu.reporting.replicates.combine` gives the mean and spread over replicates (Markdown)
beside every replicate's value (CSV).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hsiseu.activations import af_label
from hsiseu.data import CLASS_NAMES
from hsiseu.deployment import PAPER_KV260, deployment_table_from_files, paper_dpu_efficiency
from hsiseu.io import atomic_path, read_json, write_text
from hsiseu.quantization.interpreter import KERNEL_LABELS, kernels_of
from hsiseu.reporting.replicates import combine

#: ``{af: {rep: path}}``: one file per replicate of each AF.
PerReplicate = Mapping[str, Mapping[int, str | os.PathLike[str]]]

#: The paper's overall FLOPs reduction (Section II-B: ReLU 0.5 then 0.5, Sigmoid 0.4 then 0.2,
#: Hard Sigmoid 0.5 then 0.4, composed 1 - prod(1 - r)), for Table II and Fig. 1.
PAPER_FLOPS_REDUCTION: dict[str, float] = {"relu": 0.75, "sigmoid": 0.52, "hard_sigmoid": 0.70}

__all__ = ["PAPER_BYTES_PER_PARAM", "PAPER_FLOPS_REDUCTION", "complexity_table", "complexity_table_from_files", "int8_iou_table",
           "iou_table", "iou_table_from_files", "to_markdown", "write_table", "write_table1", "write_table2",
           "write_table3", "write_table4"]

def iou_table(metrics_by_af: Mapping[str, Mapping[str, Any]], split: str = "test") -> pd.DataFrame:
    """Classes (then Global and Weighted) as rows, activation functions as columns: Table I/III."""
    columns = {}
    for af, metrics in metrics_by_af.items():
        report = metrics[split]
        col = dict(report["per_class_iou"])
        col["Global"] = report["global_iou"]
        col["Weighted"] = report["weighted_iou"]
        columns[af_label(af)] = col
    table = pd.DataFrame(columns)
    order = [c for c in CLASS_NAMES if c in table.index]
    table = table.loc[order + [r for r in table.index if r not in order]]
    table.index.name = "Class"
    return table.astype(float).round(2)


def iou_table_from_files(paths_by_af: Mapping[str, str | os.PathLike[str]], split: str = "test") -> pd.DataFrame:
    return iou_table({af: read_json(p) for af, p in paths_by_af.items()}, split)


def to_markdown(table: pd.DataFrame, floatfmt: str = ".2f") -> str:
    """A GitHub Markdown table; NaN shown as an en dash (class absent from the split)."""
    header = [table.index.name or ""] + [str(c) for c in table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * len(table.columns)) + "|"]
    for idx, row in table.iterrows():
        cells = [str(idx)]
        for v in row:
            if isinstance(v, float):
                cells.append("–" if pd.isna(v) else format(v, floatfmt))
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_table(table: pd.DataFrame, csv_path: str | os.PathLike[str], md_path: str | os.PathLike[str],
                title: str | None = None, notes: Sequence[str] = (), floatfmt: str = ".2f",
                md_table: pd.DataFrame | None = None) -> None:
    """``table`` as CSV; ``md_table`` (default: the same) as Markdown, with title and notes."""
    with atomic_path(csv_path) as tmp:
        table.to_csv(tmp)
    parts = [f"**{title}**\n\n" if title else "", to_markdown(table if md_table is None else md_table, floatfmt)]
    parts += [f"\n{n}\n" for n in notes]
    write_text(md_path, "".join(parts))


PAPER_BYTES_PER_PARAM = 8


def complexity_table(columns: Mapping[str, tuple[int, int, int]]) -> pd.DataFrame:
    """``{column label: (params, flops, file bytes)}`` -> Table II (metrics as rows)."""
    data = {
        label: {
            "Params (M)": params / 1e6,
            "OPS (G)": flops / 1e9,
            "Memory (MB)": params * PAPER_BYTES_PER_PARAM / 1e6,
            "File size (MB)": size / 1e6,
        }
        for label, (params, flops, size) in columns.items()
    }
    table = pd.DataFrame(data)
    table.index.name = "Metric"
    return table.astype(float).round(6)


def complexity_table_from_files(
    original: Mapping[str, tuple[str | os.PathLike[str], str | os.PathLike[str]]],
    pruned: Mapping[str, tuple[str | os.PathLike[str], str | os.PathLike[str]]],
) -> pd.DataFrame:
    """``{af: (metrics.json, model.keras)}`` for the original and the pruned models.

    The three original models share one architecture, so (as in the paper) they make one
    "Original" column, from the first AF's files; should their params or FLOPs differ, each gets
    its own column instead.
    """
    def entry(metrics_path, model_path):
        m = read_json(metrics_path)
        return int(m["params"]), int(m["flops"]), Path(model_path).stat().st_size

    originals = {af: entry(*paths) for af, paths in original.items()}
    columns: dict[str, tuple[int, int, int]] = {}
    if len({v[:2] for v in originals.values()}) == 1:
        columns["Original"] = next(iter(originals.values()))
    else:
        columns.update({f"Original {af_label(af)}": v for af, v in originals.items()})
    for af, paths in pruned.items():
        columns[f"{af_label(af)} pruned"] = entry(*paths)
    return complexity_table(columns)


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


def _replicates(paths: PerReplicate) -> list[int]:
    reps = sorted({r for by_rep in paths.values() for r in by_rep})
    for af, by_rep in paths.items():
        if sorted(by_rep) != reps:
            raise ValueError(f"{af} has replicates {sorted(by_rep)}, others {reps}")
    return reps


def _replicate_note(paths: PerReplicate) -> str:
    reps = _replicates(paths)
    return (f"Mean ± standard deviation over {len(reps)} replicates (independently trained models, config "
            f"`replicates`); the CSV holds each replicate's value (`rep<r>` columns)." if len(reps) > 1 else
            "One replicate (config `replicates`): a single trained model per AF.")


def _per_replicate(paths: PerReplicate, build) -> dict[int, pd.DataFrame]:
    """``build({af: path})`` for each replicate."""
    return {r: build({af: by_rep[r] for af, by_rep in paths.items()}) for r in _replicates(paths)}


def write_table1(paths: PerReplicate, csv: str, md: str) -> pd.DataFrame:
    table, shown = combine(_per_replicate(paths, iou_table_from_files))
    write_table(table, csv, md, title="Table I: IoU (%) of the 32-bit floating-point models on the test split",
                notes=[_replicate_note(paths)], md_table=shown)
    return table


def _reduction_rows(pruned: Mapping[str, tuple]) -> pd.DataFrame:
    """Per pruned column: the overall FLOPs reduction reached, requested (config) and the paper's."""
    rows = {}
    for af, (metrics_path, _) in pruned.items():
        record = read_json(metrics_path)["pruning"]
        rows[f"{af_label(af)} pruned"] = {
            "FLOPs reduction, reached": float(record["reached_overall"]),
            "FLOPs reduction, requested (config)": float(record["requested_overall"]),
            "FLOPs reduction, paper": PAPER_FLOPS_REDUCTION.get(af, np.nan),
        }
    return pd.DataFrame(rows)


def write_table2(original: PerReplicate, pruned: PerReplicate, csv: str, md: str) -> pd.DataFrame:
    """``{af: {rep: (metrics.json, model.keras)}}`` of the original and the pruned models."""
    def build(rep: int) -> pd.DataFrame:
        o = {af: by_rep[rep] for af, by_rep in original.items()}
        p = {af: by_rep[rep] for af, by_rep in pruned.items()}
        table = complexity_table_from_files(o, p)
        return pd.concat([table, _reduction_rows(p)]).astype(float)

    table, shown = combine({r: build(r) for r in _replicates(pruned)}, floatfmt=".4g")
    write_table(
        table, csv, md,
        title="Table II: model complexity and size before and after channel pruning",
        floatfmt=".4g",
        md_table=shown,
        notes=[
            "OPS = 2 x multiply-accumulates of the convolutions. Memory = params x 8 bytes, as the "
            "paper computes it; File size = the saved float32 .keras file.",
            "FLOPs reduction: 1 - pruned / original OPS. Reached: what the pruning kept after the "
            "acceptance rule (pruning.acceptance: a pruned model may lose at most max_drop IoU points; "
            "policy backoff lowers an iteration's target until it passes); requested: the config's "
            "pruning.ratios composed over the iterations, 1 - prod(1 - r); paper: the paper's ratios "
            "(ReLU 0.5 + 0.5, Sigmoid 0.4 + 0.2, Hard Sigmoid 0.5 + 0.4), chosen for its 31 M-parameter model.",
            _replicate_note(pruned),
        ],
    )
    return table


def write_table3(paths: PerReplicate, csv: str, md: str) -> pd.DataFrame:
    per_rep = {r: {af: read_json(by_rep[r]) for af, by_rep in paths.items()} for r in _replicates(paths)}
    table, shown = combine({r: int8_iou_table(m) for r, m in per_rep.items()})
    metrics = per_rep[min(per_rep)]
    ops = "; ".join(f"{af_label(af)}: " + ", ".join(f"{k} x{v}" for k, v in m["ops"].items())
                    for af, m in metrics.items())
    write_table(
        table, csv, md, md_table=shown,
        title=f"Table III: IoU (%) of the pruned full-int8 models on the test split (LiteRT, {kernels_of(metrics)} kernels)",
        notes=[
            f"Kernels: {KERNEL_LABELS[kernels_of(metrics)]} (config quantization.kernels), the same for "
            "int8 evaluation, throughput and fault injection.",
            "Agreement with float: % of test pixels the int8 model gives the same class as the "
            "float pruned model it was quantized from.",
            *(f"Replicate {r}: {_recovery_note(m)}" for r, m in per_rep.items()),
            f"Integer-only graphs (int8 activations and weights, int32 biases); operators (replicate "
            f"{min(per_rep)}): {ops}.",
            _replicate_note(paths),
        ],
    )
    return table


def write_table4(paths: PerReplicate, deployment: Mapping[str, Any], csv: str, md: str) -> pd.DataFrame:
    table, shown = combine(_per_replicate(paths, lambda p: deployment_table_from_files(p, deployment)))
    paths_by_af = {af: by_rep[min(by_rep)] for af, by_rep in paths.items()}
    kernels = kernels_of({af: read_json(p) for af, p in paths_by_af.items()})
    opc, clock = int(deployment["dpu_ops_per_cycle"]), float(deployment["dpu_clock_mhz"]) * 1e6
    implied = ", ".join(f"{af_label(af)} {paper_dpu_efficiency(af, ops_per_cycle=opc, clock_hz=clock):.3f}"
                        for af in PAPER_KV260 if af in paths_by_af)
    write_table(
        table, csv, md, md_table=shown,
        title="Table IV: deployment characterization of the pruned int8 models",
        notes=[
            _replicate_note(paths),
            f"LiteRT: {KERNEL_LABELS[kernels]} (config quantization.kernels, as for evaluation and "
            "fault injection); Keras: the float32 pruned model. FPS = repeated inferences of one "
            "test image after a warm-up run.",
            f"DPU estimate: {opc} ops/cycle x {deployment['dpu_clock_mhz']} MHz x efficiency "
            f"{deployment['dpu_efficiency']} / (2 x MACs per frame). Efficiencies implied by the "
            f"paper's own FPS and OPS (Tables II, IV): {implied}. A model whose activations the DPU "
            "does not run (sigmoid's LOGISTIC, tanh's TANH, ...: hsiseu.deployment.DPU_OPS) runs them "
            "on the CPU: its estimate leaves that time out and is an upper bound (the paper measured "
            "0.59 FPS* for Sigmoid).",
            "Power and energy: no meter on this machine (ours: not measured); the paper's KV260 "
            "figures (INA260 sensor, energy = power / FPS) are given for reference. "
            "*Activation runs on CPU (paper).",
        ],
    )
    return table
