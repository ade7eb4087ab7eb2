'use strict';
// The real Python server for the tests: `python -m authz_service serve --database-url
// memory:// --listen 127.0.0.1:0 --demo ...` in a subprocess, its address read from the
// line it prints once listening. Python comes from AUTHZ_PYTHON, else the repo's .venv.
const assert = require('node:assert/strict');
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const readline = require('node:readline');

const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');
const PYTHON = process.env.AUTHZ_PYTHON || path.join(REPO_ROOT, '.venv', 'bin', 'python');
const LISTENING = /^authz: listening on (\S+:\d+) \((?:plaintext|TLS|mTLS), worker 0\)$/;
const START_TIMEOUT_MS = 60_000;

/**
 * Start a server; `extraArgs` are appended to the command line. Resolves with
 * { target, stop } once it listens; stop() sends SIGTERM and requires a clean exit.
 */
async function startServer(extraArgs = [], { env = {} } = {}) {
  const args = ['-m', 'authz_service', 'serve', '--database-url', 'memory://',
    '--listen', '127.0.0.1:0', '--workers', '1', '--demo', ...extraArgs];
  const proc = spawn(PYTHON, args, {
    cwd: REPO_ROOT,
    env: { ...process.env, PYTHONUNBUFFERED: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  proc.stderr.on('data', (chunk) => { stderr = (stderr + chunk).slice(-4000); });
  const exited = new Promise((resolve) => {
    proc.on('exit', (code, signal) => resolve({ code, signal }));
  });
  const target = await new Promise((resolve, reject) => {
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
  const stop = async () => {
    if (proc.exitCode !== null) return;
    proc.kill('SIGTERM'); // graceful: the server drains and exits 0
    const { code } = await exited;
    assert.equal(code, 0, `server should stop cleanly on SIGTERM\n${stderr}`);
  };
  return { target, stop };
}

/** A fresh temporary directory, removed by the returned function. */
function tempDir() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'authz-node-'));
  return { dir, remove: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/**
 * Certificates made now, with the repo's test helper (tests/api/certs.py, `cryptography`):
 * a CA, a server certificate for `localhost`/127.0.0.1 and a client certificate. Returns
 * the file paths.
 */
function makeCerts(dir) {
  const script = `
import sys
from pathlib import Path
from tests.api.certs import make_ca, make_client, make_server
out = Path(sys.argv[1])
ca = make_ca()
(out / "ca.pem").write_bytes(ca.cert_pem)
make_server(ca).write(out / "server.pem", out / "server.key")
make_client(ca, name="node-client").write(out / "client.pem", out / "client.key")
other = make_ca("another CA")
(out / "other-ca.pem").write_bytes(other.cert_pem)
`;
  execFileSync(PYTHON, ['-c', script, dir], { cwd: REPO_ROOT });
  const file = (name) => path.join(dir, name);
  return {
    ca: file('ca.pem'), otherCa: file('other-ca.pem'), serverCert: file('server.pem'),
    serverKey: file('server.key'), clientCert: file('client.pem'), clientKey: file('client.key'),
  };
}

/**
 * A TCP proxy in front of `target` whose connections can be cut, to make a stream fail
 * with UNAVAILABLE in the middle; the first `refuseFirst` connections are closed at once,
 * as by a server that is not up yet. Resolves with { target, cut, close, connections }.
 */
async function startProxy(target, { refuseFirst = 0 } = {}) {
  const [host, port] = [target.slice(0, target.lastIndexOf(':')), Number(target.slice(target.lastIndexOf(':') + 1))];
  const sockets = new Set();
  let connections = 0;
  const server = net.createServer((client) => {
    connections += 1;
    if (connections <= refuseFirst) { client.destroy(); return; }
    const upstream = net.connect(port, host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {}); // a cut connection errors on the other side; expected
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    target: `127.0.0.1:${server.address().port}`,
    connections: () => connections,
    cut: () => { for (const s of sockets) s.destroy(); },
    close: () => new Promise((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(resolve);
    }),
  };
}

/** A loopback port with nothing listening on it (bound, read, released). */
async function freePort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

module.exports = { REPO_ROOT, freePort, makeCerts, startProxy, startServer, tempDir };
