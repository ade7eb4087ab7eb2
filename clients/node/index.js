'use strict';
// A small Node.js client of the authorization service: @grpc/grpc-js with the .proto files
// of this repository loaded at run time (no code generation step).
//
//   const { AuthzClient } = require('./index.js');
//   const client = new AuthzClient('127.0.0.1:50051', { tenant: 'acme' });
//   const { allowed } = await client.check('document:readme', 'view', 'user:alice');

const crypto = require('node:crypto');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

// The import root of the API (files import each other as `authz/v1/core.proto`).
const PROTO_ROOT = process.env.AUTHZ_PROTO_ROOT || path.resolve(__dirname, '..', '..', 'proto');
const PROTO_FILES = ['authz/v1/permissions.proto', 'authz/v1/relationships.proto'];
const LOADER_OPTIONS = {
  includeDirs: [PROTO_ROOT],
  keepCase: false, // camelCase fields, as proto3 JSON
  longs: String,
  enums: String, // 'DECISION_ALLOWED', not 1
  defaults: true,
  oneofs: true,
};

// Retry UNAVAILABLE (nothing reached a working server) with exponential backoff. Writes
// are included because every write carries an idempotency key, so a retry cannot apply
// twice; DEADLINE_EXCEEDED is never retried.
const SERVICE_CONFIG = JSON.stringify({
  methodConfig: [
    {
      name: [
        { service: 'authz.v1.PermissionsService' },
        { service: 'authz.v1.RelationshipsService', method: 'WriteRelationships' },
      ],
      retryPolicy: {
        maxAttempts: 4,
        initialBackoff: '0.05s',
        maxBackoff: '1s',
        backoffMultiplier: 2,
        retryableStatusCodes: ['UNAVAILABLE'],
      },
    },
  ],
});

let api; // loaded once per process, on first use
function loadApi() {
  if (!api) {
    const definition = protoLoader.loadSync(PROTO_FILES, LOADER_OPTIONS);
    api = grpc.loadPackageDefinition(definition).authz.v1;
  }
  return api;
}

/** A call failed: `code` is the gRPC status code (grpc.status.*), never a decision. */
class AuthzError extends Error {
  constructor(error) {
    super(error.details || error.message);
    this.name = 'AuthzError';
    this.code = error.code;
    this.codeName = Object.keys(grpc.status).find((k) => grpc.status[k] === error.code);
    this.metadata = error.metadata; // includes grpc-status-details-bin (google.rpc.Status)
  }
}

