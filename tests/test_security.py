"""NNI's web server (web UI, REST API, tuner websocket) must not be reachable off the machine.

NNI listens on every interface without authentication; ``experiment.start(..., host="127.0.0.1")``
binds it to loopback. The test connects only to this machine's own addresses: 127.0.0.1 must
answer, each non-loopback IPv4 address of this machine must refuse. The same connect with
``host=None`` (every interface, NNI's own behaviour) must succeed, which shows the check can see an
exposed port at all.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import time

import psutil
import pytest

from nas_core.nni_adapter import experiment as nni_experiment
from nas_core.nni_adapter import rest
from tests.test_nni_e2e import free_port


def own_non_loopback_ipv4() -> list[str]:
    """This machine's own IPv4 addresses that are not loopback, on interfaces that are up."""
    stats = psutil.net_if_stats()
    found: list[str] = []
    for name, addrs in psutil.net_if_addrs().items():
        if name in stats and not stats[name].isup:
            continue
        for addr in addrs:
            if addr.family != socket.AF_INET:
                continue
            ip = ipaddress.IPv4Address(addr.address)
            if not ip.is_loopback and not ip.is_unspecified and str(ip) not in found:
                found.append(str(ip))
    return found


def connect_errno(address: str, port: int, timeout: float = 3.0) -> int:
    """0 when a TCP connection to (address, port) is accepted, else the errno (ETIMEDOUT on timeout)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            return sock.connect_ex((address, port))
        except TimeoutError:
            return errno.ETIMEDOUT


def wait_until_a_trial_runs(port: int, timeout: float = 60.0) -> list[dict]:
    """The manager's trial jobs through 127.0.0.1, once the tuner is connected and a trial started.

    Waiting for a trial shows the tuner's websocket and the local trials work with the binding, and
    means stopping does not leave the tuner connecting to a manager that has gone.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            jobs = rest.get(port, "trial-jobs", timeout=5) or []
            if any(job.get("status") in ("RUNNING", "SUCCEEDED") for job in jobs):
                return jobs
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"no trial started within {timeout:.0f} s on port {port}")
        time.sleep(0.3)


def listening_addresses(pid: int) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket the process ``pid`` listens on."""
    return {(c.laddr.ip, c.laddr.port) for c in psutil.Process(pid).net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN}


@pytest.fixture
def addresses() -> list[str]:
    found = own_non_loopback_ipv4()
    if not found:
        pytest.skip("this machine has no non-loopback IPv4 address (on an interface that is up) to test exposure on")
    return found


@pytest.mark.slow
def test_web_server_is_loopback_only_by_default_and_the_check_detects_exposure(make_toy_config, addresses):
    # the experiment only has to serve: long trials, torn down as soon as the checks are done
    config = make_toy_config(maxTrialNumber=2, trial_args={"sleep": 30})

    # bound to loopback: reachable on 127.0.0.1, refused on every other address of this machine
    port = free_port()
    exp = nni_experiment.start(config, port=port, host="127.0.0.1")
    try:
        wait_until_a_trial_runs(port)
        assert rest.get(port, "check-status")["status"] in ("RUNNING", "NO_MORE_TRIAL")  # both trials started
        assert connect_errno("127.0.0.1", port) == 0
        for address in addresses:
            err = connect_errno(address, port)
            assert err == errno.ECONNREFUSED, (
                f"port {port} on {address}: expected connection refused, got {errno.errorcode.get(err, err)}")
        # and the manager opened no other listening socket off loopback
        listening = listening_addresses(exp._proc.pid)
        assert ("127.0.0.1", port) in listening
        assert all(ip == "127.0.0.1" for ip, _ in listening), listening
    finally:
        exp.stop()

    # every interface (NNI's default): the same connect succeeds, so the check above can fail
    port = free_port()
    exp = nni_experiment.start(config, port=port, host=None)
    try:
        wait_until_a_trial_runs(port)
        for address in addresses:
            err = connect_errno(address, port)
            assert err == 0, f"port {port} on {address} with host=None: {errno.errorcode.get(err, err)}"
    finally:
        exp.stop()
