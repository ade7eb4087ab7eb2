// Types of the Node.js client. Results are declared in generated/messages.d.ts, written
// from proto/ by scripts/gen-types.js (npm install / npm test run it).
import type { ChannelCredentials, Interceptor, Metadata } from '@grpc/grpc-js';
import type * as m from './generated/messages';

export type * from './generated/messages';

/** `document:readme`, or the object form. */
export type ObjectRef = string | { objectType: string; objectId: string };
/** `user:alice`, `group:eng#member`, `user:*`, or the object form. */
export type SubjectRef = string | { object: { objectType: string; objectId: string }; relation?: string };
/** `doc:1#viewer@user:alice[cav:{"k":1}][expiration:2030-01-01T00:00:00Z]`, or the object form. */
export type RelationshipRef = string | {
  resource: ObjectRef;
  relation: string;
  subject: SubjectRef;
  caveat?: { name: string; context?: Record<string, unknown> | null } | null;
  expiresAt?: Date | string | null;
};
export type Time = Date | string | number;
/** A token string as results carry them (`checkedAt`, `writtenAt`, ...). */
export type Consistency =
  | 'fullyConsistent'
  | 'minimizeLatency'
  | { atLeastAsFresh: string | { token: string } }
  | { atExactSnapshot: string | { token: string } };

export interface RelationshipFilter {
  resourceType?: string;
  resourceIds?: string[];
  relation?: string;
  subjectType?: string;
  subjectIds?: string[];
  /** Unset matches any; '' matches only plain objects. */
  subjectRelation?: string;
}
export type Precondition = { mustMatch: RelationshipFilter } | { mustNotMatch: RelationshipFilter };

export interface TlsOptions {
  /** PEM CA certificate(s) to trust; default: the system roots. */
  ca?: string | Buffer;
  /** PEM client certificate and its key, for mTLS; both or neither. */
  cert?: string | Buffer;
  key?: string | Buffer;
  /** The name the server's certificate must carry, when it differs from the target host. */
  serverName?: string;
}

export interface ClientOptions {
  /** Default tenant of calls that pass none. */
  tenant?: string;
  /** Sent on every call as `authorization: Bearer <key>`. */
  apiKey?: string;
  /** false: plaintext; true: TLS with the system roots; or TlsOptions; or grpc credentials. */
  tls?: boolean | TlsOptions | ChannelCredentials;
  /** Deadline of each call, all retries included (default 5000; 0: none). */
  timeoutMs?: number;
  /** Retries after UNAVAILABLE (default 3). */
  retries?: number;
  /** First and largest backoff step in ms (default [50, 1000]). */
  backoffMs?: [number, number];
  /** Items per CheckBulk call (default 1000, the server's AUTHZ_MAX_BATCH default). */
  bulkLimit?: number;
  /** grpc-js client interceptors (tracing, metrics). */
  interceptors?: Interceptor[];
  /** Extra grpc-js channel options. */
  channelOptions?: Record<string, unknown>;
}

export interface CallOptions {
  tenant?: string;
  timeoutMs?: number;
}
export interface ReadOptions extends CallOptions {
  /** Default: at least as fresh as this client's last write in the tenant. */
  consistency?: Consistency;
}
export interface PageOptions {
  limit?: number;
  cursor?: string;
}
export interface DecisionOptions extends ReadOptions {
  context?: Record<string, unknown>;
  contextualRelationships?: RelationshipRef[];
}
export interface OnBehalfOptions {
  /** The one really acting (impersonation); needs `reason`. */
  actor?: SubjectRef;
  reason?: string;
  /** The delegation chain: agents acting for the subject, the last one acting directly. */
  agents?: SubjectRef[];
}

export type BulkItem =
  | [ObjectRef, string, SubjectRef]
  | [ObjectRef, string, SubjectRef, Record<string, unknown>]
  | { resource: ObjectRef; permission: string; subject: SubjectRef; context?: Record<string, unknown> };
