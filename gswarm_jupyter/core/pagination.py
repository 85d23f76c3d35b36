"""The list routes' `page`/`per_page` contract."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from .validation import INT64_MAX

T = TypeVar("T")

MAX_PER_PAGE = 500


class PageQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    page: int = Field(1, ge=1, le=INT64_MAX // MAX_PER_PAGE)
    per_page: int = Field(20, ge=1, le=MAX_PER_PAGE)


def paginate(items: Sequence[T], query: PageQuery, key: str) -> dict[str, Any]:
    """`{key: [...], total, page, per_page}` for one page of `items`."""
    start = (query.page - 1) * query.per_page
    return {
        key: list(items[start : start + query.per_page]),
        "total": len(items),
        "page": query.page,
        "per_page": query.per_page,
    }
