'use strict';
// CheckBulk splitting, resumable Watch and the retry policy, against the real server.
const assert = require('node:assert/strict');
const { after, before, test } = require('node:test');
const grpc = require('@grpc/grpc-js');
const { AuthzClient, AuthzError } = require('../index.js');
const { freePort, startProxy, startServer } = require('./server.js');

let server;
let client;
const clients = [];

/**
 * A client whose calls are counted by method name (`calls.Check`), one per attempt, and
 * whose requests are kept (`sent.CheckBulk`).
 */
function countingClient(target, options = {}) {
  const calls = {};
  const sent = {};
  const counter = (callOptions, nextCall) => {
    const name = callOptions.method_definition.path.split('/').pop();
    calls[name] = (calls[name] || 0) + 1;
    return new grpc.InterceptingCall(nextCall(callOptions), new grpc.RequesterBuilder()
      .withSendMessage((message, next) => {
        sent[name] = [...(sent[name] || []), message];
        next(message);
      }).build());
  };
  const made = new AuthzClient(target, { tenant: 'demo', interceptors: [counter], ...options });
  clients.push(made);
  return { client: made, calls, sent };
}

before(async () => {
  server = await startServer(['--decision-log', 'off', '--no-auth']);
  client = new AuthzClient(server.target, { tenant: 'demo' });
  clients.push(client);
});

after(async () => {
  for (const c of clients) c.close();
  if (server) await server.stop();
});

test('checkBulk splits above 1,000 items into calls at one revision, results in order', async () => {
  const { client: counted, calls, sent } = countingClient(server.target);
  const cases = [
    ['document:readme', 'view', 'user:alice', 'ALLOWED'],
    ['document:roadmap', 'view', 'user:bob', 'DENIED'],
    ['document:vpn-guide', 'view', 'user:dave', 'CONDITIONAL'],
  ];
  const items = Array.from({ length: 2345 }, (_, i) => cases[(i * 7) % 3]);
  const { results, checkedAt } = await counted.checkBulk(items.map(([r, p, s]) => [r, p, s]));
  assert.equal(calls.CheckBulk, 3); // 1000 + 1000 + 345
  assert.deepEqual(sent.CheckBulk.map((r) => r.items.length), [1000, 1000, 345]);
  // The later calls are pinned to the first one's revision: one snapshot, as one call.
  assert.equal(sent.CheckBulk[0].consistency, null);
  for (const later of sent.CheckBulk.slice(1)) {
    assert.deepEqual(later.consistency, { atExactSnapshot: { token: checkedAt } });
  }
  assert.equal(results.length, items.length);
  results.forEach((result, i) => assert.equal(result.decision, items[i][3], `item ${i}`));
  assert.ok(checkedAt);
});

test("the client's bulk limit is the server's: one more item in a call is refused", async () => {
  const over = new AuthzClient(server.target, { tenant: 'demo', bulkLimit: 1001 });
  clients.push(over);
  const items = Array.from({ length: 1001 }, () => ['document:readme', 'view', 'user:alice']);
  await assert.rejects(over.checkBulk(items), (error) => {
    assert.equal(error.codeName, 'INVALID_ARGUMENT');
    assert.match(error.message, /items/);
    return true;
  });
});

test('watch resumes after a dropped connection with no change lost or repeated', async () => {
  const proxy = await startProxy(server.target);
  const watcher = new AuthzClient(proxy.target, { tenant: 'demo', retries: 5 });
  clients.push(watcher);
  const doc = `document:watch-${process.pid}`;
  const write = async (who) => (await client.writeRelationships([`${doc}#viewer@user:${who}`])).writtenAt;
  try {
    const start = await write('w0');
    const seen = [];
    const stream = watcher.watch({ after: start, filters: [{ resourceType: 'document', resourceIds: [doc.slice(9)] }] });
    await write('w1');
    for await (const batch of stream) {
      seen.push(...batch.changes.map((c) => c.relationship.subject));
      if (seen.length === 1) {
        proxy.cut(); // the stream fails with UNAVAILABLE; the client calls again after w1
        await write('w2');
        await write('w3');
      }
      if (seen.length >= 3) break;
    }
    assert.deepEqual(seen, ['user:w1', 'user:w2', 'user:w3']);
    assert.ok(proxy.connections() >= 2, 'the watch should have reconnected');
  } finally {
    await proxy.close();
  }
});

