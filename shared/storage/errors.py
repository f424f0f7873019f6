"""One error tree for persistence. Services branch on these types, never on SDK errors."""

from __future__ import annotations

from types import MappingProxyType

from shared import keys
from shared.errors import AppError


class StorageError(AppError):
    """Base of every persistence error."""

    code = "storage_error"


class NotFoundError(StorageError):
    """The entity does not exist (or belongs to another tenant, which is the same to callers)."""

    http_status = 404
    code = "not_found"
    public_message = "Booking not found"


class AlreadyExistsError(StorageError):
    """An insert met an entity with the same key: the natural idempotency check."""

    code = "already_exists"


class ConcurrencyError(StorageError):
    """Someone else changed the entity since it was read; re-read and decide again."""

    http_status = 409
    code = "conflict"
    public_message = "The booking was changed by someone else; reload and try again"


class InvalidKeyError(StorageError, keys.InvalidKeyError):
    """A key holds characters Table Storage forbids, or is empty or too long."""

    http_status = 400
    code = "invalid_id"


class SchemaError(StorageError, ValueError):
    """An entity does not fit the schema: a stored row that cannot be read, or a value too big."""

    code = "schema_mismatch"


class StorageUnavailableError(StorageError):
    """Storage could not be reached or answered with a server error; the caller may retry."""

    http_status = 503
    code = "storage_unavailable"
    public_message = "Storage is unavailable; try again shortly"
    headers = MappingProxyType({"Retry-After": "5"})
