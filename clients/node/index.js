'use strict';
// The Node.js client of the authorization service: @grpc/grpc-js with the .proto files of
// this repository loaded at run time (no code generation step). clients/README.md lists
// every method with its arguments and an example; index.d.ts declares the types.
//
//   const { AuthzClient } = require('./index.js');
//   const client = new AuthzClient('127.0.0.1:50051', { tenant: 'acme' });
//   const { allowed } = await client.check('document:readme', 'view', 'user:alice');

const { AuthzError, RETRYABLE } = require('./lib/calls.js');
const { AuthzClient, RPC_METHODS } = require('./lib/client.js');
const { parseObject, parseSubject, toRelationship } = require('./lib/forms.js');

/** `document:readme#viewer@user:alice[cav:{"k":1}][expiration:...]` -> Relationship. */
function parseRelationship(text) {
  if (typeof text !== 'string') throw new TypeError('a relationship text is a string');
  return toRelationship(text);
}

module.exports = {
  AuthzClient, AuthzError, RETRYABLE, RPC_METHODS, parseObject, parseSubject, parseRelationship,
};
