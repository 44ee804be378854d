"""Hidden checks, one module per notebook.

Each check is split in two: `collect_*` calls the student's code and returns plain tensors and
numbers, `judge_*` decides from those alone and raises AssertionError with a message a student can
act on. `check_*` runs both; hidden test cells and the pytest suite call the same `check_*`.
"""
