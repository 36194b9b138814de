# The Airflow image plus this project's few extra packages; the base image is a setting in .env.
ARG AIRFLOW_IMAGE_NAME=apache/airflow:3.3.2-python3.11
FROM ${AIRFLOW_IMAGE_NAME}
COPY requirements.txt constraints.txt /tmp/project/
RUN grep -v '^apache-airflow' /tmp/project/requirements.txt > /tmp/project/extra.txt \
 && pip install --no-cache-dir -r /tmp/project/extra.txt -c /tmp/project/constraints.txt
