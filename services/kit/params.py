"""Query parameters every service declares alike: the batched reads' repeatable lists.

The gateway's DataLoaders ask for up to :data:`~services.kit.values.MAX_BATCH` rows in one
call (``?msisdn=A&msisdn=B``, ``?id=M1&id=M2``, ``?customer_id=1&customer_id=2``); each
route takes the list with one of these types, so the limit, the normalisation and the 422
naming the field are the same everywhere.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Query
from pydantic import Field

from services.kit.values import MAX_BATCH, MsisdnList

MsisdnsQuery = Annotated[
    MsisdnList | None,
    Query(
        max_length=MAX_BATCH,
        description=f"Repeatable (`?msisdn=A&msisdn=B`), at most {MAX_BATCH} values: only these "
        "customers' rows. Any usual form of a mobile number (+86, separators), each normalised "
        "to its 11 digits; duplicates count once. More values, or a bad one: 422 with "
        "`field` = `msisdn`.",
    ),
]
"""``msisdn``: one or more customers' numbers (absent: no filter)."""

IdsQuery = Annotated[
    list[str] | None,
    Query(
        max_length=MAX_BATCH,
        description=f"Repeatable (`?id=A&id=B`), at most {MAX_BATCH} values: only these rows "
        "(unknown ids are left out). More values: 422 with `field` = `id`.",
    ),
]
"""``id``: one or more row ids (absent: no filter)."""

CustomerIdsQuery = Annotated[
    list[Annotated[int, Field(ge=1)]] | None,
    Query(
        max_length=MAX_BATCH,
        description=f"Repeatable, at most {MAX_BATCH} values: only the rows of these customers, "
        "by profile's customer id (the key a partner's reads go by: it never holds a number). "
        "Unknown ids are left out. More values, or one that is no positive integer: 422 "
        "naming the field.",
    ),
]
"""Profile's customer ids (absent: no filter)."""
