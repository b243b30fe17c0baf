"""Key management, for operators: create, rotate, list and revoke keys; clients' limits.

`offload.auth` authenticates requests; the `offload keys` command, the local stack's seeding
and the tests call this. No request path imports it.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from offload.auth import CLIENT_ID, KEY_PREFIX, SCOPES, hash_key
from offload.table import ApiClient, ClientAccount


def client_limit(client_id: str) -> int | None:
    """The hourly limit every key of `client_id` shares; None for a client with no account."""
    try:
        account = ClientAccount.get(ClientAccount.key_for(client_id), ClientAccount.SORT)
    except ClientAccount.DoesNotExist:
        return None
    return int(account.hourly_limit)


def client_limits() -> dict[str, int]:
    """Every client's hourly limit, by client id, for operators."""
    accounts = ClientAccount.scan(ClientAccount.sk == ClientAccount.SORT)
    return {account.client_id: int(account.hourly_limit) for account in accounts}


def set_client_limit(client_id: str, hourly_limit: int) -> int | None:
    """Give `client_id` (and so all of its keys) `hourly_limit`; the limit it had, if any.

    The account holds it; each key carries a copy, so that authentication reads one item.
    """
    if not CLIENT_ID.fullmatch(client_id):
        raise ValueError("a client id is a lower-case name: letters, digits, - and _")
    previous = client_limit(client_id)
    now = int(time.time())
    ClientAccount(ClientAccount.key_for(client_id), ClientAccount.SORT).update(
        actions=[
            ClientAccount.client_id.set(client_id),
            ClientAccount.hourly_limit.set(hourly_limit),
            # Kept from the account's first write.
            ClientAccount.created_at.set(ClientAccount.created_at | now),
            ClientAccount.updated_at.set(now),
        ]
    )
    # Only a changed limit has copies to bring in line (a scan: an operator's command).
    if previous is not None and previous != hourly_limit:
        for record in _keys_of(client_id):
            if int(record.hourly_limit) != hourly_limit:
                record.update(actions=[ApiClient.hourly_limit.set(hourly_limit)])
    return previous


def new_key() -> str:
    """A fresh random API key (shown to its owner once, never stored)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def create_key(
    client_id: str,
    *,
    scopes: set[str],
    hourly_limit: int,
    key: str | None = None,
    valid_until: float | None = None,
) -> str:
    """Store a new key for `client_id` and return it in clear, the only time it exists so.

    `valid_until` (epoch seconds): when the key stops working; None, never.
    `hourly_limit` is the client's: it becomes the limit of every key of the client.
    """
    if not CLIENT_ID.fullmatch(client_id):
        raise ValueError("a client id is a lower-case name: letters, digits, - and _")
    unknown = scopes - SCOPES
    if unknown:
        raise ValueError(f"unknown scopes: {sorted(unknown)}")
    key = key or new_key()
    set_client_limit(client_id, hourly_limit)
    ApiClient(
        ApiClient.key_for(hash_key(key)),
        ApiClient.SORT,
        client_id=client_id,
        key_prefix=key[:8],
        scopes=set(scopes),
        hourly_limit=hourly_limit,
        created_at=int(time.time()),
        valid_until=None if valid_until is None else int(valid_until),
    ).save(condition=ApiClient.pk.does_not_exist())
    return key


@dataclass(frozen=True, slots=True)
class Rotation:
    """A client's new key, and when its old keys stop working."""

    key: str
    client_id: str
    old_keys: int
    old_valid_until: int


def rotate(
    client_id: str,
    *,
    grace_seconds: int,
    valid_until: float | None = None,
    now: float | None = None,
) -> Rotation:
    """A new key (expiring at `valid_until`, if given) with the scope and limit of the
    client's newest active key; the client's other active keys expire after `grace_seconds`
    (sooner, if they were due sooner)."""
    now = time.time() if now is None else now
    active = [
        record
        for record in list_keys()
        if record.client_id == client_id
        and not record.disabled
        and (record.valid_until is None or record.valid_until > now)
    ]
    if not active:
        raise LookupError(f"client {client_id!r} has no active key to rotate")
    newest = active[-1]
    key = create_key(
        client_id,
        scopes=set(newest.scopes),
        hourly_limit=int(newest.hourly_limit),
        valid_until=valid_until,
    )
    until = int(now + grace_seconds)
    for record in active:
        if record.valid_until is None or record.valid_until > until:
            record.update(actions=[ApiClient.valid_until.set(until)])
    return Rotation(key=key, client_id=client_id, old_keys=len(active), old_valid_until=until)


def list_keys() -> list[ApiClient]:
    """Every stored key record (hashes only), for operators."""
    return sorted(
        ApiClient.scan(ApiClient.sk == ApiClient.SORT),
        key=lambda record: (record.client_id, record.created_at),
    )


def revoke(*, client_id: str | None = None, key: str | None = None) -> int:
    """Disable one key, or every key of a client; return how many were disabled."""
    if key:
        try:
            targets = [ApiClient.get(ApiClient.key_for(hash_key(key)), ApiClient.SORT)]
        except ApiClient.DoesNotExist:
            targets = []
    else:
        targets = _keys_of(client_id or "")
    for record in targets:
        record.update(actions=[ApiClient.disabled.set(True)])
    return len(targets)


def _keys_of(client_id: str) -> list[ApiClient]:
    """Every key record of one client (a scan: an operator's command, never a request's)."""
    condition = (ApiClient.sk == ApiClient.SORT) & (ApiClient.client_id == client_id)
    return list(ApiClient.scan(condition))
