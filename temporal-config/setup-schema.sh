#!/bin/sh
# One-shot job (temporalio/admin-tools): create Temporal's two databases on our Postgres
# and bring their schemas to the version this admin-tools image ships. Safe to re-run:
# setup-schema on a stamped database changes nothing, and update-schema applies only the
# missing versions, which is also how a Temporal server upgrade migrates its schema.
set -eu

: "${POSTGRES_SEEDS:?}" "${POSTGRES_USER:?}" "${SQL_PASSWORD:?}"
schema_root=/etc/temporal/schema/postgresql/v12

sql_tool() {
    temporal-sql-tool --plugin postgres12 --endpoint "$POSTGRES_SEEDS" \
        --port "${DB_PORT:-5432}" --user "$POSTGRES_USER" "$@"
}

setup_database() {
    database=$1
    versioned_dir=$2
    # `create` fails when the database exists (every run after the first); a Postgres
    # that is really unreachable makes setup-schema below fail and end the job.
    sql_tool --database "$database" create || echo "database $database already exists"
    sql_tool --database "$database" setup-schema -v 0.0
    sql_tool --database "$database" update-schema -d "$versioned_dir"
}

setup_database "${DBNAME:-temporal}" "$schema_root/temporal/versioned"
setup_database "${VISIBILITY_DBNAME:-temporal_visibility}" "$schema_root/visibility/versioned"
echo "temporal schema is up to date"
