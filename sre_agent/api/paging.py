"""The lists' paging (``/investigations``, ``/incidents``): one more than asked says
whether there is a next page; the cursor ``before`` is this page's last id."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar
from urllib.parse import urlencode

from fastapi import HTTPException


class _HasId(Protocol):
    id: str


T = TypeVar("T", bound=_HasId)


async def page(
    fetch: Callable[..., Sequence[T]],
    *,
    path: str,
    what: str,
    filters: Mapping[str, Any],
    before: str | None,
    limit: int,
) -> tuple[list[T], str | None, str | None]:
    """The page's items (read in a thread), the next cursor and the next page's link;
    an unknown ``before`` is a 422 naming ``what`` it should have been."""
    try:
        found = await asyncio.to_thread(fetch, **filters, before=before, limit=limit + 1)
    except KeyError:
        raise HTTPException(422, f"before: no {what} with id {str(before)[:40]!r}") from None
    items = list(found[:limit])
    after = items[-1].id if len(found) > limit else None
    query: dict[str, Any] = {k: v for k, v in filters.items() if v}
    query |= {"limit": limit, "before": after}
    return items, after, f"{path}?{urlencode(query)}" if after else None
