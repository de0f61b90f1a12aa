"""What runs inside an arq worker: settings, tasks, parsing and normalization.

`workers` imports `ingest`; `ingest` never imports `workers` (it enqueues jobs by name).
"""
