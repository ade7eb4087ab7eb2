'use strict';
// Every RPC of every service in proto/authz/v1, enumerated from the loaded service
// descriptors, is called through its client method against the real server. A new RPC
// fails here until the client maps it (RPC_METHODS) and this file calls it (CALLS).
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { after, before, test } = require('node:test');
const grpc = require('@grpc/grpc-js');
const { AuthzClient, AuthzError, RPC_METHODS } = require('../index.js');
const api = require('../lib/api.js');
const { startServer, tempDir } = require('./server.js');

const TENANT = `node${process.pid}`;
// A status from the server's own logic; these three would mean it never got there.
const NOT_REACHED = new Set([grpc.status.UNIMPLEMENTED, grpc.status.UNAVAILABLE, grpc.status.UNKNOWN]);

let server;
let client;
let logs;
const statuses = new Map(); // method path -> status codes the server answered with

/** Records the final status of every call, by method path. */
function recorder(options, nextCall) {
  const rpc = options.method_definition.path.slice(1); // '/authz.v1.X/Y' -> 'authz.v1.X/Y'
  return new grpc.InterceptingCall(nextCall(options), new grpc.RequesterBuilder()
    .withStart((metadata, listener, next) => {
      next(metadata, new grpc.ListenerBuilder().withOnReceiveStatus((status, nextStatus) => {
        statuses.set(rpc, [...(statuses.get(rpc) || []), status.code]);
        nextStatus(status);
      }).build());
    }).build());
}

/** Resolves once `condition()` holds (a cancelled stream reports its status a bit later). */
async function waitFor(condition, what, timeoutMs = 5000) {
  const end = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => { setTimeout(resolve, 10); });
  }
}

async function collect(iterable) {
  const out = [];
  for await (const item of iterable) out.push(item);
  return out;
}

/** A refusal by the server counts as reached; the test asserts its code and message. */
async function refused(promise, code, pattern) {
  await assert.rejects(promise, (error) => {
    assert.ok(error instanceof AuthzError, String(error));
    assert.equal(error.codeName, code, error.message);
    assert.match(error.message, pattern);
    return true;
  });
}

const state = {};
const doc = `document:every-${process.pid}`;

