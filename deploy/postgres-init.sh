#!/usr/bin/env bash
# The two databases of docker-compose.yml, each owned by its own login role:
# `experiments` (experiments_svc, migrated by the `migrate` service) and
# `mlflow` (the MLflow tracking server, which migrates its own schema).
#
# The postgres image runs /docker-entrypoint-initdb.d/* once, on the first
# start with an empty data volume; it sources this file, or runs it when it is
# executable. The passwords come from the container's environment and reach
# SQL as psql variables, quoted by psql (:'name'), never spliced into the text.
set -Eeo pipefail

psql -v ON_ERROR_STOP=1 --no-psqlrc \
    --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" \
    --set experiments_password="${EXPERIMENTS_DB_PASSWORD:?EXPERIMENTS_DB_PASSWORD is not set}" \
    --set mlflow_password="${MLFLOW_DB_PASSWORD:?MLFLOW_DB_PASSWORD is not set}" <<'SQL'
CREATE ROLE experiments LOGIN PASSWORD :'experiments_password';
CREATE DATABASE experiments OWNER experiments;
REVOKE ALL ON DATABASE experiments FROM PUBLIC;

CREATE ROLE mlflow LOGIN PASSWORD :'mlflow_password';
CREATE DATABASE mlflow OWNER mlflow;
REVOKE ALL ON DATABASE mlflow FROM PUBLIC;
SQL
