'use strict';
// AuthzClient: one method per RPC of every service in proto/authz/v1 (RPC_METHODS maps
// them), promise-based, server streams as async iterators, results as plain objects
// (lib/api.js says how messages become results).

const crypto = require('node:crypto');
const grpc = require('@grpc/grpc-js');
const api = require('./api.js');
const { stream, unary } = require('./calls.js');
const forms = require('./forms.js');

/** 'authz.v1.Service/Rpc' -> client method. A new RPC without an entry fails the tests. */
const RPC_METHODS = Object.freeze({
  'authz.v1.PermissionsService/Check': 'check',
  'authz.v1.PermissionsService/CheckBulk': 'checkBulk',
  'authz.v1.PermissionsService/ListPermissions': 'listPermissions',
  'authz.v1.PermissionsService/LookupResources': 'lookupResources',
  'authz.v1.PermissionsService/LookupSubjects': 'lookupSubjects',
  'authz.v1.PermissionsService/Explain': 'explain',
  'authz.v1.RelationshipsService/WriteRelationships': 'writeRelationships',
  'authz.v1.RelationshipsService/DeleteRelationships': 'deleteRelationships',
  'authz.v1.RelationshipsService/ReadRelationships': 'readRelationships',
  'authz.v1.RelationshipsService/Watch': 'watch',
  'authz.v1.SchemaService/WriteSchema': 'writeSchema',
  'authz.v1.SchemaService/ReadSchema': 'readSchema',
  'authz.v1.TenancyService/CreateRole': 'createRole',
  'authz.v1.TenancyService/UpdateRole': 'updateRole',
  'authz.v1.TenancyService/DeleteRole': 'deleteRole',
  'authz.v1.TenancyService/ListRoles': 'listRoles',
  'authz.v1.TenancyService/CreateBinding': 'createBinding',
  'authz.v1.TenancyService/DeleteBinding': 'deleteBinding',
  'authz.v1.TenancyService/ListBindings': 'listBindings',
  'authz.v1.TenancyService/GrantReach': 'grantReach',
  'authz.v1.TenancyService/GetSubjectStatus': 'getSubjectStatus',
  'authz.v1.TenancyService/SuspendSubject': 'suspendSubject',
  'authz.v1.TenancyService/ReactivateSubject': 'reactivateSubject',
  'authz.v1.TenancyService/DeprovisionSubject': 'deprovisionSubject',
  'authz.v1.TenancyService/GetScimSync': 'getScimSync',
  'authz.v1.TenancyService/RepairScimDrift': 'repairScimDrift',
  'authz.v1.TenantService/CreateTenant': 'createTenant',
  'authz.v1.TenantService/GetTenant': 'getTenant',
  'authz.v1.TenantService/ListTenants': 'listTenants',
  'authz.v1.TenantService/SuspendTenant': 'suspendTenant',
  'authz.v1.TenantService/ReactivateTenant': 'reactivateTenant',
  'authz.v1.TenantService/DeleteTenant': 'deleteTenant',
  'authz.v1.TenantService/ExportTenant': 'exportTenant',
  'authz.v1.KeysService/CreateKey': 'createKey',
  'authz.v1.KeysService/ListKeys': 'listKeys',
  'authz.v1.KeysService/RevokeKey': 'revokeKey',
  'authz.v1.KeysService/RotateKey': 'rotateKey',
  'authz.v1.ServiceAccountsService/CreateServiceAccount': 'createServiceAccount',
  'authz.v1.ServiceAccountsService/GetServiceAccount': 'getServiceAccount',
  'authz.v1.ServiceAccountsService/ListServiceAccounts': 'listServiceAccounts',
  'authz.v1.ServiceAccountsService/DisableServiceAccount': 'disableServiceAccount',
  'authz.v1.ServiceAccountsService/EnableServiceAccount': 'enableServiceAccount',
  'authz.v1.ServiceAccountsService/DeleteServiceAccount': 'deleteServiceAccount',
  'authz.v1.ServiceAccountsService/CreateServiceAccountKey': 'createServiceAccountKey',
  'authz.v1.ServiceAccountsService/ListServiceAccountKeys': 'listServiceAccountKeys',
  'authz.v1.ServiceAccountsService/ReportServiceAccounts': 'reportServiceAccounts',
  'authz.v1.AuditService/QueryDecisions': 'queryDecisions',
  'authz.v1.AuditService/VerifyLog': 'verifyLog',
  'authz.v1.AuditService/ExplainDecision': 'explainDecision',
  'authz.v1.AuditService/ReplayDecisions': 'replayDecisions',
});

