"""Training-framework hooks that meter compute and feed the guarantee processor.

Each integration lives in its own module and imports its framework there, so importing this
package never needs an optional extra: :mod:`flexheg.integrations.torch` needs ``flexheg[torch]``.
"""
