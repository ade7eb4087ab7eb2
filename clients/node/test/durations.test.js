'use strict';
// Seconds given as numbers become google.protobuf.Duration with their fraction as nanos,
// against the real server: `overlapSeconds: 0.5` is half a second, not "end at once".
const assert = require('node:assert/strict');
const { after, before, test } = require('node:test');
const { AuthzClient } = require('../index.js');
const { startServer } = require('./server.js');

let server;
let client;

before(async () => {
  server = await startServer(['--decision-log', 'off', '--no-auth']);
  client = new AuthzClient(server.target, { tenant: 'demo' });
});

after(async () => {
  if (client) client.close();
  if (server) await server.stop();
});

test('rotateKey keeps the fraction of overlapSeconds', async () => {
  const { key } = await client.createKey(['check']);
  const start = Date.now();
  const rotated = await client.rotateKey(key.keyId, { overlapSeconds: 0.5 });
  const end = Date.now();
  const until = rotated.key.previousSecretExpireTime;
  assert.ok(until instanceof Date, 'half a second of overlap, not none');
  assert.ok(until.getTime() >= start + 500 && until.getTime() <= end + 500, String(until));
});

test('reportServiceAccounts keeps the fraction of windowSeconds', async () => {
  const start = Date.now();
  const report = await client.reportServiceAccounts({ windowSeconds: 90.5 });
  const end = Date.now();
  const since = report.sinceTime.getTime();
  assert.ok(since >= start - 90_500 && since <= end - 90_500, String(report.sinceTime));
});

test('seconds that are not a finite, non-negative number fail before any call', async () => {
  const { key } = await client.createKey(['check']);
  for (const bad of [NaN, Infinity, -1, '60']) {
    await assert.rejects(client.rotateKey(key.keyId, { overlapSeconds: bad }), (error) => {
      assert.ok(error instanceof TypeError, String(error));
      assert.match(error.message, /overlapSeconds/);
      return true;
    });
    await assert.rejects(client.reportServiceAccounts({ windowSeconds: bad }), /windowSeconds/);
  }
});
