"""What every pipeline stands on: names, the output registry, the warehouse, the lake,
the SQL steps' back-ends and the one module that knows Airflow 2 from 3.

Imports nothing from ``pipelines`` or ``ops``.
"""
