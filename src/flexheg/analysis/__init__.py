"""Analysis for negotiators: agreement stability, detection odds, chip classes, fleet simulation.

The closed forms live in :mod:`flexheg.analysis.detection` and :mod:`flexheg.analysis.stability`,
the export-control classifier in :mod:`flexheg.analysis.chips`, and the Monte Carlo fleet model
in :mod:`flexheg.analysis.simulation`. Plotting needs matplotlib and lives in
:mod:`flexheg.analysis.plots`, which nothing here imports.
"""
