"""What every Table Storage repository shares: keys, field reading, error translation."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from shared import keys
from shared.keys import is_utf8
from shared.storage.errors import (
    AlreadyExistsError,
    ConcurrencyError,
    InvalidKeyError,
    NotFoundError,
    SchemaError,
    StorageError,
    StorageUnavailableError,
)

if TYPE_CHECKING:
    from azure.data.tables import TableClient, TableServiceClient

    from shared.settings import StorageSettings

# A string property holds at most 64 KiB of UTF-16, i.e. 32 Ki UTF-16 units.
MAX_STRING_PROPERTY_CHARS = 32 * 1024
KEY_SEPARATOR = "|"

T = TypeVar("T")


def validate_key(value: str, what: str) -> str:
    """Return `value` if it can be part of a table key, else raise `InvalidKeyError`: the
    rule of `shared.keys`, failing as a storage error."""
    try:
        return keys.validate_key(value, what)
    except keys.InvalidKeyError as exc:
        raise InvalidKeyError(str(exc)) from None


def row_key(*parts: str) -> str:
    return KEY_SEPARATOR.join(parts)


def prefix_range(prefix: str) -> str:
    """An OData filter for row keys that start with `prefix` (a range scan, not a full scan)."""
    # "~" sorts after every character we allow in keys.
    return f"RowKey ge '{_quote(prefix)}' and RowKey lt '{_quote(prefix + '~')}'"


def _quote(value: str) -> str:
    return value.replace("'", "''")


def check_string(value: str | None, what: str) -> str | None:
    # Counted as Storage counts, in UTF-16 units: a character outside the BMP takes two.
    if value is not None and len(value.encode("utf-16-le", "surrogatepass")) // 2 > (
        MAX_STRING_PROPERTY_CHARS
    ):
        raise SchemaError(f"{what} is longer than {MAX_STRING_PROPERTY_CHARS} characters")
    if value is not None and not is_utf8(value):
        raise SchemaError(f"{what} is not valid text (it holds a lone surrogate)")
    return value


def to_utc(value: datetime, what: str) -> datetime:
    if value.tzinfo is None:
        raise SchemaError(f"{what} must carry a UTC offset")
    return value.astimezone(UTC)


class EntityReader:
    """Reads typed fields from a stored entity; a row that does not fit is a `SchemaError`."""

    def __init__(self, entity: Mapping[str, Any], kind: str) -> None:
        self._entity = entity
        self._where = f"{kind} entity ({entity.get('PartitionKey')!r}, {entity.get('RowKey')!r})"

    def _get(self, name: str, types: type | tuple[type, ...], required: bool) -> Any:
        value = self._entity.get(name)
        if value is None:
            if required:
                raise SchemaError(f"{self._where} has no {name}")
            return None
        if not isinstance(value, types):
            raise SchemaError(
                f"{self._where}: {name} should be {types}, got {type(value).__name__}"
            )
        return value

    def text(self, name: str) -> str:
        value: str = self._get(name, str, True)
        return value

    def opt_text(self, name: str) -> str | None:
        value: str | None = self._get(name, str, False)
        return value or None

    def number(self, name: str, default: int | None = None) -> int:
        value = self._get(name, int, default is None)
        if isinstance(value, bool):
            raise SchemaError(f"{self._where}: {name} should be a number")
        if value is None:
            assert default is not None  # _get raised for a required field
            return default
        return int(value)

    def opt_number(self, name: str) -> int | None:
        value = self._get(name, int, False)
        if isinstance(value, bool):
            raise SchemaError(f"{self._where}: {name} should be a number")
        return None if value is None else int(value)

    def flag(self, name: str, default: bool = False) -> bool:
        value = self._get(name, bool, False)
        return default if value is None else bool(value)

    def moment(self, name: str) -> datetime:
        value: datetime = self._get(name, datetime, True)
        return value.astimezone(UTC)

    def opt_moment(self, name: str) -> datetime | None:
        value: datetime | None = self._get(name, datetime, False)
        return value.astimezone(UTC) if value else None

    def json_value(self, name: str) -> Any:
        raw = self.text(name)
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise SchemaError(f"{self._where}: {name} is not valid JSON") from exc

    def enum(self, name: str, enum_type: Callable[[str], T]) -> T:
        raw = self.text(name)
        try:
            return enum_type(raw)
        except ValueError as exc:
            raise SchemaError(f"{self._where}: {name} has unknown value {raw!r}") from exc

    def fail(self, message: str) -> SchemaError:
        return SchemaError(f"{self._where}: {message}")


@contextmanager
def translated_errors(what: str) -> Iterator[None]:
    """Turn Azure SDK errors into our storage error tree."""
    from azure.core.exceptions import (
        HttpResponseError,
        ResourceExistsError,
        ResourceModifiedError,
        ResourceNotFoundError,
        ServiceRequestError,
        ServiceResponseError,
    )
    from azure.data.tables import TableTransactionError

    try:
        yield
    except StorageError:
        raise
    except ResourceModifiedError as exc:
        raise ConcurrencyError(f"{what} was changed by someone else") from exc
    except ResourceExistsError as exc:
        raise AlreadyExistsError(f"{what} already exists") from exc
    except ResourceNotFoundError as exc:
        raise NotFoundError(f"{what} was not found") from exc
    except TableTransactionError as exc:
        code = str(getattr(exc, "error_code", None) or "")
        if code in ("UpdateConditionNotSatisfied", "ConditionNotMet"):
            raise ConcurrencyError(f"{what} was changed by someone else") from exc
        if code == "EntityAlreadyExists":
            raise AlreadyExistsError(f"{what} already exists") from exc
        if code == "ResourceNotFound":
            raise NotFoundError(f"{what} was not found") from exc
        raise StorageError(f"{what}: transaction failed ({code or 'unknown'})") from exc
    except (ServiceRequestError, ServiceResponseError) as exc:
        raise StorageUnavailableError(f"{what}: storage unreachable") from exc
    except HttpResponseError as exc:
        status = exc.status_code or 0
        if status >= 500 or status in (408, 429):
            raise StorageUnavailableError(f"{what}: storage answered {status}") from exc
        if status == 412:
            raise ConcurrencyError(f"{what} was changed by someone else") from exc
        error_code = str(getattr(exc, "error_code", None) or "")
        if status == 400 and error_code in ("PropertyValueTooLarge", "EntityTooLarge"):
            raise SchemaError(f"{what} is too large for Table Storage") from exc
        raise StorageError(f"{what}: storage answered {status} ({error_code})") from exc


# Storage clients' transport options: bounded waits, and no proxy or CA settings looked up in
# the environment on every call (storage is reached directly).
STORAGE_TRANSPORT: dict[str, Any] = {
    "connection_timeout": 5,
    "read_timeout": 20,
    "use_env_settings": False,
}


def make_table_service(storage: StorageSettings) -> TableServiceClient:
    """Build the process's TableServiceClient from a connection string or a managed identity."""
    from azure.data.tables import TableServiceClient

    from shared.storage.wire import count_request

    # Every table client comes from this service and shares its pipeline (policies and
    # transport, so one connection pool): the pipeline is built once per process.
    options: dict[str, Any] = {**STORAGE_TRANSPORT, "raw_request_hook": count_request}
    if storage.connection_string:
        return TableServiceClient.from_connection_string(storage.connection_string, **options)
    return TableServiceClient(
        endpoint=storage.table_endpoint, credential=storage_credential(storage), **options
    )


