"""Table I/III layout: classes as rows in the paper's order, AFs as columns, Markdown readable."""

from __future__ import annotations

import math

import pandas as pd

from hsiseu.reporting.tables import iou_table, to_markdown, write_table


def _metrics(road: float, marks) -> dict:
    return {
        "test": {
            "per_class_iou": {"Road": road, "Marks": marks, "Vegetation": 90.0, "Sky": 80.0, "Others": 70.0},
            "global_iou": 95.0,
            "weighted_iou": 85.5,
        }
    }


def test_iou_table_has_classes_as_rows_and_afs_as_columns_in_paper_order():
    table = iou_table({"relu": _metrics(97.844, 88.0), "hard_sigmoid": _metrics(96.3, 83.4)})
    assert list(table.columns) == ["ReLU", "Hard Sigmoid"]
    assert list(table.index) == ["Road", "Marks", "Vegetation", "Sky", "Others", "Global", "Weighted"]
    assert table.loc["Road", "ReLU"] == 97.84
    assert table.loc["Weighted", "Hard Sigmoid"] == 85.5


def test_class_absent_from_split_is_a_dash_in_markdown_and_empty_in_csv(tmp_path):
    table = iou_table({"relu": _metrics(97.0, None)})
    assert math.isnan(table.loc["Marks", "ReLU"])
    md = to_markdown(table)
    assert "| Marks | – |" in md
    write_table(table, tmp_path / "t.csv", tmp_path / "t.md", title="T")
    back = pd.read_csv(tmp_path / "t.csv", index_col=0)
    assert back.loc["Road", "ReLU"] == 97.0 and math.isnan(back.loc["Marks", "ReLU"])
    assert (tmp_path / "t.md").read_text().startswith("**T**")
