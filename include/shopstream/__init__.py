"""ShopStream's pipelines: the code behind the DAGs in dags/.

Every Astro SDK call of the platform lives in this package, so that a later move to Airflow 3
(Assets, common-sql) changes this package and nothing else.
"""