// In the order they run; later calls use what earlier ones made.
const CALLS = {
  'authz.v1.TenantService/CreateTenant': async () => {
    const { tenant } = await client.createTenant(TENANT, { reason: 'node client test' });
    assert.equal(tenant.name, TENANT);
    assert.equal(tenant.state, 'ACTIVE');
    assert.ok(tenant.createTime instanceof Date);
  },
  'authz.v1.TenantService/GetTenant': async () => {
    assert.equal((await client.getTenant(TENANT)).tenant.name, TENANT);
  },
  'authz.v1.TenantService/ListTenants': async () => {
    const { tenants } = await client.listTenants({ limit: 100 });
    assert.ok(tenants.some((t) => t.name === TENANT));
  },
  'authz.v1.SchemaService/ReadSchema': async () => {
    state.schema = await client.readSchema();
    assert.equal(state.schema.current, true);
    assert.match(state.schema.schema, /definition document/);
  },
  'authz.v1.SchemaService/WriteSchema': async () => {
    const written = await client.writeSchema(state.schema.schema);
    assert.equal(written.schemaVersion, state.schema.schemaVersion); // same text: no change
    assert.deepEqual(written.orphaned, []);
  },
  'authz.v1.RelationshipsService/WriteRelationships': async () => {
    state.watchFrom = (await client.writeRelationships([`${doc}#owner@user:olga`], { tenant: TENANT })).writtenAt;
    const result = await client.writeRelationships([`${doc}#viewer@user:vera`], {
      tenant: TENANT, idempotencyKey: `key-${process.pid}`,
    });
    assert.ok(result.writtenAt);
    assert.equal(result.replayed, false);
  },
  'authz.v1.RelationshipsService/Watch': async () => {
    const changes = [];
    for await (const batch of client.watch({ tenant: TENANT, after: state.watchFrom })) {
      changes.push(...batch.changes);
      break; // the one write after `watchFrom`
    }
    assert.equal(changes.length, 1);
    assert.equal(changes[0].operation, 'TOUCH');
    assert.equal(changes[0].relationship.subject, 'user:vera');
  },
  'authz.v1.RelationshipsService/ReadRelationships': async () => {
    const rows = await collect(client.readRelationships({ resourceType: 'document' }, { tenant: TENANT }));
    assert.deepEqual(rows.map((r) => r.relationship.subject).sort(), ['user:olga', 'user:vera']);
    assert.ok(rows[0].cursor && rows[0].readAt);
  },
  'authz.v1.PermissionsService/Check': async () => {
    assert.equal((await client.check(doc, 'view', 'user:vera', { tenant: TENANT })).allowed, true);
  },
  'authz.v1.PermissionsService/CheckBulk': async () => {
    const { results } = await client.checkBulk([
      [doc, 'view', 'user:vera'], [doc, 'edit', 'user:vera'], [doc, 'nope', 'user:vera'],
    ], { tenant: TENANT });
    assert.deepEqual(results.map((r) => r.decision), ['ALLOWED', 'DENIED', 'UNSPECIFIED']);
    assert.equal(results[2].error.codeName, 'INVALID_ARGUMENT');
  },
  'authz.v1.PermissionsService/ListPermissions': async () => {
    const result = await client.listPermissions(doc, 'user:olga', { tenant: TENANT });
    assert.deepEqual(result.allowed.sort(), ['delete', 'edit', 'view']);
  },
  'authz.v1.PermissionsService/LookupResources': async () => {
    const found = await collect(client.lookupResources('document', 'view', 'user:vera', { tenant: TENANT }));
    assert.deepEqual(found.map((r) => r.resourceId), [doc.split(':')[1]]);
  },
  'authz.v1.PermissionsService/LookupSubjects': async () => {
    const found = await collect(client.lookupSubjects(doc, 'view', 'user', { tenant: TENANT }));
    assert.deepEqual(found.map((s) => s.subjectId).sort(), ['olga', 'vera']);
  },
  'authz.v1.PermissionsService/Explain': async () => {
    state.explained = await client.explain(doc, 'view', 'user:vera', { tenant: TENANT });
    assert.equal(state.explained.decision, 'ALLOWED');
    assert.ok(state.explained.explanation.root.children.length > 0);
  },
  'authz.v1.TenancyService/CreateRole': async () => {
    const { role } = await client.createRole({
      name: 'reader', description: 'reads documents', permissions: ['document#view'],
    }, { tenant: TENANT });
    assert.deepEqual(role.permissions, [{ resourceType: 'document', permission: 'view' }]);
  },
  'authz.v1.TenancyService/UpdateRole': async () => {
    const { role } = await client.updateRole({
      name: 'reader', description: 'reads and edits', permissions: ['document#view', 'document#edit'],
    }, { tenant: TENANT });
    assert.equal(role.description, 'reads and edits');
  },
  'authz.v1.TenancyService/ListRoles': async () => {
    const { roles } = await client.listRoles({ tenant: TENANT });
    assert.ok(roles.some((r) => r.name === 'reader' && !r.builtIn));
  },
  'authz.v1.TenancyService/CreateBinding': async () => {
    const { binding } = await client.createBinding({ role: 'reader', subject: 'user:bea', resource: doc },
      { tenant: TENANT });
    assert.ok(binding.bindingId);
    assert.equal(binding.subject, 'user:bea');
    state.bindingId = binding.bindingId;
  },
  'authz.v1.TenancyService/ListBindings': async () => {
    const { bindings } = await client.listBindings({ tenant: TENANT, subject: 'user:bea' });
    assert.deepEqual(bindings.map((b) => b.bindingId), [state.bindingId]);
  },
  'authz.v1.TenancyService/GrantReach': async () => {
    const reach = await client.grantReach({ bindingId: state.bindingId }, { tenant: TENANT });
    assert.deepEqual(reach.resources.map((r) => r.resource), [doc]);
  },
  'authz.v1.TenancyService/DeleteBinding': async () => {
    assert.ok((await client.deleteBinding(state.bindingId, { tenant: TENANT })).writtenAt);
  },
  'authz.v1.TenancyService/DeleteRole': async () => {
    assert.equal((await client.deleteRole('reader', { tenant: TENANT })).deletedBindingCount, 0);
  },
  'authz.v1.TenancyService/SuspendSubject': async () => {
    const result = await client.suspendSubject('user:vera', 'left for a week', { tenant: TENANT });
    assert.equal(result.previousStatus, 'ACTIVE');
    // read-your-writes: the suspension is seen by the next check of this client
    assert.equal((await client.check(doc, 'view', 'user:vera', { tenant: TENANT })).allowed, false);
  },
  'authz.v1.TenancyService/GetSubjectStatus': async () => {
    const status = await client.getSubjectStatus('user:vera', { tenant: TENANT });
    assert.equal(status.status, 'SUSPENDED');
    assert.equal(status.reason, 'left for a week');
  },
  'authz.v1.TenancyService/ReactivateSubject': async () => {
    const result = await client.reactivateSubject('user:vera', 'back', { tenant: TENANT });
    assert.equal(result.previousStatus, 'SUSPENDED');
  },
  'authz.v1.TenancyService/DeprovisionSubject': async () => {
    const result = await client.deprovisionSubject('user:vera', 'left', { tenant: TENANT });
    assert.equal(result.removedRelationships.length, 1);
  },
  'authz.v1.TenancyService/GetScimSync': async () => {
    const sync = await client.getScimSync({ tenant: TENANT });
    assert.equal(sync.status.users, 0);
  },
  'authz.v1.TenancyService/RepairScimDrift': async () => {
    const repaired = await client.repairScimDrift('nothing to repair', { tenant: TENANT });
    assert.deepEqual(repaired.repaired.missingHere, []);
  },
  'authz.v1.RelationshipsService/DeleteRelationships': async () => {
    const result = await client.deleteRelationships({ resourceType: 'document' }, { tenant: TENANT });
    assert.equal(result.deletedCount, 1); // olga's; vera's went with her deprovisioning
  },
  'authz.v1.KeysService/CreateKey': async () => {
    const created = await client.createKey(['check'], { tenant: TENANT, description: 'node test' });
    assert.ok(created.secret);
    assert.deepEqual(created.key.scopes, ['check']);
    state.keyId = created.key.keyId;
  },
  'authz.v1.KeysService/ListKeys': async () => {
    const { keys } = await client.listKeys({ tenant: TENANT });
    assert.deepEqual(keys.map((k) => k.keyId), [state.keyId]);
  },
  'authz.v1.KeysService/RotateKey': async () => {
    const rotated = await client.rotateKey(state.keyId, { tenant: TENANT, overlapSeconds: 60 });
    assert.ok(rotated.key.previousSecretExpireTime instanceof Date);
  },
  'authz.v1.KeysService/RevokeKey': async () => {
    const { key } = await client.revokeKey(state.keyId, { tenant: TENANT, reason: 'test over' });
    assert.ok(key.revokeTime instanceof Date);
  },
  'authz.v1.ServiceAccountsService/CreateServiceAccount': async () => {
    const { account } = await client.createServiceAccount('ci', { tenant: TENANT, description: 'node test' });
    assert.equal(account.accountId, 'ci');
    assert.equal(account.subject, 'serviceaccount:ci');
  },
  'authz.v1.ServiceAccountsService/GetServiceAccount': async () => {
    assert.equal((await client.getServiceAccount('ci', { tenant: TENANT })).account.accountId, 'ci');
  },
  'authz.v1.ServiceAccountsService/ListServiceAccounts': async () => {
    const { accounts } = await client.listServiceAccounts({ tenant: TENANT });
    assert.deepEqual(accounts.map((a) => a.accountId), ['ci']);
  },
  'authz.v1.ServiceAccountsService/CreateServiceAccountKey': async () => {
    const created = await client.createServiceAccountKey('ci', ['check'], { tenant: TENANT });
    assert.ok(created.secret);
    assert.equal(created.key.serviceAccount, 'ci');
    state.accountKeyId = created.key.keyId;
  },
  'authz.v1.ServiceAccountsService/ListServiceAccountKeys': async () => {
    const { keys } = await client.listServiceAccountKeys('ci', { tenant: TENANT });
    assert.deepEqual(keys.map((k) => k.keyId), [state.accountKeyId]);
  },
  'authz.v1.ServiceAccountsService/DisableServiceAccount': async () => {
    const { account, writtenAt } = await client.disableServiceAccount('ci', { tenant: TENANT, reason: 'test' });
    assert.ok(account.disableTime instanceof Date);
    assert.ok(writtenAt);
  },
  'authz.v1.ServiceAccountsService/EnableServiceAccount': async () => {
    const { account } = await client.enableServiceAccount('ci', { tenant: TENANT, reason: 'test' });
    assert.ok(!account.disableTime);
  },
  'authz.v1.ServiceAccountsService/ReportServiceAccounts': async () => {
    const report = await client.reportServiceAccounts({ tenant: TENANT, windowSeconds: 86400 });
    assert.equal(report.accountCount, 1);
  },
  'authz.v1.ServiceAccountsService/DeleteServiceAccount': async () => {
    const deleted = await client.deleteServiceAccount('ci', { tenant: TENANT, reason: 'test over' });
    assert.deepEqual(deleted.revokedKeyIds, [state.accountKeyId]);
  },
  'authz.v1.AuditService/QueryDecisions': async () => {
    const records = await collect(client.queryDecisions({ subject: 'user:vera', kind: 'CHECK' }, { tenant: TENANT }));
    assert.ok(records.some((r) => r.record.decisionId === state.explained.decisionId));
  },
  'authz.v1.AuditService/VerifyLog': async () => {
    const result = await client.verifyLog({ tenant: TENANT });
    assert.equal(result.verified, true, JSON.stringify(result.firstProblem));
    assert.ok(result.recordCount > 0);
  },
  'authz.v1.AuditService/ExplainDecision': async () => {
    const { record } = await client.explainDecision(state.explained.decisionId, { tenant: TENANT });
    assert.equal(record.resource, doc);
    assert.equal(record.decision, 'ALLOWED');
  },
  'authz.v1.AuditService/ReplayDecisions': async () => {
    const replies = await collect(client.replayDecisions({ subject: 'user:vera' }, { tenant: TENANT }));
    const { summary } = replies.at(-1);
    assert.ok(replies.slice(0, -1).some((r) => r.decision.decisionId === state.explained.decisionId));
    assert.equal(summary.differCount, 0);
    assert.ok(summary.matchCount > 0);
  },
  'authz.v1.TenantService/SuspendTenant': async () => {
    assert.ok((await client.suspendTenant(TENANT, 'pause')).writtenAt);
    const denied = await client.check(doc, 'view', 'user:olga', { tenant: TENANT });
    assert.equal(denied.allowed, false);
  },
  'authz.v1.TenantService/ExportTenant': async () => {
    const chunks = await collect(client.exportTenant(TENANT));
    const last = chunks[chunks.length - 1];
    assert.equal(chunks.map((c) => c.chunk).join('').split('\n').filter(Boolean).length, last.relationshipCount);
    assert.ok(last.exportSha256 && last.exportedAt);
    state.exportSha256 = last.exportSha256;
  },
  'authz.v1.TenantService/ReactivateTenant': async () => {
    assert.ok((await client.reactivateTenant(TENANT, 'resume')).writtenAt);
  },
  'authz.v1.TenantService/DeleteTenant': async () => {
    // Unchanged since ExportTenant: purged against that export, none returned inline.
    const result = await client.deleteTenant(TENANT, 'done', { expectedExportSha256: state.exportSha256 });
    assert.equal(result.exportSha256, state.exportSha256);
    assert.equal(result.export, '');
  },
};

