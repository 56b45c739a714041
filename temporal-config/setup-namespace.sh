#!/bin/sh
# One-shot job (temporalio/admin-tools): create the application's namespace with its
# retention, and register the `ProjectId` Keyword search attribute the api sets on every
# image workflow (`temporal workflow list -q 'ProjectId="7"'`). Safe to re-run: an
# existing namespace gets the configured retention, an existing attribute is kept.
set -eu

: "${TEMPORAL_ADDRESS:?}" "${TEMPORAL_NAMESPACE:?}" "${TEMPORAL_RETENTION:?}"

# Bounded: the server's port is open (its healthcheck) a little before it serves.
retry() {
    attempt=1
    until "$@"; do
        if [ "$attempt" -ge 30 ]; then
            echo "giving up after $attempt attempts: $*" >&2
            return 1
        fi
        attempt=$((attempt + 1))
        sleep 2
    done
}

retry temporal operator cluster health

if temporal operator namespace describe --namespace "$TEMPORAL_NAMESPACE" >/dev/null 2>&1; then
    temporal operator namespace update --namespace "$TEMPORAL_NAMESPACE" \
        --retention "$TEMPORAL_RETENTION"
else
    temporal operator namespace create --namespace "$TEMPORAL_NAMESPACE" \
        --retention "$TEMPORAL_RETENTION"
fi

has_project_id() {
    temporal operator search-attribute list --namespace "$TEMPORAL_NAMESPACE" | grep -qw ProjectId
}

# A new namespace reaches every server role's cache within seconds, hence the retry.
if ! has_project_id; then
    retry temporal operator search-attribute create --namespace "$TEMPORAL_NAMESPACE" \
        --name ProjectId --type Keyword
fi
echo "namespace $TEMPORAL_NAMESPACE is ready (retention $TEMPORAL_RETENTION, ProjectId)"
