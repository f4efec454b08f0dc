"""Measure round trips to a landmark in a separate process and print them as JSON.

Usage: ``python probe.py HOST:PORT LANDMARK.json ROUNDS``. Prints one JSON document with every
verified round: its nonce, the landmark's response envelope and the round trip in nanoseconds.
The tests run this under real-time scheduling where they can, so that the measuring process is
not queued behind other work on a loaded machine.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from flexheg.device.location import Landmark
from flexheg.location import measure_rounds, parse_address
from flexheg.wire import loads_strict


def main() -> None:
    address_text, landmark_path, rounds_text = sys.argv[1:4]
    landmark = Landmark.from_dict(
        loads_strict(Path(landmark_path).read_bytes(), what=landmark_path), where=landmark_path
    )
    rounds = measure_rounds(
        parse_address(address_text),
        landmark,
        clock_ns=time.monotonic_ns,
        now=int(time.time()),
        rounds=int(rounds_text),
        timeout_s=2.0,
    )
    document = [
        {"nonce": item.nonce, "response": item.response.to_dict(), "rtt_ns": item.rtt_ns} for item in rounds
    ]
    sys.stdout.write(json.dumps(document) + "\n")


if __name__ == "__main__":
    main()