@functools.cache
def storage_credential(storage: StorageSettings) -> Any:
    """The managed identity that reaches storage: the user-assigned one the settings name
    (`AzureWebJobsStorage__clientId`), else the platform's default chain. One per process,
    shared by the table and queue clients, so that they share its token."""
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

    if storage.identity_client_id:
        return ManagedIdentityCredential(client_id=storage.identity_client_id)
    return DefaultAzureCredential()


PING_TIMEOUT_SECONDS = 3.0


class Tables:
    """Hands out table clients, creating each table once per process."""

    def __init__(self, service: TableServiceClient, prefix: str = "") -> None:
        self._service = service
        self._prefix = prefix
        self._ready: dict[str, TableClient] = {}
        # Entities read by repositories through these tables (point reads and query results),
        # so that a job can report what it cost. Approximate under threads; a figure, not a lock.
        self.reads = 0

    def table(self, name: str) -> TableClient:
        full_name = f"{self._prefix}{name}"
        client = self._ready.get(full_name)
        if client is None:
            with translated_errors(f"table {full_name}"):
                client = self._service.create_table_if_not_exists(full_name)
            self._ready[full_name] = client
        return client

    def ping(self, timeout: float = PING_TIMEOUT_SECONDS) -> None:
        """Raise `StorageUnavailableError` unless the table service answers within `timeout`
        seconds, at once: a health probe must answer while storage hangs, not after the SDK's
        retries of 20-second reads (80 s and more)."""
        pages = self._service.list_tables(
            results_per_page=1, retry_total=0, connection_timeout=timeout, read_timeout=timeout
        )
        with translated_errors("table service"):
            next(iter(pages.by_page()), None)