test('a revision too large for one response comes in parts; a cut inside it resumes at its start', async () => {
  const proxy = await startProxy(server.target);
  const watcher = new AuthzClient(proxy.target, { tenant: 'demo', retries: 5 });
  clients.push(watcher);
  const who = `bulk${process.pid}`;
  const docs = Array.from({ length: 1500 }, (_, i) => `document:bulk-${String(i).padStart(4, '0')}`);
  try {
    await client.writeRelationships(docs.slice(0, 1000).map((d) => `${d}#viewer@user:${who}`));
    const start = (await client.writeRelationships(
      docs.slice(1000).map((d) => `${d}#viewer@user:${who}`))).writtenAt;
    await client.deleteRelationships({ subjectType: 'user', subjectIds: [who] }); // one revision
    const seen = [];
    const batches = [];
    for await (const batch of watcher.watch({ after: start })) {
      batches.push(batch);
      seen.push(...batch.changes.map((c) => c.relationship.resource));
      if (batches.length === 1) {
        assert.equal(batch.partial, true, 'the first part of the revision');
        proxy.cut(); // the client calls again after the revision before this one
      }
      if (!batch.partial) break;
    }
    // What came before the cut, then the whole revision again: nothing skipped.
    const again = seen.length - docs.length;
    assert.ok(again >= batches[0].changes.length, `${again} changes came again`);
    assert.deepEqual(seen.slice(again), docs);
    assert.deepEqual(seen.slice(0, again), docs.slice(0, again));
    const parts = batches.filter((b) => b.partial).map((b) => b.changesThrough);
    assert.equal(new Set(parts).size, 1, 'every part names the revision before');
    assert.notEqual(batches.at(-1).changesThrough, parts[0]);
    assert.ok(proxy.connections() >= 2, 'the watch should have reconnected');
  } finally {
    await proxy.close();
  }
});

test('UNAVAILABLE is retried for reads and keyed writes, and never for unkeyed writes', async () => {
  const nowhere = `127.0.0.1:${await freePort()}`;
  const { client: counted, calls } = countingClient(nowhere, { retries: 2, backoffMs: [10, 20] });
  await assert.rejects(counted.check('document:readme', 'view', 'user:alice'), { codeName: 'UNAVAILABLE' });
  assert.equal(calls.Check, 3);
  await assert.rejects(counted.writeRelationships(['document:x#viewer@user:y']), { codeName: 'UNAVAILABLE' });
  assert.equal(calls.WriteRelationships, 3); // it carries an idempotency key
  await assert.rejects(counted.createRole({ name: 'r', permissions: [] }), { codeName: 'UNAVAILABLE' });
  assert.equal(calls.CreateRole, 1);
  await assert.rejects(counted.deleteRelationships({ resourceType: 'document' }), AuthzError);
  assert.equal(calls.DeleteRelationships, 1);
});

test('a read retried after UNAVAILABLE succeeds once the server answers', async () => {
  const proxy = await startProxy(server.target, { refuseFirst: 2 });
  try {
    const { client: counted, calls } = countingClient(proxy.target, { retries: 5, backoffMs: [10, 20] });
    const result = await counted.check('document:readme', 'view', 'user:alice');
    assert.equal(result.allowed, true);
    // At least one attempt failed; how many depends on how gRPC's reconnects interleave.
    assert.ok(calls.Check >= 2, `${calls.Check} attempts`);
    assert.ok(proxy.connections() >= 3);
  } finally {
    await proxy.close();
  }
});

test('INVALID_ARGUMENT and FAILED_PRECONDITION are not retried', async () => {
  const { client: counted, calls } = countingClient(server.target, { retries: 3 });
  await assert.rejects(counted.check('document:readme', 'nope', 'user:alice'), { codeName: 'INVALID_ARGUMENT' });
  assert.equal(calls.Check, 1);
  const written = await counted.writeRelationships(['document:k#viewer@user:k'], { idempotencyKey: `k${process.pid}` });
  await assert.rejects(
    counted.writeRelationships(['document:k#viewer@user:other'], { idempotencyKey: `k${process.pid}` }),
    { codeName: 'FAILED_PRECONDITION' },
  );
  assert.equal(calls.WriteRelationships, 2);
  const replay = await counted.writeRelationships(['document:k#viewer@user:k'], { idempotencyKey: `k${process.pid}` });
  assert.deepEqual(replay, { writtenAt: written.writtenAt, replayed: true });
});
