'use strict';
// The google.rpc.BadRequest details of a failed call (`grpc-status-details-bin`) decoded
// into AuthzError.fieldViolations, and those of a CheckBulk item's error into its
// fieldViolations: from the real server for bad input, and empty (never a throw) when a
// server sends none or sends bytes that do not decode.
const assert = require('node:assert/strict');
const { after, before, test } = require('node:test');
const grpc = require('@grpc/grpc-js');
const { AuthzClient, AuthzError } = require('../index.js');
const { stubClass } = require('../lib/api.js');
const { freePort, startServer } = require('./server.js');

let server;
const clients = [];

before(async () => {
  server = await startServer(['--decision-log', 'off', '--no-auth']);
});

after(async () => {
  for (const c of clients) c.close();
  if (server) await server.stop();
});

function newClient(target, options = {}) {
  const client = new AuthzClient(target, { tenant: 'demo', ...options });
  clients.push(client);
  return client;
}

test('an empty object id is refused with a violation naming resource.object_id', async () => {
  const client = newClient(server.target);
  await assert.rejects(client.check({ objectType: 'document', objectId: '' }, 'view', 'user:alice'), (error) => {
    assert.ok(error instanceof AuthzError);
    assert.equal(error.codeName, 'INVALID_ARGUMENT');
    assert.deepEqual(error.fieldViolations.map((v) => v.field), ['resource.object_id']);
    assert.equal(error.fieldViolations[0].description, error.message);
    assert.ok(error.metadata.get('grpc-status-details-bin').length, 'the raw trailer is kept');
    return true;
  });
});

test('a bad type name is refused with a violation naming subject.object.object_type', async () => {
  const client = newClient(server.target);
  await assert.rejects(client.check('document:readme', 'view', 'User!:alice'), (error) => {
    assert.equal(error.codeName, 'INVALID_ARGUMENT');
    assert.deepEqual(error.fieldViolations.map((v) => v.field), ['subject.object.object_type']);
    assert.match(error.fieldViolations[0].description, /User!/);
    return true;
  });
});

test('a CheckBulk item that does not convert is an error in its own slot only', async () => {
  // permissions.proto: items fail independently, field paths relative to the item.
  const client = newClient(server.target);
  const { results } = await client.checkBulk([
    ['document:readme', 'view', 'user:alice'],
    [{ objectType: 'document', objectId: '' }, 'view', 'user:alice'],
  ]);
  assert.equal(results[0].error, null);
  const { error } = results[1];
  assert.equal(error.codeName, 'INVALID_ARGUMENT');
  assert.deepEqual(error.fieldViolations.map((v) => v.field), ['resource.object_id']);
});

test("a CheckBulk item that cannot be decided has violations in its own error", async () => {
  const client = newClient(server.target);
  const { results } = await client.checkBulk([
    ['document:readme', 'view', 'user:alice'],
    ['document:readme', 'frobnicate', 'user:alice'],
  ]);
  assert.equal(results[0].error, null);
  const { error } = results[1];
  assert.equal(error.codeName, 'INVALID_ARGUMENT');
  assert.deepEqual(error.fieldViolations, [{ field: 'permission', description: error.message }]);
});

test('an error without a status detail has no violations', async () => {
  const client = newClient(`127.0.0.1:${await freePort()}`, { retries: 0 });
  await assert.rejects(client.check('document:readme', 'view', 'user:alice'), (error) => {
    assert.equal(error.codeName, 'UNAVAILABLE');
    assert.deepEqual(error.metadata.get('grpc-status-details-bin'), []);
    assert.deepEqual(error.fieldViolations, []);
    return true;
  });
});

// Protocol buffer wire format, enough to build a Status by hand: field `number` as
// length-delimited bytes (lengths here stay below 128, one byte).
function bytesField(number, bytes) {
  const body = Buffer.from(bytes);
  assert.ok(body.length < 128);
  return Buffer.concat([Buffer.from([(number << 3) | 2, body.length]), body]);
}

const BAD_REQUEST_URL = 'type.googleapis.com/google.rpc.BadRequest';

/** A google.rpc.Status of INVALID_ARGUMENT whose one detail has `badRequest` as its value. */
function statusWith(badRequest) {
  const any = Buffer.concat([bytesField(1, BAD_REQUEST_URL), bytesField(2, badRequest)]);
  return Buffer.concat([Buffer.from([0x08, grpc.status.INVALID_ARGUMENT]), bytesField(3, any)]);
}

// BadRequest { field_violations { field: "items[0]" description: "bad" } }
const GOOD = statusWith(bytesField(1, Buffer.concat([bytesField(1, 'items[0]'), bytesField(2, 'bad')])));
const GARBLED = {
  'not a Status': Buffer.from([0xff, 0xff, 0xff]),
  'a Status cut short': GOOD.subarray(0, GOOD.length - 2),
  'a Status whose BadRequest does not decode': statusWith([0x0a, 0x7f, 0x01]),
};

/** A grpc-js server serving `implementation` of PermissionsService. */
async function fakeServer(implementation) {
  const fake = new grpc.Server();
  fake.addService(stubClass('PermissionsService').service, implementation);
  const port = await new Promise((resolve, reject) => {
    fake.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) => {
      if (error) reject(error); else resolve(bound);
    });
  });
  return { target: `127.0.0.1:${port}`, stop: () => fake.forceShutdown() };
}

/** A server whose Check fails INVALID_ARGUMENT with `detail` as the trailer. */
function serverSending(detail) {
  return fakeServer({
    Check: (_call, callback) => {
      const trailers = new grpc.Metadata();
      trailers.set('grpc-status-details-bin', detail);
      callback({ code: grpc.status.INVALID_ARGUMENT, details: 'bad', metadata: trailers });
    },
  });
}

test('a status detail built by hand decodes (the control of the garbled ones below)', async () => {
  const fake = await serverSending(GOOD);
  try {
    const client = newClient(fake.target);
    await assert.rejects(client.check('document:readme', 'view', 'user:alice'), (error) => {
      assert.deepEqual(error.fieldViolations, [{ field: 'items[0]', description: 'bad' }]);
      return true;
    });
  } finally {
    fake.stop();
  }
});

for (const [name, detail] of Object.entries(GARBLED)) {
  test(`a status detail that does not decode (${name}) leaves no violations`, async () => {
    const fake = await serverSending(detail);
    try {
      const client = newClient(fake.target);
      await assert.rejects(client.check('document:readme', 'view', 'user:alice'), (error) => {
        assert.ok(error instanceof AuthzError);
        assert.equal(error.codeName, 'INVALID_ARGUMENT');
        assert.equal(error.message, 'bad');
        assert.deepEqual(error.metadata.get('grpc-status-details-bin'), [detail]);
        assert.deepEqual(error.fieldViolations, []);
        return true;
      });
    } finally {
      fake.stop();
    }
  });
}

test('a CheckBulk item error whose BadRequest does not decode has no violations', async () => {
  const value = Buffer.from([0x0a, 0x7f, 0x01]);
  const fake = await fakeServer({
    CheckBulk: (_call, callback) => callback(null, {
      items: [{ error: { code: grpc.status.INVALID_ARGUMENT, message: 'bad', details: [{ type_url: BAD_REQUEST_URL, value }] } }],
      checkedAt: { token: 't' },
    }),
  });
  try {
    const client = newClient(fake.target);
    const { results } = await client.checkBulk([['document:readme', 'view', 'user:alice']]);
    assert.equal(results[0].error.message, 'bad');
    assert.equal(results[0].allowed, false);
    assert.deepEqual(results[0].error.fieldViolations, []);
  } finally {
    fake.stop();
  }
});
