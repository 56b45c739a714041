#!/bin/sh
# Runs once, when the postgres container initialises an empty data volume (the image runs
# /docker-entrypoint-initdb.d/*). POSTGRES_USER stays the operators' superuser; the app and
# Temporal each get a login role of their own that owns its databases and nothing else:
# neither is a superuser, can create databases or roles, or connect to the other's.
# An existing volume keeps its roles: see docs/security.md to add these by hand.
set -eu

: "${IMGPROC_DB_USER:?}" "${IMGPROC_DB_PASSWORD:?}" "${POSTGRES_DB:?}"
: "${TEMPORAL_DB_USER:?}" "${TEMPORAL_DB_PASSWORD:?}"

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v app_user="$IMGPROC_DB_USER" -v app_password="$IMGPROC_DB_PASSWORD" \
    -v app_db="$POSTGRES_DB" \
    -v temporal_user="$TEMPORAL_DB_USER" -v temporal_password="$TEMPORAL_DB_PASSWORD" <<'SQL'
CREATE ROLE :"app_user" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    PASSWORD :'app_password';
ALTER DATABASE :"app_db" OWNER TO :"app_user";
REVOKE ALL ON DATABASE :"app_db" FROM PUBLIC;

CREATE ROLE :"temporal_user" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    PASSWORD :'temporal_password';
CREATE DATABASE temporal OWNER :"temporal_user";
CREATE DATABASE temporal_visibility OWNER :"temporal_user";
REVOKE ALL ON DATABASE temporal FROM PUBLIC;
REVOKE ALL ON DATABASE temporal_visibility FROM PUBLIC;
SQL
