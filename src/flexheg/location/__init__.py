"""Landmark servers, the link emulator and the device-side location client.

The pure parts (statements, checks, geometry, decisions) live in :mod:`flexheg.device.location`
so that the guarantee processor can import them; this package adds the sockets and clocks.
"""

from flexheg.location.client import measure_rounds, new_nonce, parse_address, prove_location
from flexheg.location.link import LinkEmulator, propagation_delay_ns
from flexheg.location.server import DEFAULT_PROCESSING_US, LandmarkServer

__all__ = [
    "DEFAULT_PROCESSING_US",
    "LandmarkServer",
    "LinkEmulator",
    "measure_rounds",
    "new_nonce",
    "parse_address",
    "propagation_delay_ns",
    "prove_location",
]
