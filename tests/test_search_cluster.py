"""A search on a real Ray cluster started the way README says (issue 10, family 9).

A head node is started with the ``ray start`` command in a subprocess, with token
authentication on as Ray 2.59+ sets it up (``ray get-auth-token --generate``, then ``ray start
--head`` finds the token), in a home and a Ray temp folder of its own, so that neither the
user's token nor another Ray instance on this machine is involved. A tiny search runs against
it with ``--address auto``; the head's own address without the token fails at once with one
line that says what to try. The head is stopped by its process id (its process group).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from cluster_tools import TINY_EXPERIMENT, TINY_SPACE, free_port, stop

from snn_nas.search.results import load_results

BIN = Path(sys.executable).parent
EXPERIMENT = {**TINY_EXPERIMENT, "name": "cluster", "max_concurrent": 1, "costs": {"calibration_images": 8}}


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    """A token-authenticated Ray head of 2 CPUs; yields (environment of its machine, port)."""
    home = tmp_path_factory.mktemp("home")
    ray_tmp = tempfile.mkdtemp(prefix="snnray", dir="/tmp")  # Ray's socket paths must stay short
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_ADDRESS", "RAY_AUTH"))}
    env.update(HOME=str(home), RAY_TMPDIR=ray_tmp, RAY_USAGE_STATS_ENABLED="0")
    subprocess.run([BIN / "ray", "get-auth-token", "--generate"], env=env, check=True, capture_output=True)
    assert (home / ".ray" / "auth_token").is_file()
    port = free_port()
    command = [BIN / "ray", "start", "--head", "--block", "--port", str(port), "--num-cpus", "2",
               "--disable-usage-stats", "--include-dashboard", "false",
               "--ray-client-server-port", str(free_port()), "--dashboard-port", str(free_port())]  # fmt: skip
    log = (home / "head.log").open("w")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while not (Path(ray_tmp) / "ray" / "ray_current_cluster").is_file():
            assert process.poll() is None and time.monotonic() < deadline, (home / "head.log").read_text()
            time.sleep(0.2)
        assert "Token authentication is enabled" in (home / "head.log").read_text()
        yield env, port, Path(ray_tmp)
    finally:
        stop(process)
        log.close()
        shutil.rmtree(ray_tmp, ignore_errors=True)


def snn_nas(env: dict[str, str], cwd: Path, *args: str) -> tuple[subprocess.CompletedProcess, int]:
    """Run the real CLI in ``cwd`` with ``env``; the finished process and its process id."""
    process = subprocess.Popen(
        [sys.executable, "-m", "snn_nas.cli.main", *args],
        env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    out, err = process.communicate(timeout=300)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err), process.pid


@pytest.mark.slow
def test_search_on_a_cluster_started_with_ray_start_and_a_token(head, tmp_path):
    env, _, ray_tmp = head
    (tmp_path / "space.yaml").write_text(TINY_SPACE)
    (tmp_path / "cluster.yaml").write_text(yaml.safe_dump(EXPERIMENT, sort_keys=False))
    results = tmp_path / "results"
    done, pid = snn_nas(env, tmp_path, "search", "cluster.yaml", "--address", "auto", "--results-dir",
                        str(results), "--no-progress", "--no-baselines")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "cluster: 1 search trial (1 ok)" in done.stdout
    assert "gcs_client" not in done.stderr and "Traceback" not in done.stderr, done.stderr
    table = load_results(results / "cluster")
    assert list(table["status"]) == ["ok"] and table["node"].iloc[0]
    # the driver ran against the head started above, not a Ray instance of its own
    assert list((ray_tmp / "ray" / "session_latest" / "logs").glob(f"python-core-driver-*_{pid}.log"))


def test_the_heads_address_without_the_token_fails_at_once_with_what_to_try(head, tmp_path):
    env, port, _ = head
    (tmp_path / "space.yaml").write_text(TINY_SPACE)
    (tmp_path / "cluster.yaml").write_text(yaml.safe_dump(EXPERIMENT, sort_keys=False))
    done, _ = snn_nas(env, tmp_path, "search", "cluster.yaml", "--address", f"127.0.0.1:{port}",
                      "--results-dir", str(tmp_path / "results"), "--no-progress")  # fmt: skip
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr  # none of Ray's native InvalidAuthToken lines
    line = lines[0]
    assert line.startswith(f"snn-nas search: error: --address 127.0.0.1:{port}: the Ray cluster there uses token")
    for hint in ("--address auto", "RAY_AUTH_MODE=token", "ray get-auth-token", "RAY_AUTH_TOKEN"):
        assert hint in line

    # the same through the API: an SnnNasError within seconds (Ray alone retries for 20 s)
    from snn_nas.errors import SnnNasError
    from snn_nas.search.cluster import ray_session

    started = time.monotonic()
    with pytest.raises(SnnNasError, match="uses token authentication"), ray_session(f"127.0.0.1:{port}", None, False):
        pass
    assert time.monotonic() - started < 10