export interface BulkResult extends m.CheckBulkResult {
  /** Why the item could not be decided (then `allowed` is false), else null. */
  error: m.RpcStatus | null;
}
export interface RoleInput {
  name: string;
  description?: string;
  /** `document#view` or { resourceType, permission }. */
  permissions?: Array<string | { resourceType: string; permission: string }>;
}
export interface BindingInput {
  role: string;
  subject: SubjectRef;
  /** Unset: tenant-wide. */
  resource?: ObjectRef | null;
}
export type Grant = { bindingId: string } | { binding: BindingInput } | { relationship: RelationshipRef };
export interface DecisionFilter {
  subject?: SubjectRef;
  actor?: SubjectRef;
  resource?: ObjectRef;
  action?: string;
  decision?: m.Decision;
  kind?: m.DecisionKind;
  startTime?: Time;
  endTime?: Time;
}
export interface ReplayFilter {
  startTime?: Time;
  endTime?: Time;
  subject?: SubjectRef;
  resource?: ObjectRef;
  schemaVersion?: string;
}
export type UpdateInput = RelationshipRef | { operation: 'touch' | 'create' | 'delete'; relationship: RelationshipRef };

export class AuthzError extends Error {
  /** grpc.status.* */
  code: number;
  codeName: string;
  /** The trailers as received, `grpc-status-details-bin` included. */
  metadata: Metadata;
  /** Decoded from `grpc-status-details-bin` (`resource.object_id`, `preconditions[0]`, ...);
   * [] when the error has none or they do not decode. */
  fieldViolations: m.FieldViolation[];
}

/** 'authz.v1.Service/Rpc' -> the client method calling it. */
export const RPC_METHODS: Readonly<Record<string, keyof AuthzClient>>;
export const RETRYABLE: ReadonlySet<number>;
export function parseObject(text: string): { objectType: string; objectId: string };
export function parseSubject(text: string): { object: { objectType: string; objectId: string }; relation: string };
export function parseRelationship(text: string): object;

export class AuthzClient {
  constructor(target: string, options?: ClientOptions);
  lastToken(tenant?: string): string | undefined;
  close(): void;

  check(resource: ObjectRef, permission: string, subject: SubjectRef,
    options?: DecisionOptions & OnBehalfOptions & { withExplanation?: boolean }): Promise<m.CheckResponse>;
  checkBulk(items: BulkItem[], options?: ReadOptions & OnBehalfOptions & {
    contextualRelationships?: RelationshipRef[]; withExplanation?: boolean;
  }): Promise<{ results: BulkResult[]; checkedAt: string }>;
  listPermissions(resource: ObjectRef, subject: SubjectRef, options?: DecisionOptions):
    Promise<m.ListPermissionsResponse & { allowed: string[] }>;
  lookupResources(resourceType: string, permission: string, subject: SubjectRef,
    options?: ReadOptions & PageOptions & { context?: Record<string, unknown> }):
    AsyncGenerator<m.LookupResourcesResponse, void, undefined>;
  lookupSubjects(resource: ObjectRef, permission: string, subjectType: string,
    options?: ReadOptions & PageOptions & { context?: Record<string, unknown>; subjectRelation?: string }):
    AsyncGenerator<m.LookupSubjectsResponse, void, undefined>;
  explain(resource: ObjectRef, permission: string, subject: SubjectRef,
    options?: DecisionOptions & OnBehalfOptions): Promise<m.ExplainResponse>;

  writeRelationships(updates: UpdateInput[], options?: CallOptions & {
    operation?: 'touch' | 'create' | 'delete'; preconditions?: Precondition[]; idempotencyKey?: string;
  }): Promise<m.WriteRelationshipsResponse>;
  deleteRelationships(filter: RelationshipFilter, options?: CallOptions & { preconditions?: Precondition[] }):
    Promise<m.DeleteRelationshipsResponse>;
  readRelationships(filter?: RelationshipFilter, options?: ReadOptions & PageOptions):
    AsyncGenerator<m.ReadRelationshipsResponse, void, undefined>;
  watch(options?: CallOptions & { after?: string; filters?: RelationshipFilter[] }):
    AsyncGenerator<m.WatchResponse, void, undefined>;

  writeSchema(schema: string, options?: CallOptions & { force?: boolean }): Promise<m.WriteSchemaResponse>;
  readSchema(options?: CallOptions & { version?: string }): Promise<m.ReadSchemaResponse>;

