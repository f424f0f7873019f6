"""One error tree for persistence. Services branch on these types, never on SDK errors."""

from __future__ import annotations

from shared import keys


class StorageError(Exception):
    """Base of every persistence error."""


class NotFoundError(StorageError):
    """The entity does not exist (or belongs to another tenant, which is the same to callers)."""


class AlreadyExistsError(StorageError):
    """An insert met an entity with the same key: the natural idempotency check."""


class ConcurrencyError(StorageError):
    """Someone else changed the entity since it was read; re-read and decide again."""


class InvalidKeyError(StorageError, keys.InvalidKeyError):
    """A key holds characters Table Storage forbids, or is empty or too long."""


class SchemaError(StorageError, ValueError):
    """An entity does not fit the schema: a stored row that cannot be read, or a value too big."""


class StorageUnavailableError(StorageError):
    """Storage could not be reached or answered with a server error; the caller may retry."""