before(async () => {
  logs = tempDir();
  // Checkpoints are signed with an Ed25519 key, so VerifyLog can check signatures.
  const { privateKey } = crypto.generateKeyPairSync('ed25519');
  const keyFile = path.join(logs.dir, 'signing.pem');
  fs.writeFileSync(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }));
  server = await startServer(['--no-auth', '--decision-log', 'durable',
    '--log-dir', path.join(logs.dir, 'log'), '--signing-key', keyFile]);
  client = new AuthzClient(server.target, { tenant: 'demo', interceptors: [recorder] });
});

after(async () => {
  if (client) client.close();
  if (server) await server.stop();
  if (logs) logs.remove();
});

test('every RPC in the service descriptors has a client method and is called through it', async () => {
  const paths = [];
  for (const [service, methods] of Object.entries(api.services())) {
    for (const rpc of Object.keys(methods)) paths.push(`${service}/${rpc}`);
  }
  assert.ok(paths.includes('authz.v1.PermissionsService/Check'), 'the API did not load');
  for (const rpc of paths) {
    assert.ok(RPC_METHODS[rpc], `no client method for ${rpc}: add it to RPC_METHODS`);
    assert.equal(typeof client[RPC_METHODS[rpc]], 'function', `${RPC_METHODS[rpc]} is not a method`);
    assert.ok(CALLS[rpc], `no call of ${rpc} in test/every_rpc.test.js`);
  }
  assert.deepEqual(Object.keys(RPC_METHODS).filter((p) => !paths.includes(p)), [], 'stale RPC_METHODS');
  for (const [rpc, call] of Object.entries(CALLS)) {
    const before = (statuses.get(rpc) || []).length; // earlier entries may call it too
    await call();
    await waitFor(() => (statuses.get(rpc) || []).length > before, `${rpc}: a call of it by ${RPC_METHODS[rpc]}`);
    const codes = statuses.get(rpc).slice(before);
    assert.ok(!codes.some((c) => NOT_REACHED.has(c)), `${rpc}: answered ${codes}`);
  }
});
