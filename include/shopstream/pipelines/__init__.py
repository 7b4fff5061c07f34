"""The pipelines: one module per pipeline, each a task group the DAG files call.

They build on ``platform`` and ``ops``; nothing there imports them.
"""
