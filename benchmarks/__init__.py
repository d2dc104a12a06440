"""effkeras's benchmark suites: declarative recipes (recipes.py), one runner (``python -m
benchmarks``), results files (results.py) and BENCHMARKS.md generated from them.

This folder is outside the package: it uses effkeras as a user would, and nothing in
effkeras imports it. The suite scripts (latency.py, qat.py, prune.py, text.py, survey.py,
mcu.py, and the training scripts survey_train.py and mcu_train.py) also run on their own
(``python benchmarks/mcu.py --help``).
"""
