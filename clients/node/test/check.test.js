'use strict';
// Decisions through the client against the real server with the demo data (tenant `demo`).
const assert = require('node:assert/strict');
const { after, before, test } = require('node:test');
const grpc = require('@grpc/grpc-js');
const { AuthzClient, AuthzError } = require('../index.js');
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

test('alice may view the readme', async () => {
  const result = await client.check('document:readme', 'view', 'user:alice');
  assert.equal(result.decision, 'ALLOWED');
  assert.equal(result.allowed, true);
  assert.ok(result.decisionId);
  assert.ok(result.checkedAt);
  assert.equal(result.subject, 'user:alice');
});

test('bob may not view the roadmap: he is banned', async () => {
  const result = await client.check('document:roadmap', 'view', 'user:bob', { tenant: 'demo' });
  assert.equal(result.decision, 'DENIED');
  assert.equal(result.allowed, false);
});

test('a caveat without its context is CONDITIONAL and names what is missing', async () => {
  const bare = await client.check('document:vpn-guide', 'view', 'user:dave');
  assert.equal(bare.decision, 'CONDITIONAL');
  assert.equal(bare.allowed, false);
  assert.deepEqual(bare.missingContext, ['user_ip']);
  const inside = await client.check('document:vpn-guide', 'view', 'user:dave', {
    context: { user_ip: '10.1.2.3' },
  });
  assert.equal(inside.allowed, true);
});

test('write, then read with the token', async () => {
  const doc = `document:node-${process.pid}-${Date.now()}`;
  assert.equal((await client.check(doc, 'view', 'user:erin')).allowed, false);

  const { writtenAt } = await client.writeRelationships([`${doc}#viewer@user:erin`]);
  assert.ok(writtenAt);
  assert.equal(client.lastToken('demo'), writtenAt); // sent on later reads in `demo`

  const explicit = await client.check(doc, 'view', 'user:erin', {
    consistency: { atLeastAsFresh: writtenAt },
  });
  assert.equal(explicit.allowed, true);
  const remembered = await client.check(doc, 'view', 'user:erin');
  assert.equal(remembered.allowed, true);
});

test('contextual relationships count for the one request only', async () => {
  const doc = `document:ctx-${process.pid}-${Date.now()}`;
  const withIt = await client.check(doc, 'view', 'user:frank', {
    contextualRelationships: [`${doc}#viewer@user:frank`],
  });
  assert.equal(withIt.allowed, true);
  assert.equal((await client.check(doc, 'view', 'user:frank')).allowed, false);
});

test('explain returns the granting path; withExplanation adds the decisive steps', async () => {
  const explained = await client.explain('document:readme', 'view', 'user:alice');
  assert.equal(explained.decision, 'ALLOWED');
  assert.equal(explained.explanation.root.kind, 'PERMISSION');
  assert.equal(explained.explanation.root.object, 'document:readme');
  assert.equal(explained.explanation.denyReason, 'UNSPECIFIED');
  const denied = await client.check('document:roadmap', 'view', 'user:bob', { withExplanation: true });
  assert.equal(denied.explanation.denyReason, 'EXCLUDED');
});

test('impersonation is echoed and needs a reason', async () => {
  await assert.rejects(client.check('document:readme', 'view', 'user:alice', { actor: 'user:bob' }),
    /reason/);
  const result = await client.check('document:readme', 'view', 'user:alice', {
    actor: 'user:bob', reason: 'ticket 42',
  });
  assert.equal(result.actor, 'user:bob');
  assert.equal(result.reason, 'ticket 42');
  assert.notEqual(result.decision, 'UNSPECIFIED');
});

test('a delegation chain is sent and echoed', async () => {
  const result = await client.check('document:readme', 'view', 'user:alice', { agents: ['user:bot'] });
  assert.deepEqual(result.agents, ['user:bot']);
  assert.equal(result.allowed, false); // the agent itself may not view the readme
});

test('bad input is an error with the gRPC code, not a decision', async () => {
  await assert.rejects(client.check('document:readme', 'frobnicate', 'user:alice'), (error) => {
    assert.ok(error instanceof AuthzError);
    assert.equal(error.code, grpc.status.INVALID_ARGUMENT);
    assert.equal(error.codeName, 'INVALID_ARGUMENT');
    assert.match(error.message, /frobnicate/);
    return true;
  });
});

test('a text form that does not parse fails before any call', async () => {
  await assert.rejects(client.check('readme', 'view', 'user:alice'), /`readme` is not of the form/);
});
