'use strict';
// TLS options against a real mTLS server: the CA to trust, the client certificate and key,
// and the server name override. Certificates are made for this run (tests/api/certs.py).
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { after, before, test } = require('node:test');
const grpc = require('@grpc/grpc-js');
const { AuthzClient } = require('../index.js');
const { makeCerts, startServer, tempDir } = require('./server.js');

let server;
let certs;
let temp;
const clients = [];

function tlsClient(options, extra = {}) {
  const port = server.target.split(':').pop();
  const made = new AuthzClient(`127.0.0.1:${port}`, {
    tenant: 'demo', tls: options, retries: 0, timeoutMs: 10_000, ...extra,
  });
  clients.push(made);
  return made;
}

const read = (file) => fs.readFileSync(file);

before(async () => {
  temp = tempDir();
  certs = makeCerts(temp.dir);
  // The client certificate (CN=node-client) stands for tenant demo with the check scope.
  const map = path.join(temp.dir, 'map.yaml');
  fs.writeFileSync(map, '- {match: CN=node-client, tenant: demo, scopes: [check]}\n');
  server = await startServer(['--decision-log', 'off', '--tls-cert', certs.serverCert,
    '--tls-key', certs.serverKey, '--tls-client-ca', certs.ca, '--tls-client-map', map]);
});

after(async () => {
  for (const c of clients) c.close();
  if (server) await server.stop();
  if (temp) temp.remove();
});

const mtls = () => ({ ca: read(certs.ca), cert: read(certs.clientCert), key: read(certs.clientKey) });

test('mTLS with the CA, a client certificate and key: the certificate is the credential', async () => {
  const result = await tlsClient(mtls()).check('document:readme', 'view', 'user:alice');
  assert.equal(result.allowed, true);
});

test('the server name override verifies the certificate under that name', async () => {
  const named = tlsClient({ ...mtls(), serverName: 'localhost' });
  assert.equal((await named.check('document:readme', 'view', 'user:alice')).allowed, true);
  const wrong = tlsClient({ ...mtls(), serverName: 'elsewhere.example' });
  await assert.rejects(wrong.check('document:readme', 'view', 'user:alice'), { codeName: 'UNAVAILABLE' });
});

test('a server certificate from another CA is refused', async () => {
  const other = tlsClient({ ...mtls(), ca: read(certs.otherCa) });
  await assert.rejects(other.check('document:readme', 'view', 'user:alice'), { codeName: 'UNAVAILABLE' });
});

test('without a client certificate the mTLS server refuses the connection', async () => {
  const bare = tlsClient({ ca: read(certs.ca) });
  await assert.rejects(bare.check('document:readme', 'view', 'user:alice'), { codeName: 'UNAVAILABLE' });
});

test('PERMISSION_DENIED is not retried, even for a keyed write', async () => {
  let attempts = 0;
  const counter = (options, nextCall) => { attempts += 1; return new grpc.InterceptingCall(nextCall(options)); };
  const checker = tlsClient(mtls(), { retries: 3, interceptors: [counter] });
  await assert.rejects(checker.writeRelationships(['document:readme#viewer@user:zoe']), (error) => {
    assert.equal(error.codeName, 'PERMISSION_DENIED');
    assert.match(error.message, /write/);
    return true;
  });
  assert.equal(attempts, 1);
});

test('tls.cert without tls.key is refused before any connection', () => {
  assert.throws(() => tlsClient({ ca: read(certs.ca), cert: read(certs.clientCert) }), /go together/);
});
