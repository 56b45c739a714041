"""The search attributes every image workflow carries, defined once.

The api sets them when it starts a workflow, the worker reads them (logs, metrics), and
the dev stack registers them with the Temporal server (`--search-attribute`).
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

# `temporal workflow list -q 'ProjectId="42"'` finds a project's workflows.
PROJECT_ID = SearchAttributeKey.for_keyword("ProjectId")

# Name -> type, as `temporal server start-dev --search-attribute Name=Type` spells it.
SEARCH_ATTRIBUTES: dict[str, str] = {PROJECT_ID.name: "Keyword"}
