"""ShopStream's pipelines: the code behind the DAGs in dags/.

The same code runs on Airflow 2 and Airflow 3: ``compat.py`` is the one module that knows where
each version keeps what the package imports, and every Astro SDK call lives in
``sql_steps/astro_sdk.py``, beside a back-end on the Postgres and Amazon providers.
"""
