"""Process-level CPU settings (``snn_nas.perf``): the OpenMP wait policy set before torch loads."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = """
import json, os, sys
from snn_nas.perf import passive_omp_wait
took = passive_omp_wait()
import torch
print(json.dumps({"took": took, "policy": os.environ.get("OMP_WAIT_POLICY"), "torch_first": False}))
"""


def run(code: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_waiting_threads_sleep_unless_the_user_chose_a_policy():
    assert run(PROBE) == '{"took": true, "policy": "PASSIVE", "torch_first": false}'
    assert run(PROBE, OMP_WAIT_POLICY="ACTIVE") == '{"took": false, "policy": "ACTIVE", "torch_first": false}'
    late = "import torch\nfrom snn_nas.perf import passive_omp_wait\nprint(passive_omp_wait())"
    assert run(late) == "False"  # torch's OpenMP runtime has read its settings already


def test_the_command_line_sets_it_before_torch():
    code = (  # a training command that stops at its first check (an unknown architecture)
        "import os, sys\nfrom snn_nas.cli.main import main\n"
        "assert main(['train', 'no_such_preset']) == 2\nprint(os.environ.get('OMP_WAIT_POLICY'), file=sys.stderr)"
    )
    clean = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], env=clean, capture_output=True, text=True, check=True)
    assert out.stderr.strip().splitlines()[-1] == "PASSIVE"
