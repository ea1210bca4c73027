"""Outputs appear whole or not at all."""

from __future__ import annotations

import pytest

from hsiseu.io import atomic_path, read_json, write_json


def test_failed_write_leaves_no_file_and_no_temporary(tmp_path):
    target = tmp_path / "out" / "model.keras"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_temporary_keeps_the_suffix_and_replaces_atomically(tmp_path):
    target = tmp_path / "m.keras"
    target.write_text("old")
    with atomic_path(target) as tmp:
        assert tmp.suffix == ".keras" and tmp.parent == tmp_path
        tmp.write_text("new")
    assert target.read_text() == "new"


def test_json_refuses_nan(tmp_path):
    with pytest.raises(ValueError):
        write_json(tmp_path / "x.json", {"a": float("nan")})
    assert not (tmp_path / "x.json").exists()
    write_json(tmp_path / "x.json", {"a": 1})
    assert read_json(tmp_path / "x.json") == {"a": 1}
