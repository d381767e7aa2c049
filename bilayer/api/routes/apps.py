"""Application routes: the installed applications and their read queries. A query's answer is
the application's own (its keeper's typed view, rendered by the application), passed on with
the height it is as of."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ...errors import NotFound
from ...execution.application import application, installed_applications
from .. import responses as r
from ..context import NODE, finality_chain, json_response
from ..spec import Param, Route, path_param


async def get_apps(request: web.Request) -> web.Response:
    """The installed applications: what each is, its read queries and its console page."""
    return json_response(r.Applications(applications=[
        r.Application(name=app.name, summary=app.summary, kinds=sorted(app.handlers()), queries=sorted(app.queries),
                      console=f"/static/{app.console}" if app.console else None)
        for app in installed_applications()]))


async def get_app_query(request: web.Request) -> web.Response:
    """An installed application's read query, over the state as of the latest checkpoint."""
    node = request.app[NODE]
    chain = finality_chain(node)
    name, query_name = request.match_info["app"], request.match_info["query"]
    found = application(name)
    if found is None:
        raise NotFound(f"no application {name!r} is installed")
    query = found.queries.get(query_name)
    if query is None:
        raise NotFound(f"application {name!r} has no query {query_name!r}; it has {', '.join(sorted(found.queries))}")
    answer: dict[str, Any] = {"height": chain.height, **query(chain.state, request.query)}
    return json_response(answer)


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


def _app_query_route() -> Route:
    apps = installed_applications()
    return Route(
        "GET", "/v1/apps/{app}/{query}", get_app_query,
        "An installed application's read query, as of the latest checkpoint: "
        + "; ".join(f"`{app.name}` ({app.summary}): " + ", ".join(f"`{name}`" for name in sorted(app.queries))
                    for app in apps),
        {200: dict[str, Any]}, ("bad_request", "not_found"),
        description="\n".join(f"* `GET /v1/apps/{app.name}/{name}{_query_params(query.__doc__)}`:"
                              f" {_query_summary(query.__doc__)}"
                              for app in apps for name, query in sorted(app.queries.items())),
        params=(path_param("app", {"type": "string", "enum": [app.name for app in apps]}),
                Param("query", "path", {"type": "string"}, required=True)))


ROUTES = (
    Route("GET", "/v1/apps", get_apps,
          "The installed applications: name, summary, operation kinds, read queries and console page (a script"
          " module the web console loads for `#/<name>`)", {200: r.Applications}),
    _app_query_route(),
)
