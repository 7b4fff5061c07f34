"""
### observability_pipeline

The platform's global monitor: runs whenever **any** gold or feature Dataset is updated and
checks the tables behind the datasets that triggered it (**data_quality_checks**): row
counts, nulls, key uniqueness, referential integrity and freshness. Any breach fails the run.
**quality_results** then logs which checks ran on which tables and what failed, and writes it
to the lake (its extra link opens the file).
"""

from include.shopstream.ops import policies
from include.shopstream.pipelines.quality import data_quality_checks
from include.shopstream.pipelines.quality_results import quality_results

# airflow: the DAG processor's safe mode reads only files that name it; compat imports it.
from include.shopstream.platform.compat import DatasetAny, dag
from include.shopstream.platform.datasets import PUBLISHED


@dag(
    dag_id="observability_pipeline",
    schedule=DatasetAny(*PUBLISHED),
    start_date=policies.START_DATE,
    catchup=False,
    default_args=policies.OBSERVABILITY,
    tags=["shopstream", "observability", "data-quality"],
    doc_md=__doc__,
)
def observability_pipeline():
    data_quality_checks() >> quality_results()


observability_pipeline()
