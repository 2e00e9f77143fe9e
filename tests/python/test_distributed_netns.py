"""needle.distributed across two network namespaces: a 2-rank MPI job whose ranks can reach each other only
over a veth pair, so its collectives really travel over TCP between "hosts".

The fixture makes two network namespaces joined by a veth pair (10.231.0.1/24 and 10.231.0.2/24, which exist
only inside them) and deletes them afterwards. Each namespace plays a node: ``mpirun`` runs in the first one
and starts its daemon in the second one through a launch agent (standing in for ssh) that enters that
namespace. The ranks' PMIx server listens on TCP at 127.0.0.1, which a namespace's own loopback cannot reach
from another, so one mpirun cannot start ranks in two namespaces itself (``ip netns exec`` per rank fails in
MPI_Init). Shared memory and UCX are switched off (``btl tcp,self``, ``pml ob1``) and TCP is held to the veth
subnet; the test checks both ranks get the summed values and that the veth carried at least the payload of
the large all_reduce in each direction. A second test runs the same job on one host with the default
transports and checks it prints the same results.

The namespace test needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN), ``ip`` and ``mpirun``; it skips otherwise.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="network namespaces are Linux only")

MPIRUN = shutil.which("mpirun")
IP = shutil.which("ip")
TIMEOUT_S = 120  # every subprocess; mpirun's own --timeout is shorter so that it can end its job first
MPIRUN_TIMEOUT_S = 90
SUBNET = "10.231.0.0/24"
ADDRESSES = ("10.231.0.1", "10.231.0.2")
BIG = 1 << 20  # float32 elements of the large all_reduce
BIG_BYTES = 4 * BIG
EXPECTED = sorted(
    [
        "RESULT 0 [1.0, 3.0, 5.0, 7.0, 9.0]",
        "RESULT 1 [1.0, 3.0, 5.0, 7.0, 9.0]",
        "BIG 0 3.0 3.0",
        "BIG 1 3.0 3.0",
    ]
)

WORKER = f"""
import sys

import numpy as np
import needle as ndl
import needle.distributed as dist


def say(line):
    # One write per line: mpirun interleaves the ranks' writes, and print() makes one per piece when Python's
    # output is unbuffered (PYTHONUNBUFFERED).
    sys.stdout.write(line + "\\n")
    sys.stdout.flush()


group = dist.init()
assert group.size == 2, f"rank {{group.rank}}: group of size {{group.size}}, expected 2 (is Needle built with MPI?)"
x = ndl.Tensor(np.arange(5, dtype=np.float32) + group.rank, dtype="float32")
dist.all_reduce(x, op="sum")
say(f"RESULT {{group.rank}} {{x.numpy().tolist()}}")
# Large enough that the veth's byte counters tell the collective's traffic from the launcher's.
big = ndl.Tensor(np.full({BIG}, group.rank + 1, dtype=np.float32), dtype="float32")
dist.all_reduce(big, op="sum")
values = big.numpy()
say(f"BIG {{group.rank}} {{float(values.min())}} {{float(values.max())}}")
"""

_serial = itertools.count()


@dataclass
class NetnsPair:
    ip: str
    namespaces: tuple[str, str]
    veths: tuple[str, str]
    agent: Path  # launch agent: `agent HOST COMMAND...` runs COMMAND in HOST's namespace
    hostfile: Path

    def veth_bytes(self) -> list[tuple[int, int]]:
        """(tx, rx) byte counters of each end of the veth, read inside its namespace."""
        counters = []
        for namespace, veth in zip(self.namespaces, self.veths, strict=True):
            out = _run([self.ip, "-j", "-s", "-n", namespace, "link", "show", "dev", veth]).stdout
            stats = json.loads(out)[0]["stats64"]
            counters.append((int(stats["tx"]["bytes"]), int(stats["rx"]["bytes"])))
        return counters


def _run(argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"$ {' '.join(argv)} exited with {result.returncode}: {result.stderr}")
    return result


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _kill_session(sid: int) -> None:
    """SIGKILL every process of session ``sid`` (mpirun puts each rank in a process group of its own). The
    session's leader must not have been reaped yet, so that its pid cannot have been reused."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[3]) == sid:
            _kill(int(stat.parent.name))


def _mpi_job(argv: list[str], cwd: Path) -> str:
    """Run an mpirun command line; its stdout and stderr together. Fails the test on a timeout or an error."""
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    proc = subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        out, _ = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        _kill_session(proc.pid)  # mpirun is not reaped yet: its daemons and ranks
        out, _ = proc.communicate()
        pytest.fail(f"mpirun did not finish within {TIMEOUT_S} s:\n$ {' '.join(argv)}\n{out}")
    if proc.returncode != 0:
        pytest.fail(f"mpirun exited with {proc.returncode}:\n$ {' '.join(argv)}\n{out}")
    return out


def _results(out: str) -> list[str]:
    return sorted(line.strip() for line in out.splitlines() if line.startswith(("RESULT ", "BIG ")))


@pytest.fixture
def worker(tmp_path: Path) -> Path:
    path = tmp_path / "worker.py"
    path.write_text(textwrap.dedent(WORKER))
    return path