  createRole(role: RoleInput, options?: CallOptions): Promise<m.CreateRoleResponse>;
  updateRole(role: RoleInput, options?: CallOptions): Promise<m.UpdateRoleResponse>;
  deleteRole(name: string, options?: CallOptions & { cascade?: boolean }): Promise<m.DeleteRoleResponse>;
  listRoles(options?: ReadOptions & PageOptions): Promise<m.ListRolesResponse>;
  createBinding(binding: BindingInput, options?: CallOptions): Promise<m.CreateBindingResponse>;
  deleteBinding(bindingId: string, options?: CallOptions): Promise<m.DeleteBindingResponse>;
  listBindings(options?: ReadOptions & PageOptions & { subject?: SubjectRef; role?: string; resource?: ObjectRef }):
    Promise<m.ListBindingsResponse>;
  grantReach(grant: Grant, options?: ReadOptions & PageOptions): Promise<m.GrantReachResponse>;
  getSubjectStatus(subject: ObjectRef, options?: ReadOptions): Promise<m.GetSubjectStatusResponse>;
  suspendSubject(subject: ObjectRef, reason: string, options?: CallOptions): Promise<m.SuspendSubjectResponse>;
  reactivateSubject(subject: ObjectRef, reason: string, options?: CallOptions): Promise<m.ReactivateSubjectResponse>;
  deprovisionSubject(subject: ObjectRef, reason: string, options?: CallOptions): Promise<m.DeprovisionSubjectResponse>;
  getScimSync(options?: CallOptions): Promise<m.GetScimSyncResponse>;
  repairScimDrift(reason: string, options?: CallOptions): Promise<m.RepairScimDriftResponse>;

  createTenant(name: string, options?: CallOptions & { reason?: string }): Promise<m.CreateTenantResponse>;
  getTenant(name: string, options?: CallOptions): Promise<m.GetTenantResponse>;
  listTenants(options?: CallOptions & PageOptions): Promise<m.ListTenantsResponse>;
  suspendTenant(name: string, reason: string, options?: CallOptions): Promise<m.SuspendTenantResponse>;
  reactivateTenant(name: string, reason: string, options?: CallOptions): Promise<m.ReactivateTenantResponse>;
  deleteTenant(name: string, reason: string, options?: CallOptions & { expectedExportSha256?: string }):
    Promise<m.DeleteTenantResponse>;
  exportTenant(name: string, options?: CallOptions): AsyncGenerator<m.ExportTenantResponse, void, undefined>;

  createKey(scopes: string[], options?: CallOptions & { description?: string; expireTime?: Time; reason?: string }):
    Promise<m.CreateKeyResponse>;
  listKeys(options?: CallOptions & PageOptions): Promise<m.ListKeysResponse>;
  revokeKey(keyId: string, options?: CallOptions & { reason?: string }): Promise<m.RevokeKeyResponse>;
  rotateKey(keyId: string, options?: CallOptions & { overlapSeconds?: number; reason?: string }):
    Promise<m.RotateKeyResponse>;

  createServiceAccount(accountId: string, options?: CallOptions & { description?: string; reason?: string }):
    Promise<m.CreateServiceAccountResponse>;
  getServiceAccount(accountId: string, options?: CallOptions): Promise<m.GetServiceAccountResponse>;
  listServiceAccounts(options?: CallOptions & PageOptions): Promise<m.ListServiceAccountsResponse>;
  disableServiceAccount(accountId: string, options?: CallOptions & { reason?: string }):
    Promise<m.DisableServiceAccountResponse>;
  enableServiceAccount(accountId: string, options?: CallOptions & { reason?: string }):
    Promise<m.EnableServiceAccountResponse>;
  deleteServiceAccount(accountId: string, options?: CallOptions & { reason?: string }):
    Promise<m.DeleteServiceAccountResponse>;
  createServiceAccountKey(accountId: string, scopes: string[],
    options?: CallOptions & { description?: string; expireTime?: Time; reason?: string }):
    Promise<m.CreateServiceAccountKeyResponse>;
  listServiceAccountKeys(accountId: string, options?: CallOptions): Promise<m.ListServiceAccountKeysResponse>;
  reportServiceAccounts(options?: CallOptions & { windowSeconds?: number }):
    Promise<m.ReportServiceAccountsResponse>;

  queryDecisions(filter?: DecisionFilter, options?: CallOptions & PageOptions):
    AsyncGenerator<m.QueryDecisionsResponse, void, undefined>;
  verifyLog(options?: CallOptions & { publicKeyPem?: string }): Promise<m.VerifyLogResponse>;
  explainDecision(decisionId: string, options?: CallOptions): Promise<m.ExplainDecisionResponse>;
  replayDecisions(filter?: ReplayFilter, options?: CallOptions & { limit?: number }):
    AsyncGenerator<m.ReplayDecisionsResponse, void, undefined>;
}
