"""The layout of ``hsiseu.faults``: the format-agnostic core imports no framework, the protocol
imports no backend, and one backend never pulls in another. Each check runs in a fresh
interpreter, since the test session itself has long imported TensorFlow and LiteRT."""

from __future__ import annotations

import json
import subprocess
import sys

CORE = (
    "hsiseu.faults",
    "hsiseu.faults.bitflip",
    "hsiseu.faults.paramsets",
    "hsiseu.faults.sampling",
    "hsiseu.faults.faultlist",
    "hsiseu.faults.outcomes",
    "hsiseu.faults.backend",
    "hsiseu.faults.shared",
    "hsiseu.faults.registry",
    "hsiseu.faults.campaign",
    "hsiseu.faults.tasks",
)
FRAMEWORKS = ("tensorflow", "keras", "ai_edge_litert")
BACKEND_PACKAGES = ("hsiseu.faults.keras", "hsiseu.faults.litert")


def modules_after_importing(*names: str) -> set[str]:
    """Every module loaded by a fresh interpreter once it has imported ``names``."""
    code = "import importlib, json, sys\n"
    code += "".join(f"importlib.import_module({n!r})\n" for n in names)
    code += "print(json.dumps(sorted(sys.modules)))\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.splitlines()[-1]))


def within(modules: set[str], package: str) -> set[str]:
    return {m for m in modules if m == package or m.startswith(package + ".")}


def test_format_agnostic_core_imports_neither_tensorflow_keras_nor_litert():
    loaded = modules_after_importing(*CORE)
    assert not {m for f in FRAMEWORKS for m in within(loaded, f)}


def test_backend_protocol_imports_neither_the_registry_nor_any_backend():
    loaded = modules_after_importing("hsiseu.faults.backend")
    assert "hsiseu.faults.registry" not in loaded
    assert not {m for p in BACKEND_PACKAGES for m in within(loaded, p)}


def test_int8_backend_imports_neither_the_float_backend_nor_the_registry():
    loaded = modules_after_importing("hsiseu.faults.litert.backend")
    assert not within(loaded, "hsiseu.faults.keras")
    assert "hsiseu.faults.registry" not in loaded