@pytest.fixture
def netns_pair(tmp_path: Path) -> Iterator[NetnsPair]:
    if os.geteuid() != 0:
        pytest.skip("creating network namespaces needs root")
    if IP is None:
        pytest.skip("no `ip` (iproute2) on PATH")
    if MPIRUN is None:
        pytest.skip("no mpirun on PATH")
    ip = IP
    tag = f"{os.getpid()}x{next(_serial)}"
    namespaces = (f"ndlA{tag}", f"ndlB{tag}")
    veths = (f"vndlA{tag}", f"vndlB{tag}")  # at most 15 characters
    made: list[str] = []
    try:
        for namespace in namespaces:
            result = _run([ip, "netns", "add", namespace], check=False)
            if result.returncode != 0:
                pytest.skip(f"cannot create a network namespace (CAP_NET_ADMIN/CAP_SYS_ADMIN?): {result.stderr}")
            made.append(namespace)
        result = _run([ip, "link", "add", veths[0], "type", "veth", "peer", "name", veths[1]], check=False)
        if result.returncode != 0:
            pytest.skip(f"cannot create a veth pair: {result.stderr}")
        for namespace, veth, address in zip(namespaces, veths, ADDRESSES, strict=True):
            _run([ip, "link", "set", veth, "netns", namespace])
            _run([ip, "-n", namespace, "addr", "add", f"{address}/24", "dev", veth])
            _run([ip, "-n", namespace, "link", "set", "lo", "up"])
            _run([ip, "-n", namespace, "link", "set", veth, "up"])
        agent = tmp_path / "netns_agent.sh"
        cases = "\n".join(
            f"  {address}) ns={namespace} ;;" for address, namespace in zip(ADDRESSES, namespaces, strict=True)
        )
        agent.write_text(
            "#!/bin/sh\n"
            "# mpirun's launch agent in place of ssh: `agent [OPTIONS] HOST COMMAND...` runs COMMAND in HOST's\n"
            "# network namespace.\n"
            'while [ "${1#-}" != "$1" ]; do shift; done\n'
            'host=$1; shift\ncase "$host" in\n'
            f"{cases}\n"
            '  *) echo "netns_agent.sh: unknown host $host" >&2; exit 1 ;;\nesac\n'
            f'exec {ip} netns exec "$ns" /bin/sh -c "$*"\n'
        )
        agent.chmod(0o755)
        hostfile = tmp_path / "hosts"
        hostfile.write_text("".join(f"{address} slots=1\n" for address in ADDRESSES))
        yield NetnsPair(ip, namespaces, veths, agent, hostfile)
    finally:
        for namespace in made:
            pids = _run([ip, "netns", "pids", namespace], check=False).stdout.split()
            for pid in pids:
                _kill(int(pid))
        for namespace in made:
            _run([ip, "netns", "del", namespace], check=False)  # deletes the veth ends inside it
        if _run([ip, "link", "show", "dev", veths[0]], check=False).returncode == 0:
            _run([ip, "link", "del", veths[0]], check=False)  # made but never moved into a namespace


def test_all_reduce_between_two_network_namespaces(netns_pair: NetnsPair, worker: Path) -> None:
    assert MPIRUN is not None
    argv = [
        netns_pair.ip, "netns", "exec", netns_pair.namespaces[0],
        MPIRUN, "--allow-run-as-root", "--timeout", str(MPIRUN_TIMEOUT_S),
        "--hostfile", str(netns_pair.hostfile), "-np", "2", "--map-by", "node", "--bind-to", "none",
        "--mca", "plm", "rsh", "--mca", "plm_rsh_agent", str(netns_pair.agent),
        "--mca", "oob_tcp_if_include", SUBNET,
        "--mca", "pml", "ob1", "--mca", "btl", "tcp,self", "--mca", "btl_tcp_if_include", SUBNET,
        sys.executable, str(worker),
    ]  # fmt: skip
    before = netns_pair.veth_bytes()
    out = _mpi_job(argv, worker.parent)
    after = netns_pair.veth_bytes()
    assert _results(out) == EXPECTED, out
    for (namespace, veth), (tx0, rx0), (tx1, rx1) in zip(
        zip(netns_pair.namespaces, netns_pair.veths, strict=True), before, after, strict=True
    ):
        # Each rank sends at least its whole buffer to the other one in a 2-rank all_reduce.
        assert tx1 - tx0 >= BIG_BYTES, (namespace, veth, tx1 - tx0, out)
        assert rx1 - rx0 >= BIG_BYTES, (namespace, veth, rx1 - rx0, out)


def test_all_reduce_on_one_host_gives_the_same_results(worker: Path) -> None:
    if MPIRUN is None:
        pytest.skip("no mpirun on PATH")
    argv = [MPIRUN, "--timeout", str(MPIRUN_TIMEOUT_S), "--oversubscribe", "--bind-to", "none", "-np", "2"]
    out = _mpi_job([*argv, sys.executable, str(worker)], worker.parent)
    assert _results(out) == EXPECTED, out
