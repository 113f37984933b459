"""pystac-client calls, with its failures turned into clearcube's errors.

Connection failures while opening an API are bad input (the user picked the URL or profile and
can check it or the network: exit 2); an API that fails while answering a search is a
:class:`~clearcube.errors.CatalogError` (exit 1).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pystac
import requests
from pystac_client import Client
from pystac_client.conformance import ConformanceClasses
from pystac_client.exceptions import APIError

from clearcube.errors import BadInputError, CatalogError

log = logging.getLogger(__name__)


def open_api(url: str, *, timeout: float, collections: Sequence[str] = ()) -> Client:
    """Open the STAC API at ``url`` and check it offers item search and ``collections``.

    Raises:
        BadInputError: unreachable, not a STAC API, no item search, or an unknown collection.
    """
    try:
        client = Client.open(url, timeout=timeout)
    except APIError as exc:
        raise _open_error(url, exc) from exc
    except (pystac.STACError, ValueError, KeyError, TypeError) as exc:
        raise BadInputError(
            f"{url} does not answer like a STAC API root ({type(exc).__name__}); "
            "check the URL (it must be the API root, e.g. .../v1)"
        ) from exc
    if not client.conforms_to(ConformanceClasses.ITEM_SEARCH):
        raise BadInputError(
            f"the STAC API at {url} does not offer item search; use a STAC API, not a static catalog"
        )
    if client.conforms_to(ConformanceClasses.COLLECTIONS):
        for name in collections:
            _check_collection(client, url, name)
    return client


def fetch_items(
    client: Client,
    url: str,
    collection: str,
    bbox: tuple[float, float, float, float],
    start: datetime,
    end: datetime,
    max_cloud: float | None,
    page_size: int,
) -> list[pystac.Item]:
    """POST-search one collection and return every item on every page.

    ``max_cloud`` goes to the server as a CQL2 filter when the API supports filtering; the
    caller filters again on the client side, so APIs without the filter extension agree.

    Raises:
        CatalogError: the API failed while answering.
    """
    extra: dict[str, Any] = {}
    if max_cloud is not None and client.conforms_to(ConformanceClasses.FILTER):
        extra = {
            "filter": {"op": "<=", "args": [{"property": "eo:cloud_cover"}, max_cloud]},
            "filter_lang": "cql2-json",
        }
    try:
        found = client.search(
            method="POST",
            collections=[collection],
            bbox=list(bbox),
            datetime=(start, end),
            limit=page_size,
            **extra,
        )
        items = list(found.items())
    except APIError as exc:
        status = getattr(exc, "status_code", None)
        reason = f"HTTP {status}" if status else _reason(exc)
        raise CatalogError(
            f"the STAC API at {url} failed while searching {collection} ({reason}: "
            f"{str(exc)[:200]}); retry later or use another --profile"
        ) from exc
    log.debug("%s: %d items from %s", url, len(items), collection)
    return items


def _check_collection(client: Client, url: str, name: str) -> None:
    """Raise BadInputError naming the available collections when ``name`` is not served."""
    try:
        if client.get_collection(name) is not None:  # pystac-client answers None on a 404
            return
    except APIError as exc:
        if getattr(exc, "status_code", None) != 404:
            raise _open_error(url, exc) from exc
    except (pystac.STACError, KeyError, ValueError):
        pass
    try:
        names = sorted(c.id for c in client.get_collections())
    except (APIError, pystac.STACError):
        names = []
    shown = ", ".join(names[:12]) + (" ..." if len(names) > 12 else "")
    raise BadInputError(
        f"collection {name!r} is not served by the STAC API at {url}; "
        f"give one of: {shown or '(the API lists none)'}"
    )


def _open_error(url: str, exc: APIError) -> BadInputError:
    status = getattr(exc, "status_code", None)
    if status:
        return BadInputError(
            f"the STAC API at {url} answered HTTP {status}; check the URL (the API root) "
            "and that the service is up"
        )
    return BadInputError(
        f"cannot reach the STAC API at {url} ({_reason(exc)}); check the URL and your network"
    )


def _reason(exc: BaseException) -> str:
    """A short cause for a connection failure (refused, timed out, DNS)."""
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, requests.exceptions.Timeout):
        return "timed out"
    if isinstance(cause, requests.exceptions.ConnectionError):
        text = str(cause)
        if "Connection refused" in text:
            return "connection refused"
        if "Name or service not known" in text or "getaddrinfo" in text:
            return "host name not found"
        return "connection failed"
    return type(cause or exc).__name__