// Writes that are safe to repeat after UNAVAILABLE: WriteRelationships always carries an
// idempotency key; WriteSchema of the same text is a no-op by design (its version is a
// digest). Every other write (roles, bindings, lifecycle, keys, tenants, filter deletes)
// has no key, so a retry could apply twice or fail a precondition it had passed.
const RETRIED_WRITES = new Set(['WriteRelationships', 'WriteSchema']);
const READ = /^(Check|CheckBulk|ListPermissions|Lookup|Explain|Read|Watch|List|Get|GrantReach|Query|Verify|Export)/;

const DEFAULT_BULK_LIMIT = 1000; // the server's AUTHZ_MAX_BATCH default
const BULK_CONCURRENCY = 4;

function credentialsOf(tls) {
  if (!tls) return grpc.credentials.createInsecure();
  if (tls === true) return grpc.credentials.createSsl();
  if (tls instanceof grpc.ChannelCredentials) return tls;
  const pem = (value) => (value === undefined || value === null ? null : Buffer.from(value));
  if (Boolean(tls.cert) !== Boolean(tls.key)) throw new TypeError('tls.cert and tls.key go together');
  return grpc.credentials.createSsl(pem(tls.ca), pem(tls.key), pem(tls.cert));
}

/** Runs `task(i)` for i < count with at most `limit` in flight; results in order. */
async function pool(count, limit, task) {
  const results = new Array(count);
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next;
      next += 1;
      results[i] = await task(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, count) }, worker));
  return results;
}

function bulkItem(item) {
  const [resource, permission, subject, context] = Array.isArray(item)
    ? item : [item.resource, item.permission, item.subject, item.context];
  return {
    resource: forms.toObject(resource),
    permission,
    subject: forms.toSubject(subject),
    context: forms.toStructOrNull(context),
  };
}

function bulkResult(item) {
  if (item.result) return { ...item.result, error: null };
  return {
    decision: 'UNSPECIFIED', allowed: false, missingContext: [], decisionId: '', explanation: null,
    error: item.error,
  };
}

class AuthzClient {
  #stubs = {};
  #tenant;
  #tokens = new Map(); // tenant -> token of this client's last write there
  #metadata = new grpc.Metadata();
  #policy;
  #timeoutMs;
  #bulkLimit;

  /**
   * @param {string} target `host:port`
   * @param {object} [options] see index.d.ts (ClientOptions) and clients/README.md
   */
  constructor(target, {
    tenant, apiKey, tls = false, timeoutMs = 5000, retries = 3, backoffMs = [50, 1000],
    bulkLimit = DEFAULT_BULK_LIMIT, interceptors = [], channelOptions = {},
  } = {}) {
    const options = {
      // Reconnect on the retries' schedule: with gRPC's default (1 s, then longer) a call
      // retried sooner fails at once while the channel waits out its own backoff.
      'grpc.initial_reconnect_backoff_ms': backoffMs[0],
      'grpc.max_reconnect_backoff_ms': backoffMs[1],
      ...channelOptions,
      interceptors,
    };
    if (tls && tls.serverName) {
      options['grpc.ssl_target_name_override'] = tls.serverName;
      options['grpc.default_authority'] = tls.serverName;
    }
    const credentials = credentialsOf(tls);
    let channel;
    for (const name of Object.keys(api.services())) {
      const service = name.slice(api.PACKAGE.length + 1);
      const Stub = api.stubClass(service);
      // Every stub shares the first one's channel: the client holds one connection. A
      // fresh options object each: grpc-js deletes `interceptors` from the one it gets.
      const stub = new Stub(target, credentials, { ...options, ...(channel && { channelOverride: channel }) });
      channel = channel || stub.getChannel();
      this.#stubs[service] = stub;
    }
    this.#tenant = tenant;
    this.#timeoutMs = timeoutMs;
    this.#policy = { retries, backoffMs };
    this.#bulkLimit = bulkLimit;
    if (apiKey) this.#metadata.set('authorization', `Bearer ${apiKey}`);
  }

