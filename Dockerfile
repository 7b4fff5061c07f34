# The deployment image: Astro Runtime 12.12.0 ships Apache Airflow 2.10.5; the -python-3.11
# variant matches the local .venv. The runtime's ONBUILD steps install packages.txt (apt) and
# requirements.txt (pip), then copy the project into /usr/local/airflow.
FROM quay.io/astronomer/astro-runtime:12.12.0-python-3.11

# Platform settings; localdev/stack.py applies the same ones to `make run` (a test keeps them equal).
ENV AIRFLOW__CORE__LOAD_EXAMPLES=False \
    AIRFLOW__CORE__ALLOWED_DESERIALIZATION_CLASSES="airflow.* astro.*" \
    AIRFLOW__ASTRO_SDK__AUTO_ADD_INLETS_OUTLETS=False \
    AIRFLOW__CORE__TASK_SUCCESS_OVERTIME=90 \
    AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME=0.25