const OBJECT = /^([^:#@[\]\s]+):([^#@[\]\s]+)$/;
const SUBJECT = /^([^:#@[\]\s]+):([^#@[\]\s]+)(?:#([^@[\]\s]+))?$/;
const RELATIONSHIP = /^([^#@\s]+)#([^@\s]+)@([^[\s]+)$/;

/** `document:readme` -> ObjectReference. */
function parseObject(text) {
  const m = OBJECT.exec(text.trim());
  if (!m) throw new TypeError(`\`${text}\` is not of the form \`type:id\``);
  return { objectType: m[1], objectId: m[2] };
}

/** `user:alice`, `group:eng#member` or `user:*` -> SubjectReference. */
function parseSubject(text) {
  const m = SUBJECT.exec(text.trim());
  if (!m) throw new TypeError(`\`${text}\` is not of the form \`type:id[#relation]\``);
  const relation = m[3] && m[3] !== '...' ? m[3] : '';
  return { object: { objectType: m[1], objectId: m[2] }, relation };
}

/** `document:readme#viewer@user:alice` -> Relationship (no caveat or expiration). */
function parseRelationship(text) {
  const m = RELATIONSHIP.exec(text.trim());
  if (!m) {
    throw new TypeError(`\`${text}\` is not of the form \`type:id#relation@type:id[#relation]\``);
  }
  return { resource: parseObject(m[1]), relation: m[2], subject: parseSubject(m[3]) };
}

/** A plain JSON object -> google.protobuf.Struct, as proto-loader expects it. */
function toStruct(object) {
  const fields = {};
  for (const [key, value] of Object.entries(object)) fields[key] = toValue(value);
  return { fields };
}

function toValue(value) {
  if (value === null || value === undefined) return { nullValue: 'NULL_VALUE' };
  if (typeof value === 'boolean') return { boolValue: value };
  if (typeof value === 'number') return { numberValue: value };
  if (typeof value === 'string') return { stringValue: value };
  if (Array.isArray(value)) return { listValue: { values: value.map(toValue) } };
  if (typeof value === 'object') return { structValue: toStruct(value) };
  throw new TypeError(`context value of type ${typeof value} is not JSON`);
}

class AuthzClient {
  /**
   * @param {string} target `host:port`
   * @param {object} [options]
   * @param {string} [options.tenant] default tenant of calls that name none
   * @param {string} [options.apiKey] sent as `authorization: Bearer <key>`
   * @param {boolean|grpc.ChannelCredentials} [options.tls] true: system roots
   * @param {number} [options.timeoutMs] deadline of each call (default 5000)
   */
  constructor(target, { tenant, apiKey, tls = false, timeoutMs = 5000 } = {}) {
    const { PermissionsService, RelationshipsService } = loadApi();
    let credentials = grpc.credentials.createInsecure();
    if (tls === true) credentials = grpc.credentials.createSsl();
    else if (tls) credentials = tls;
    const options = { 'grpc.service_config': SERVICE_CONFIG };
    this.permissions = new PermissionsService(target, credentials, options);
    // Share the first stub's channel, so the client holds one connection.
    this.relationships = new RelationshipsService(target, credentials, {
      ...options,
      channelOverride: this.permissions.getChannel(),
    });
    this.tenant = tenant;
    this.timeoutMs = timeoutMs;
    this.metadata = new grpc.Metadata();
    if (apiKey) this.metadata.set('authorization', `Bearer ${apiKey}`);
    this.tokens = new Map(); // tenant -> token of this client's last write there
  }

  /** The token of this client's last write in the tenant, or undefined. */
  lastToken(tenant) {
    return this.tokens.get(this.#tenant(tenant));
  }

  /**
   * Decide `permission` for `subject` on `resource`.
   * Without `consistency`, reads at least as fresh as this client's last write in the tenant.
   * @returns {Promise<{allowed: boolean, decision: string, missingContext: string[],
   *   decisionId: string, token: string}>}
   */
  async check(resource, permission, subject, { tenant, context, consistency } = {}) {
    const chosen = this.#tenant(tenant);
    const request = {
      tenant: chosen,
      resource: parseObject(resource),
      permission,
      subject: parseSubject(subject),
      context: context ? toStruct(context) : null,
      consistency: consistency ?? this.#readYourWrites(chosen),
    };
    const response = await this.#call(this.permissions, 'check', request);
    return {
      // Only ALLOWED allows: CONDITIONAL and UNSPECIFIED are denials.
      allowed: response.decision === 'DECISION_ALLOWED',
      decision: response.decision.replace(/^DECISION_/, ''),
      missingContext: response.missingContext,
      decisionId: response.decisionId,
      token: response.checkedAt ? response.checkedAt.token : '',
    };
  }

  /**
   * Touch (create or replace) relationships given in text form, atomically.
   * @param {string[]} relationships e.g. ['document:1#viewer@user:alice']
   * @returns {Promise<{token: string, replayed: boolean}>}
   */
  async writeRelationships(relationships, { tenant, operation = 'touch', idempotencyKey } = {}) {
    const chosen = this.#tenant(tenant);
    const op = `OPERATION_${operation.toUpperCase()}`;
    const request = {
      tenant: chosen,
      updates: relationships.map((text) => ({
        operation: op,
        relationship: parseRelationship(text),
      })),
      idempotencyKey: idempotencyKey || crypto.randomUUID(),
    };
    const response = await this.#call(this.relationships, 'writeRelationships', request);
    const token = response.writtenAt ? response.writtenAt.token : '';
    if (token) this.tokens.set(chosen, token);
    return { token, replayed: response.replayed };
  }

  close() {
    this.permissions.close(); // the relationships stub shares this channel
  }

  #tenant(tenant) {
    const chosen = tenant || this.tenant;
    if (!chosen) throw new TypeError('no tenant: pass { tenant } to the call or the client');
    return chosen;
  }

  #readYourWrites(tenant) {
    const token = this.tokens.get(tenant);
    return token ? { atLeastAsFresh: { token } } : null;
  }

  #call(stub, method, request) {
    const deadline = new Date(Date.now() + this.timeoutMs);
    return new Promise((resolve, reject) => {
      stub[method](request, this.metadata, { deadline }, (error, response) => {
        if (error) reject(new AuthzError(error));
        else resolve(response);
      });
    });
  }
}

module.exports = {
  AuthzClient, AuthzError, parseObject, parseSubject, parseRelationship, toStruct,
};