  /** The token of this client's last write in the tenant, or undefined. */
  lastToken(tenant) {
    return this.#tokens.get(this.#chosen(tenant));
  }

  close() {
    Object.values(this.#stubs)[0].close(); // the others share its channel
  }

  // --- PermissionsService -------------------------------------------------------------

  /** Decide `permission` for `subject` on `resource`. */
  async check(resource, permission, subject, options = {}) {
    const tenant = this.#chosen(options.tenant);
    return this.#unary('PermissionsService', 'Check', {
      tenant,
      resource: forms.toObject(resource),
      permission,
      subject: forms.toSubject(subject),
      context: forms.toStructOrNull(options.context),
      consistency: this.#consistency(tenant, options.consistency),
      withExplanation: Boolean(options.withExplanation),
      ...this.#onBehalf(options),
    }, options);
  }

  /**
   * Decide many items; above the server's per-call limit the batch is split. The first
   * call reads at the requested consistency; every later call at exactly its revision.
   */
  async checkBulk(items, options = {}) {
    const tenant = this.#chosen(options.tenant);
    const all = items.map(bulkItem);
    if (all.length === 0) throw new TypeError('checkBulk needs at least one item');
    const request = (chunk, consistency) => ({
      tenant,
      consistency,
      items: chunk,
      withExplanation: Boolean(options.withExplanation),
      ...this.#onBehalf(options),
    });
    const chunks = [];
    for (let i = 0; i < all.length; i += this.#bulkLimit) chunks.push(all.slice(i, i + this.#bulkLimit));
    const first = await this.#unary('PermissionsService', 'CheckBulk',
      request(chunks[0], this.#consistency(tenant, options.consistency)), options);
    const pinned = { atExactSnapshot: { token: first.checkedAt } };
    const rest = await pool(chunks.length - 1, BULK_CONCURRENCY, (i) => this.#unary(
      'PermissionsService', 'CheckBulk', request(chunks[i + 1], pinned), options,
    ));
    return {
      results: [first, ...rest].flatMap((response) => response.items.map(bulkResult)),
      checkedAt: first.checkedAt,
    };
  }

  /** Every permission of the resource's definition, for one subject. */
  async listPermissions(resource, subject, options = {}) {
    const tenant = this.#chosen(options.tenant);
    const result = await this.#unary('PermissionsService', 'ListPermissions', {
      tenant,
      resource: forms.toObject(resource),
      subject: forms.toSubject(subject),
      context: forms.toStructOrNull(options.context),
      consistency: this.#consistency(tenant, options.consistency),
      contextualRelationships: (options.contextualRelationships || []).map(forms.toRelationship),
    }, options);
    return { ...result, allowed: result.permissions.filter((p) => p.allowed).map((p) => p.permission) };
  }

  /** Async iterator of the resources of `resourceType` the subject has `permission` on. */
  async* lookupResources(resourceType, permission, subject, options = {}) {
    const tenant = this.#chosen(options.tenant);
    yield* this.#stream('PermissionsService', 'LookupResources', {
      tenant,
      resourceType,
      permission,
      subject: forms.toSubject(subject),
      context: forms.toStructOrNull(options.context),
      consistency: this.#consistency(tenant, options.consistency),
      limit: options.limit || 0,
      cursor: forms.toToken(options.cursor),
    }, options, resumeFromCursor);
  }

  /** Async iterator of the subjects of `subjectType` that have `permission` on `resource`. */
  async* lookupSubjects(resource, permission, subjectType, options = {}) {
    const tenant = this.#chosen(options.tenant);
    yield* this.#stream('PermissionsService', 'LookupSubjects', {
      tenant,
      resource: forms.toObject(resource),
      permission,
      subjectType,
      subjectRelation: options.subjectRelation || '',
      context: forms.toStructOrNull(options.context),
      consistency: this.#consistency(tenant, options.consistency),
      limit: options.limit || 0,
      cursor: forms.toToken(options.cursor),
    }, options, resumeFromCursor);
  }

  /** Decide like check, with every evaluation step in `explanation`. */
  async explain(resource, permission, subject, options = {}) {
    const tenant = this.#chosen(options.tenant);
    const { contextualRelationships, actor, reason, agents } = this.#onBehalf(options);
    return this.#unary('PermissionsService', 'Explain', {
      tenant,
      resource: forms.toObject(resource),
      permission,
      subject: forms.toSubject(subject),
      context: forms.toStructOrNull(options.context),
      consistency: this.#consistency(tenant, options.consistency),
      actor,
      reason,
      contextualRelationships,
      agents,
    }, options);
  }

  // --- RelationshipsService -----------------------------------------------------------

  /**
   * Apply `updates` atomically: relationship texts/objects (with `options.operation`,
   * default touch) or `{ operation, relationship }` pairs.
   */
  async writeRelationships(updates, options = {}) {
    const tenant = this.#chosen(options.tenant);
    const operation = (op) => `OPERATION_${String(op || 'touch').toUpperCase()}`;
    const request = {
      tenant,
      updates: updates.map((u) => (u && u.relationship
        ? { operation: operation(u.operation), relationship: forms.toRelationship(u.relationship) }
        : { operation: operation(options.operation), relationship: forms.toRelationship(u) })),
      preconditions: (options.preconditions || []).map(forms.toPrecondition),
      idempotencyKey: options.idempotencyKey || crypto.randomUUID(),
    };
    const result = await this.#unary('RelationshipsService', 'WriteRelationships', request, options);
    this.#remember(tenant, result.writtenAt);
    return result;
  }

  /** Delete every relationship matching `filter`, atomically. */
  async deleteRelationships(filter, options = {}) {
    const tenant = this.#chosen(options.tenant);
    const result = await this.#unary('RelationshipsService', 'DeleteRelationships', {
      tenant,
      filter: forms.toFilter(filter),
      preconditions: (options.preconditions || []).map(forms.toPrecondition),
    }, options);
    this.#remember(tenant, result.deletedAt);
    return result;
  }

  /** Async iterator of the relationships matching `filter` (all of them when omitted). */
  async* readRelationships(filter = {}, options = {}) {
    const tenant = this.#chosen(options.tenant);
    yield* this.#stream('RelationshipsService', 'ReadRelationships', {
      tenant,
      filter: forms.toFilter(filter),
      consistency: this.#consistency(tenant, options.consistency),
      limit: options.limit || 0,
      cursor: forms.toToken(options.cursor),
    }, options, resumeFromCursor);
  }

  /**
   * Async iterator of the changes committed after `options.after` (a token), one result
   * per revision, until the consumer stops; a revision too large for one response comes
   * in several, all but the last with `partial` set and the `changesThrough` of the
   * revision before. Reconnects after UNAVAILABLE from the last `changesThrough`
   * received, so no change is missed or repeated, except the parts of a revision
   * received before a drop inside it, which come again with the rest.
   */
  async* watch(options = {}) {
    const tenant = this.#chosen(options.tenant);
    yield* this.#stream('RelationshipsService', 'Watch', {
      tenant,
      after: forms.toToken(options.after),
      filters: (options.filters || []).map(forms.toFilter),
    }, { ...options, timeoutMs: options.timeoutMs || 0 },
    (request, response) => ({ ...request, after: response.changesThrough }));
  }

  // --- SchemaService ------------------------------------------------------------------

  /** Validate `schema` and make it current; `force` writes even if data is orphaned. */
  async writeSchema(schema, options = {}) {
    return this.#unary('SchemaService', 'WriteSchema', { schema, force: Boolean(options.force) }, options);
  }

  /** The current schema, or `options.version`. */
  async readSchema(options = {}) {
    return this.#unary('SchemaService', 'ReadSchema', { schemaVersion: options.version || '' }, options);
  }

  // --- TenancyService -----------------------------------------------------------------

  async createRole(role, options = {}) {
    return this.#tenantWrite('CreateRole', { role: forms.toRole(role) }, options);
  }

  async updateRole(role, options = {}) {
    return this.#tenantWrite('UpdateRole', { role: forms.toRole(role) }, options);
  }

  async deleteRole(name, options = {}) {
    return this.#tenantWrite('DeleteRole', { name, cascade: Boolean(options.cascade) }, options);
  }

  async listRoles(options = {}) {
    return this.#tenantRead('ListRoles', { ...page(options) }, options);
  }

  async createBinding(binding, options = {}) {
    return this.#tenantWrite('CreateBinding', { binding: forms.toBinding(binding) }, options);
  }

  async deleteBinding(bindingId, options = {}) {
    return this.#tenantWrite('DeleteBinding', { bindingId }, options);
  }

  async listBindings(options = {}) {
    return this.#tenantRead('ListBindings', {
      subject: forms.toSubjectOrNull(options.subject),
      role: options.role || '',
      resource: forms.toObjectOrNull(options.resource),
      ...page(options),
    }, options);
  }

  /** What a grant reaches: `{ bindingId }`, `{ binding }` or `{ relationship }`. */
  async grantReach(grant, options = {}) {
    let chosen;
    if (grant.bindingId) chosen = { bindingId: grant.bindingId };
    else if (grant.binding) chosen = { binding: forms.toBinding(grant.binding) };
    else if (grant.relationship) chosen = { relationship: forms.toRelationship(grant.relationship) };
    else throw new TypeError('grantReach needs { bindingId }, { binding } or { relationship }');
    return this.#tenantRead('GrantReach', { ...chosen, ...page(options) }, options);
  }

  async getSubjectStatus(subject, options = {}) {
    return this.#tenantRead('GetSubjectStatus', { subject: forms.toObject(subject) }, options);
  }

  async suspendSubject(subject, reason, options = {}) {
    return this.#tenantWrite('SuspendSubject', { subject: forms.toObject(subject), reason }, options);
  }

  async reactivateSubject(subject, reason, options = {}) {
    return this.#tenantWrite('ReactivateSubject', { subject: forms.toObject(subject), reason }, options);
  }

  async deprovisionSubject(subject, reason, options = {}) {
    return this.#tenantWrite('DeprovisionSubject', { subject: forms.toObject(subject), reason }, options);
  }

  async getScimSync(options = {}) {
    return this.#unary('TenancyService', 'GetScimSync', { tenant: this.#chosen(options.tenant) }, options);
  }

  async repairScimDrift(reason, options = {}) {
    return this.#tenantWrite('RepairScimDrift', { reason }, options);
  }

  // --- TenantService (platform keys; requests name the tenant, there is no default) --

  async createTenant(name, options = {}) {
    return this.#unary('TenantService', 'CreateTenant', { name, reason: options.reason || '' }, options);
  }

  async getTenant(name, options = {}) {
    return this.#unary('TenantService', 'GetTenant', { name }, options);
  }

  async listTenants(options = {}) {
    return this.#unary('TenantService', 'ListTenants', {
      limit: options.limit || 0, cursor: forms.toToken(options.cursor),
    }, options);
  }

  async suspendTenant(name, reason, options = {}) {
    return this.#unary('TenantService', 'SuspendTenant', { name, reason }, options);
  }

  async reactivateTenant(name, reason, options = {}) {
    return this.#unary('TenantService', 'ReactivateTenant', { name, reason }, options);
  }

  /** With `expectedExportSha256` (from exportTenant) it purges only that export's data. */
  async deleteTenant(name, reason, options = {}) {
    return this.#unary('TenantService', 'DeleteTenant', {
      name, reason, expectedExportSha256: options.expectedExportSha256 || '',
    }, options);
  }

  /**
   * Async iterator of a suspended tenant's export in chunks of whole lines; the last has
   * `relationshipCount`, `exportSha256` and `exportedAt`. Not resumable (no cursor): a
   * failure after the first chunk rejects, and the export is read again from the start.
   */
  async* exportTenant(name, options = {}) {
    yield* this.#stream('TenantService', 'ExportTenant', { name }, options, null);
  }

  // --- KeysService --------------------------------------------------------------------

  async createKey(scopes, options = {}) {
    return this.#unary('KeysService', 'CreateKey', {
      tenant: this.#chosen(options.tenant),
      scopes,
      description: options.description || '',
      expireTime: forms.toTimestamp(options.expireTime),
      reason: options.reason || '',
    }, options);
  }

  async listKeys(options = {}) {
    return this.#unary('KeysService', 'ListKeys', {
      tenant: this.#chosen(options.tenant), limit: options.limit || 0, cursor: forms.toToken(options.cursor),
    }, options);
  }

  async revokeKey(keyId, options = {}) {
    return this.#unary('KeysService', 'RevokeKey', {
      tenant: this.#chosen(options.tenant), keyId, reason: options.reason || '',
    }, options);
  }

  /** A new secret for the key; the old one keeps working for `overlapSeconds`. */
  async rotateKey(keyId, options = {}) {
    const overlap = forms.toDuration(options.overlapSeconds, 'overlapSeconds');
    return this.#unary('KeysService', 'RotateKey', {
      tenant: this.#chosen(options.tenant), keyId, overlap, reason: options.reason || '',
    }, options);
  }

  // --- ServiceAccountsService ---------------------------------------------------------

  /** A new service account: the subject `serviceaccount:<accountId>` in decisions. */
  async createServiceAccount(accountId, options = {}) {
    return this.#unary('ServiceAccountsService', 'CreateServiceAccount', {
      tenant: this.#chosen(options.tenant), accountId,
      description: options.description || '', reason: options.reason || '',
    }, options);
  }

  async getServiceAccount(accountId, options = {}) {
    return this.#unary('ServiceAccountsService', 'GetServiceAccount', {
      tenant: this.#chosen(options.tenant), accountId,
    }, options);
  }

  async listServiceAccounts(options = {}) {
    return this.#unary('ServiceAccountsService', 'ListServiceAccounts', {
      tenant: this.#chosen(options.tenant), limit: options.limit || 0, cursor: forms.toToken(options.cursor),
    }, options);
  }

  /** Deny the account everything and refuse its keys, until enabled again. */
  async disableServiceAccount(accountId, options = {}) {
    return this.#unary('ServiceAccountsService', 'DisableServiceAccount', {
      tenant: this.#chosen(options.tenant), accountId, reason: options.reason || '',
    }, options);
  }

  async enableServiceAccount(accountId, options = {}) {
    return this.#unary('ServiceAccountsService', 'EnableServiceAccount', {
      tenant: this.#chosen(options.tenant), accountId, reason: options.reason || '',
    }, options);
  }

  /** Remove the account's grants, revoke its keys, then the account. */
  async deleteServiceAccount(accountId, options = {}) {
    return this.#unary('ServiceAccountsService', 'DeleteServiceAccount', {
      tenant: this.#chosen(options.tenant), accountId, reason: options.reason || '',
    }, options);
  }

  /** A key owned by the account; rotate and revoke it with rotateKey / revokeKey. */
  async createServiceAccountKey(accountId, scopes, options = {}) {
    return this.#unary('ServiceAccountsService', 'CreateServiceAccountKey', {
      tenant: this.#chosen(options.tenant),
      accountId,
      scopes,
      description: options.description || '',
      expireTime: forms.toTimestamp(options.expireTime),
      reason: options.reason || '',
    }, options);
  }

  async listServiceAccountKeys(accountId, options = {}) {
    return this.#unary('ServiceAccountsService', 'ListServiceAccountKeys', {
      tenant: this.#chosen(options.tenant), accountId,
    }, options);
  }

  /** Unused and over-privileged accounts over `windowSeconds` (default 30 days). */
  async reportServiceAccounts(options = {}) {
    const window = forms.toDuration(options.windowSeconds, 'windowSeconds');
    return this.#unary('ServiceAccountsService', 'ReportServiceAccounts', {
      tenant: this.#chosen(options.tenant), window,
    }, options);
  }

  // --- AuditService -------------------------------------------------------------------

  /** Async iterator of the decision-log records matching `filter`, oldest first. */
  async* queryDecisions(filter = {}, options = {}) {
    const decision = filter.decision ? `DECISION_${filter.decision}` : 'DECISION_UNSPECIFIED';
    const kind = filter.kind ? `DECISION_KIND_${filter.kind}` : 'DECISION_KIND_UNSPECIFIED';
    yield* this.#stream('AuditService', 'QueryDecisions', {
      tenant: this.#chosen(options.tenant),
      subject: forms.toSubjectOrNull(filter.subject),
      actor: forms.toSubjectOrNull(filter.actor),
      resource: forms.toObjectOrNull(filter.resource),
      action: filter.action || '',
      decision,
      kind,
      startTime: forms.toTimestamp(filter.startTime),
      endTime: forms.toTimestamp(filter.endTime),
      limit: options.limit || 0,
      cursor: forms.toToken(options.cursor),
    }, options, resumeFromCursor);
  }

  /** Verify the tenant's hash chain and checkpoints on the server. */
  async verifyLog(options = {}) {
    return this.#unary('AuditService', 'VerifyLog', {
      tenant: this.#chosen(options.tenant), publicKeyPem: options.publicKeyPem || '',
    }, options);
  }

  /** One logged decision with its recorded explanation. */
  async explainDecision(decisionId, options = {}) {
    return this.#unary('AuditService', 'ExplainDecision', {
      tenant: this.#chosen(options.tenant), decisionId,
    }, options);
  }

  /**
   * Replay the logged checks in a time range at their revisions: `{ decision }` per record,
   * oldest first, then one `{ summary }`. Not resumed: a new call replays again.
   */
  async* replayDecisions(filter = {}, options = {}) {
    yield* this.#stream('AuditService', 'ReplayDecisions', {
      tenant: this.#chosen(options.tenant),
      startTime: forms.toTimestamp(filter.startTime),
      endTime: forms.toTimestamp(filter.endTime),
      subject: forms.toSubjectOrNull(filter.subject),
      resource: forms.toObjectOrNull(filter.resource),
      schemaVersion: filter.schemaVersion || '',
      limit: options.limit || 0,
    }, options, null);
  }

  // --- plumbing -----------------------------------------------------------------------

  #chosen(tenant) {
    const chosen = tenant || this.#tenant;
    if (!chosen) throw new TypeError('no tenant: pass { tenant } to the call or the client');
    return chosen;
  }

  /** Without an explicit choice, read at least as fresh as this client's last write. */
  #consistency(tenant, consistency) {
    if (consistency !== undefined && consistency !== null) return forms.toConsistency(consistency);
    const token = this.#tokens.get(tenant);
    return token ? { atLeastAsFresh: { token } } : null;
  }

  #remember(tenant, token) {
    if (token) this.#tokens.set(tenant, token);
  }

  #onBehalf(options) {
    if (options.actor && !options.reason) throw new TypeError('`actor` needs a `reason`');
    return {
      actor: forms.toSubjectOrNull(options.actor),
      reason: options.reason || '',
      contextualRelationships: (options.contextualRelationships || []).map(forms.toRelationship),
      agents: (options.agents || []).map(forms.toSubject),
    };
  }

  async #tenantWrite(rpc, fields, options) {
    const tenant = this.#chosen(options.tenant);
    const result = await this.#unary('TenancyService', rpc, { tenant, ...fields }, options);
    this.#remember(tenant, result.writtenAt);
    return result;
  }

  #tenantRead(rpc, fields, options) {
    const tenant = this.#chosen(options.tenant);
    return this.#unary('TenancyService', rpc, {
      tenant, consistency: this.#consistency(tenant, options.consistency), ...fields,
    }, options);
  }

  #deadline(options) {
    const ms = options.timeoutMs === undefined ? this.#timeoutMs : options.timeoutMs;
    return ms ? new Date(Date.now() + ms) : undefined;
  }

  #retryPolicy(rpc) {
    return { ...this.#policy, retry: READ.test(rpc) || RETRIED_WRITES.has(rpc) };
  }

  async #unary(service, rpc, request, options) {
    const response = await unary(this.#stubs[service], rpc, request, this.#metadata,
      this.#deadline(options), this.#retryPolicy(rpc));
    return api.fromMessage(responseType(service, rpc), response);
  }

  async* #stream(service, rpc, request, options, resume) {
    const type = responseType(service, rpc);
    const responses = stream(this.#stubs[service], rpc, request, this.#metadata,
      this.#deadline(options), this.#retryPolicy(rpc), resume);
    for await (const response of responses) yield api.fromMessage(type, response);
  }
}

function page(options) {
  return { limit: options.limit || 0, cursor: forms.toToken(options.cursor) };
}

/** Continue after the last response's cursor, with what is left of the limit. */
function resumeFromCursor(request, response) {
  if (request.limit === 1) return null;
  return { ...request, cursor: response.cursor, limit: request.limit ? request.limit - 1 : 0 };
}

function responseType(service, rpc) {
  const method = api.services()[`${api.PACKAGE}.${service}`][rpc];
  return `${api.PACKAGE}.${method.responseType.type.name}`;
}

module.exports = { AuthzClient, RPC_METHODS };
