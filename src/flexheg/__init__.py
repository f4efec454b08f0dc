"""flexheg: a reference implementation of flexible hardware-enabled guarantees for AI chips.

The package is split into parts with a strict dependency order (lower parts never import
higher ones):

``wire`` < ``policy`` < ``rules`` < ``device`` < {``authority``, ``attest``, ...} < ``cli``.

Security decisions live in pure functions that take bytes and an explicit time. Thin shells do
the file, socket and clock I/O around them.
"""

__version__ = "0.1.0"
