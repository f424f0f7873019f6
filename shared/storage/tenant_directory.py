"""Finding a tenant's Teams configuration: its stored row, or the default tenant's settings."""

from __future__ import annotations

from dataclasses import replace

from shared.domain.tenant import InstallStatus, MicrosoftProfile, Tenant
from shared.storage.errors import AlreadyExistsError, ConcurrencyError, NotFoundError
from shared.storage.tenants import TenantRepository


class TenantDirectory:
    """Tenants as the service sees them.

    A stored row wins. The default tenant may also be described only by the seed's environment
    variables; settings saved for it later become a row that keeps that profile. Any other
    tenant without a row exists (its users can book) but is not configured for Teams.
    """

    def __init__(self, repository: TenantRepository, default: Tenant | None) -> None:
        self._repository = repository
        self._default = default

    def get(self, tenant_id: str, *, recent: bool = False) -> Tenant:
        """The tenant. `recent`: a copy read moments ago in this process will do (the meeting
        steps of a request); otherwise it is read now (settings, capability, checks)."""
        try:
            if recent:
                tenant = self._repository.get_recent(tenant_id)
            else:
                tenant = self._repository.get(tenant_id)
        except NotFoundError:
            if self._default is not None and tenant_id == self._default.tenant_id:
                return self._default
            return Tenant(
                tenant_id=tenant_id, display_name=tenant_id, install_status=InstallStatus.PENDING
            )
        default = self._default
        if default is not None and tenant_id == default.tenant_id and default.microsoft:
            stored = tenant.microsoft
            # The default tenant's registration is the settings': a row that copied it (on
            # saving the organizer's id or the health) follows them, e.g. a secret's new expiry.
            if stored is None or _same_registration(stored, default.microsoft):
                tenant = replace(tenant, microsoft=default.microsoft)
        return tenant

    def is_known(self, tenant_id: str) -> bool:
        """The tenant has a row, or is the default tenant."""
        if self._default is not None and tenant_id == self._default.tenant_id:
            return True
        try:
            self._repository.get(tenant_id)
        except NotFoundError:
            return False
        return True

    def tenant_ids(self) -> list[str]:
        """Every tenant that may have meetings: the stored ones and the default tenant."""
        ids = {tenant.tenant_id for tenant in self._repository.list_all()}
        if self._default is not None:
            ids.add(self._default.tenant_id)
        return sorted(ids)

    def stored(self) -> list[Tenant]:
        """The tenants that have a row (one partition scan)."""
        return self._repository.list_all()

    def save(self, tenant: Tenant) -> Tenant:
        """Insert a tenant seen for the first time, or update one read earlier (ETag)."""
        if tenant.etag is None:
            try:
                return self._repository.add(tenant)
            except AlreadyExistsError as exc:
                raise ConcurrencyError(f"tenant {tenant.tenant_id} was created meanwhile") from exc
        return self._repository.update(tenant)


def _same_registration(a: MicrosoftProfile, b: MicrosoftProfile) -> bool:
    return (a.directory_tenant_id, a.client_id, a.credential, a.secret_setting) == (
        b.directory_tenant_id,
        b.client_id,
        b.credential,
        b.secret_setting,
    )
