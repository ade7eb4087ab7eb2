'use strict';
// Runs against the real Python server, started here with the demo data (tenant `demo`):
// `python -m authz_service serve --database-url memory:// --listen 127.0.0.1:0 ...`.
// Python comes from AUTHZ_PYTHON, else the repository's .venv.
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const path = require('node:path');
const readline = require('node:readline');
const { after, before, test } = require('node:test');
const grpc = require('@grpc/grpc-js');
const { AuthzClient, AuthzError } = require('../index.js');

const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');
const PYTHON = process.env.AUTHZ_PYTHON || path.join(REPO_ROOT, '.venv', 'bin', 'python');
const LISTENING = /^authz: listening on (\S+:\d+) \((?:plaintext|TLS|mTLS), worker 0\)$/;
const START_TIMEOUT_MS = 60_000;

let server;
let client;

/** Start the server; resolve with `host:port` once it prints that it is listening. */
function startServer() {
  const args = ['-m', 'authz_service', 'serve', '--database-url', 'memory://',
    '--listen', '127.0.0.1:0', '--workers', '1', '--decision-log', 'off', '--demo',
    '--no-auth'];
  const proc = spawn(PYTHON, args, {
    cwd: REPO_ROOT,
    env: { ...process.env, PYTHONUNBUFFERED: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  proc.stderr.on('data', (chunk) => { stderr = (stderr + chunk).slice(-4000); });
  const listening = new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`server not listening after ${START_TIMEOUT_MS} ms\n${stderr}`)),
      START_TIMEOUT_MS,
    );
    readline.createInterface({ input: proc.stdout }).on('line', (line) => {
      const match = LISTENING.exec(line);
      if (match) { clearTimeout(timer); resolve(match[1]); }
    });
    proc.on('error', (error) => { clearTimeout(timer); reject(error); });
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${code}) before listening\n${stderr}`));
    });
  });
  const exited = new Promise((resolve) => {
    proc.on('exit', (code, signal) => resolve({ code, signal }));
  });
  return { proc, listening, exited };
}

before(async () => {
  server = startServer();
  const target = await server.listening;
  client = new AuthzClient(target, { tenant: 'demo' });
});

after(async () => {
  if (client) client.close();
  if (server && server.proc.exitCode === null) {
    server.proc.kill('SIGTERM'); // graceful: the server drains and exits 0
    const { code } = await server.exited;
    assert.equal(code, 0, 'server should stop cleanly on SIGTERM');
  }
});

test('alice may view the readme', async () => {
  const result = await client.check('document:readme', 'view', 'user:alice');
  assert.equal(result.decision, 'ALLOWED');
  assert.equal(result.allowed, true);
  assert.ok(result.decisionId);
  assert.ok(result.token);
});

test('bob may not view the roadmap: he is banned', async () => {
  const result = await client.check('document:roadmap', 'view', 'user:bob', { tenant: 'demo' });
  assert.equal(result.decision, 'DENIED');
  assert.equal(result.allowed, false);
});

test('a caveat without its context is CONDITIONAL and names what is missing', async () => {
  const bare = await client.check('document:vpn-guide', 'view', 'user:dave');
  assert.equal(bare.decision, 'CONDITIONAL');
  assert.deepEqual(bare.missingContext, ['user_ip']);
  const inside = await client.check('document:vpn-guide', 'view', 'user:dave', {
    context: { user_ip: '10.1.2.3' },
  });
  assert.equal(inside.allowed, true);
});

test('write, then read with the token', async () => {
  const doc = `document:node-${process.pid}-${Date.now()}`;
  assert.equal((await client.check(doc, 'view', 'user:erin')).allowed, false);

  const { token } = await client.writeRelationships([`${doc}#viewer@user:erin`]);
  assert.ok(token);
  assert.equal(client.lastToken('demo'), token); // sent on later reads in `demo`

  const explicit = await client.check(doc, 'view', 'user:erin', {
    consistency: { atLeastAsFresh: { token } },
  });
  assert.equal(explicit.allowed, true);
  const remembered = await client.check(doc, 'view', 'user:erin');
  assert.equal(remembered.allowed, true);
});

test('bad input is an error with the gRPC code, not a decision', async () => {
  await assert.rejects(client.check('document:readme', 'frobnicate', 'user:alice'), (error) => {
    assert.ok(error instanceof AuthzError);
    assert.equal(error.code, grpc.status.INVALID_ARGUMENT);
    assert.match(error.message, /frobnicate/);
    return true;
  });
});
