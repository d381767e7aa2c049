"""Every route the node serves, by domain; the server registers this table and `/openapi.json`
describes it."""

from __future__ import annotations

from ..spec import Route
from . import apps, audit, checkpoints, entries, gov, node

ROUTES: tuple[Route, ...] = (*node.ROUTES, *entries.ROUTES, *checkpoints.ROUTES, *gov.ROUTES, *apps.ROUTES,
                             *audit.ROUTES)
