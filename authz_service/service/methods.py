"""Full gRPC method names, as `/authz.v1.Service/Method`.

They name what a call did wherever that is recorded or checked outside the transport:
the `action` of an administrative decision-log record, and the call a page cursor was
issued by. Plain strings, so the service layer stays free of gRPC; a test checks every
one against the generated service descriptors.
"""

from __future__ import annotations

__all__ = [
    "CREATE_BINDING",
    "CREATE_KEY",
    "CREATE_ROLE",
    "CREATE_SERVICE_ACCOUNT",
    "CREATE_TENANT",
    "DELETE_BINDING",
    "DELETE_RELATIONSHIPS",
    "DELETE_ROLE",
    "DELETE_SERVICE_ACCOUNT",
    "DELETE_TENANT",
    "DEPROVISION_SUBJECT",
    "DISABLE_SERVICE_ACCOUNT",
    "ENABLE_SERVICE_ACCOUNT",
    "EXPORT_TENANT",
    "GRANT_REACH",
    "LIST_BINDINGS",
    "LIST_KEYS",
    "LIST_ROLES",
    "LIST_SERVICE_ACCOUNTS",
    "LIST_TENANTS",
    "LOOKUP_RESOURCES",
    "LOOKUP_SUBJECTS",
    "QUERY_DECISIONS",
    "REACTIVATE_SUBJECT",
    "REACTIVATE_TENANT",
    "READ_RELATIONSHIPS",
    "REVOKE_KEY",
    "ROTATE_KEY",
    "SUSPEND_SUBJECT",
    "SUSPEND_TENANT",
    "UPDATE_ROLE",
    "WRITE_RELATIONSHIPS",
    "WRITE_SCHEMA",
]


def _method(service: str, name: str) -> str:
    return f"/authz.v1.{service}/{name}"


WRITE_RELATIONSHIPS = _method("RelationshipsService", "WriteRelationships")
DELETE_RELATIONSHIPS = _method("RelationshipsService", "DeleteRelationships")
READ_RELATIONSHIPS = _method("RelationshipsService", "ReadRelationships")
LOOKUP_RESOURCES = _method("PermissionsService", "LookupResources")
LOOKUP_SUBJECTS = _method("PermissionsService", "LookupSubjects")
WRITE_SCHEMA = _method("SchemaService", "WriteSchema")
CREATE_ROLE = _method("TenancyService", "CreateRole")
UPDATE_ROLE = _method("TenancyService", "UpdateRole")
DELETE_ROLE = _method("TenancyService", "DeleteRole")
LIST_ROLES = _method("TenancyService", "ListRoles")
CREATE_BINDING = _method("TenancyService", "CreateBinding")
DELETE_BINDING = _method("TenancyService", "DeleteBinding")
LIST_BINDINGS = _method("TenancyService", "ListBindings")
GRANT_REACH = _method("TenancyService", "GrantReach")
SUSPEND_SUBJECT = _method("TenancyService", "SuspendSubject")
REACTIVATE_SUBJECT = _method("TenancyService", "ReactivateSubject")
DEPROVISION_SUBJECT = _method("TenancyService", "DeprovisionSubject")
QUERY_DECISIONS = _method("AuditService", "QueryDecisions")
CREATE_TENANT = _method("TenantService", "CreateTenant")
LIST_TENANTS = _method("TenantService", "ListTenants")
SUSPEND_TENANT = _method("TenantService", "SuspendTenant")
REACTIVATE_TENANT = _method("TenantService", "ReactivateTenant")
DELETE_TENANT = _method("TenantService", "DeleteTenant")
EXPORT_TENANT = _method("TenantService", "ExportTenant")
CREATE_KEY = _method("KeysService", "CreateKey")
LIST_KEYS = _method("KeysService", "ListKeys")
REVOKE_KEY = _method("KeysService", "RevokeKey")
ROTATE_KEY = _method("KeysService", "RotateKey")
CREATE_SERVICE_ACCOUNT = _method("ServiceAccountsService", "CreateServiceAccount")
DISABLE_SERVICE_ACCOUNT = _method("ServiceAccountsService", "DisableServiceAccount")
ENABLE_SERVICE_ACCOUNT = _method("ServiceAccountsService", "EnableServiceAccount")
DELETE_SERVICE_ACCOUNT = _method("ServiceAccountsService", "DeleteServiceAccount")
LIST_SERVICE_ACCOUNTS = _method("ServiceAccountsService", "ListServiceAccounts")
