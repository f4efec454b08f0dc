"""Root of the test tree.

Its presence puts ``tests/`` on ``sys.path`` (pytest's default prepend import mode), so that test
modules in any folder can import the shared simulator ``_parties``.
"""
