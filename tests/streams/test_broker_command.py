"""`distillery broker`: prints the bootstrap address once Tansu accepts connections and stops cleanly on Ctrl-C."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time

import pytest
from stream_helpers import ROOT

from streams.broker import BrokerError, tansu_binary


@pytest.mark.broker
@pytest.mark.timeout(60)
def test_broker_command_prints_the_address_and_stops_on_ctrl_c():
    try:
        tansu_binary()
    except BrokerError as err:
        pytest.skip(str(err))
    proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "broker", "--port", "0"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = proc.stdout.readline()
        found = re.search(r"KAFKA_BOOTSTRAP_SERVERS=127\.0\.0\.1:(\d+)", line)
        assert found, line
        port = int(found.group(1))
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0
        assert "broker stopped" in proc.stdout.read()
        time.sleep(0.5)
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
    finally:
        if proc.poll() is None:
            proc.kill()
