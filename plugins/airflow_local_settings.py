"""Airflow's cluster policies for this project (Airflow imports this module from plugins/).

Every task fails at once, without retries, on a constraint or data error from the warehouse:
retrying cannot fix bad data, and the message names the table, the constraint and a few keys.
Mapped tasks and deferred tasks that resume from the triggerer too (see the function).
"""

from __future__ import annotations


def task_policy(task) -> None:
    from include.shopstream.platform.warehouse import fail_fast_on_data_errors

    fail_fast_on_data_errors(task)
