"""Application routes: the installed applications and their read queries. A query's answer is
the application's own (its keeper's typed view, rendered by the application), passed on with
the height it is as of. A query whose answer this API knows the shape of (`TYPED_QUERIES`) has
a route and a type of its own, so the document describes its fields and the route answers
exactly them; any other answers the `AppAnswer` envelope at `/v1/apps/{app}/{query}`."""

from __future__ import annotations

import re
from typing import Any

import msgspec
from aiohttp import web

from ...errors import NotFound
from ...execution.application import application, installed_applications
from .. import app_answers as a
from .. import responses as r
from ..context import NODE, finality_chain, json_response
from ..spec import Handler, Param, Route, path_param, query


async def get_apps(request: web.Request) -> web.Response:
    """The installed applications: what each is, its read queries and its console page."""
    return json_response(r.Applications(applications=[
        r.Application(name=app.name, summary=app.summary, kinds=sorted(app.handlers()), queries=sorted(app.queries),
                      console=f"/static/{app.console}" if app.console else None)
        for app in installed_applications()]))


# The queries whose answers the API types: (application, query) -> the type of the answer.
TYPED_QUERIES: dict[tuple[str, str], type[r.Response]] = {
    ("notary", "document"): a.NotaryDocument,
    ("notary", "owned"): a.NotaryOwned,
    ("warehouse", "register"): a.WarehouseRegister,
    ("warehouse", "history"): a.WarehouseHistory,
    ("warehouse", "trail"): a.WarehouseTrail,
    ("warehouse", "receipt"): a.WarehouseReceipt,
    ("warehouse", "lot"): a.WarehouseLot,
    ("warehouse", "evidence"): a.WarehouseEvidence,
    ("warehouse", "party"): a.WarehouseParty,
    ("warehouse", "device"): a.WarehouseDevice,
    ("warehouse", "alerts"): a.WarehouseAlerts,
    ("warehouse", "alert"): a.WarehouseAlert,
    ("warehouse", "alert_trail"): a.WarehouseAlertTrail,
    ("warehouse", "holds"): a.WarehouseHolds,
    ("warehouse", "devices"): a.WarehouseDevices,
    ("warehouse", "stock"): a.WarehouseStock,
    ("warehouse", "prices"): a.WarehousePrices,
    ("warehouse", "facilities"): a.WarehouseFacilities,
    ("warehouse", "facility"): a.WarehouseFacility,
    ("warehouse", "valuation"): a.WarehouseValuation,
    ("warehouse", "exposure"): a.WarehouseExposures,
}


def app_answer(request: web.Request, name: str, query_name: str) -> dict[str, Any]:
    """An installed application's read query, over the state as of the latest checkpoint, with
    that checkpoint's height first."""
    node = request.app[NODE]
    chain = finality_chain(node)
    found = application(name)
    if found is None:
        raise NotFound(f"no application {name!r} is installed")
    run = found.queries.get(query_name)
    if run is None:
        raise NotFound(f"application {name!r} has no query {query_name!r}; it has {', '.join(sorted(found.queries))}")
    return {"height": chain.height, **run(chain.state, request.query)}


async def get_app_query(request: web.Request) -> web.Response:
    """A query this API has no type for: its answer, checked to be the envelope."""
    answer = app_answer(request, request.match_info["app"], request.match_info["query"])
    msgspec.convert(answer, r.AppAnswer)
    return json_response(answer)


def typed_query(name: str, query_name: str, answer: type[r.Response]) -> Handler:
    """The handler of a typed query: the application's answer converted to its type, so what it
    answers is what the document says (a field the type lacks fails, in the tests first)."""

    async def get_typed_query(request: web.Request) -> web.Response:
        return json_response(msgspec.convert(app_answer(request, name, query_name), answer))

    return get_typed_query


def _query_params(doc: str | None) -> str:
    """The parameters a query's docstring names first (`?id=`, `?key=` ...), or nothing."""
    text = " ".join((doc or "").split())
    return text[1:text.index("`", 1)] if text.startswith("`?") and "`" in text[1:] else ""


def _query_summary(doc: str | None) -> str:
    """A query's docstring without the parameters it starts with."""
    text = " ".join((doc or "").split())
    if text.startswith("`?") and "`" in text[1:]:
        text = text[text.index("`", 1) + 1:].lstrip(" :")
    return text


def _named_params(doc: str | None) -> tuple[Param, ...]:
    """The query parameters a query's docstring names (`?hash=`, `?id=&key=` ...)."""
    return tuple(query(name, {"type": "string"}) for name in re.findall(r"[?&]([a-z_]+)=", _query_params(doc)))


def _typed_query_routes() -> tuple[Route, ...]:
    routes = []
    for (name, query_name), answer in TYPED_QUERIES.items():
        found = application(name)
        if found is None or query_name not in found.queries:
            raise ValueError(f"a typed query {name}/{query_name} that no installed application answers")
        doc = found.queries[query_name].__doc__
        routes.append(Route("GET", f"/v1/apps/{name}/{query_name}", typed_query(name, query_name, answer),
                            f"The `{name}` application's `{query_name}` query ({found.summary})", {200: answer},
                            ("bad_request", "not_found"), description=" ".join((doc or "").split()),
                            params=_named_params(doc)))
    return tuple(routes)


def _app_query_route() -> Route:
    apps = installed_applications()
    return Route(
        "GET", "/v1/apps/{app}/{query}", get_app_query,
        "An installed application's read query, as of the latest checkpoint: "
        + "; ".join(f"`{app.name}` ({app.summary}): " + ", ".join(f"`{name}`" for name in sorted(app.queries))
                    for app in apps),
        {200: r.AppAnswer}, ("bad_request", "not_found"),
        description="\n".join(f"* `GET /v1/apps/{app.name}/{name}{_query_params(query_.__doc__)}`:"
                              f" {_query_summary(query_.__doc__)}"
                              + (" (typed: see its own path)" if (app.name, name) in TYPED_QUERIES else "")
                              for app in apps for name, query_ in sorted(app.queries.items())),
        params=(path_param("app", {"type": "string", "enum": [app.name for app in apps]}),
                Param("query", "path", {"type": "string"}, required=True)))


ROUTES = (
    Route("GET", "/v1/apps", get_apps,
          "The installed applications: name, summary, operation kinds, read queries and console page (a script"
          " module the web console loads for `#/<name>`)", {200: r.Applications}),
    *_typed_query_routes(),  # before the general route, which would match them too
    _app_query_route(),
)
