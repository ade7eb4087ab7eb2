'use strict';
// The API as loaded from proto/ at run time, and the one rule set that turns response
// messages into the plain results the client returns (scripts/gen-types.js writes the
// TypeScript declarations of those results from the same rules):
//   Timestamp -> Date | null           Duration -> seconds (number) | null
//   Struct -> JSON object | null       google.rpc.Status -> { code, codeName, message,
//                                        fieldViolations: [{ field, description }] }
//   ConsistencyToken, Cursor -> the token text ('' when unset)
//   ObjectReference -> 'type:id'       SubjectReference -> 'type:id' or 'type:id#relation'
//   enum values -> the name without the enum's prefix ('DECISION_ALLOWED' -> 'ALLOWED')
//   a message with a `decision` field also gets `allowed`: true only for ALLOWED
//   64-bit integers -> number (counts and sequence numbers stay far below 2^53)

const fs = require('node:fs');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const { statusViolations } = require('./details.js');

// The import root of the API (files import each other as `authz/v1/core.proto`).
const PROTO_ROOT = process.env.AUTHZ_PROTO_ROOT || path.resolve(__dirname, '..', '..', '..', 'proto');
const PACKAGE = 'authz.v1';
const LOADER_OPTIONS = {
  includeDirs: [PROTO_ROOT],
  keepCase: false, // camelCase fields, as proto3 JSON
  longs: Number,
  enums: String, // 'DECISION_ALLOWED', not 1
  defaults: true,
  oneofs: true,
};

let loaded; // { definition, grpcObject }, once per process, on first use

/** Every .proto of the package, so a new file (and its services) is picked up unchanged. */
function load() {
  if (!loaded) {
    const dir = path.join(PROTO_ROOT, ...PACKAGE.split('.'));
    const files = fs.readdirSync(dir).filter((f) => f.endsWith('.proto')).sort()
      .map((f) => `${PACKAGE.split('.').join('/')}/${f}`);
    const definition = protoLoader.loadSync(files, LOADER_OPTIONS);
    loaded = { definition, grpcObject: grpc.loadPackageDefinition(definition) };
  }
  return loaded;
}

/** { 'authz.v1.PermissionsService': { Check: { path, responseStream, ... } }, ... } */
function services() {
  const { definition } = load();
  const out = {};
  for (const [name, value] of Object.entries(definition)) {
    if (name.startsWith(`${PACKAGE}.`) && typeof value.format !== 'string') out[name] = value;
  }
  return out;
}

/** The stub constructor of a service: 'PermissionsService' -> grpc client class. */
function stubClass(service) {
  return load().grpcObject.authz.v1[service];
}

let types; // full name -> descriptor, including enums nested in messages

/** Every message and enum descriptor by full name (proto-loader lists nested enums only
 * inside their message). */
function allTypes() {
  if (!types) {
    types = {};
    for (const [name, value] of Object.entries(load().definition)) {
      if (typeof value.format !== 'string') continue; // a service
      types[name] = value.type;
      for (const nested of value.type.enumType || []) types[`${name}.${nested.name}`] = nested;
    }
  }
  return types;
}

/** The full name a relative type name refers to, seen from message `scope`. */
function resolve(scope, typeName) {
  const parts = scope.split('.');
  for (let i = parts.length; i >= 0; i -= 1) {
    const candidate = [...parts.slice(0, i), typeName].join('.');
    if (allTypes()[candidate]) return candidate;
  }
  throw new Error(`type ${typeName} (seen from ${scope}) is not loaded`);
}

const WELL_KNOWN = {
  'google.protobuf.Timestamp': 'timestamp',
  'google.protobuf.Duration': 'duration',
  'google.protobuf.Struct': 'struct',
  'google.rpc.Status': 'status',
  [`${PACKAGE}.ConsistencyToken`]: 'token',
  [`${PACKAGE}.Cursor`]: 'token',
  [`${PACKAGE}.ObjectReference`]: 'object',
  [`${PACKAGE}.SubjectReference`]: 'subject',
};

/** How a field of message `scope` is converted: { kind, type, repeated }. */
function fieldKind(scope, field) {
  const repeated = field.label === 'LABEL_REPEATED';
  if (field.type === 'TYPE_ENUM') return { kind: 'enum', type: resolve(scope, field.typeName), repeated };
  if (field.type !== 'TYPE_MESSAGE') return { kind: 'scalar', type: field.type, repeated };
  const type = resolve(scope, field.typeName);
  return { kind: WELL_KNOWN[type] || 'message', type, repeated };
}

function descriptor(type) {
  return allTypes()[type];
}

/** The enum's value names without their common prefix (`DECISION_`), from X_UNSPECIFIED. */
function enumNames(type) {
  const values = descriptor(type).value.map((v) => v.name);
  const prefix = values[0].replace(/UNSPECIFIED$/, '');
  return values.map((v) => (v.startsWith(prefix) ? v.slice(prefix.length) : v));
}

function stripEnum(type, value) {
  const prefix = descriptor(type).value[0].name.replace(/UNSPECIFIED$/, '');
  return value.startsWith(prefix) ? value.slice(prefix.length) : value;
}

function fromValue(value) {
  switch (value.kind) {
    case 'structValue': return fromStruct(value.structValue);
    case 'listValue': return value.listValue.values.map(fromValue);
    case 'nullValue': return null;
    case undefined: return null;
    default: return value[value.kind];
  }
}

function fromStruct(struct) {
  if (!struct) return null;
  const out = {};
  for (const [key, value] of Object.entries(struct.fields || {})) out[key] = fromValue(value);
  return out;
}

function seconds(value) {
  return Number(value.seconds) + value.nanos / 1e9;
}

function convertOne(kind, type, value) {
  switch (kind) {
    case 'scalar': return value;
    case 'enum': return stripEnum(type, value);
    case 'token': return value ? value.token : '';
    case 'timestamp': return value ? new Date(seconds(value) * 1000) : null;
    case 'duration': return value ? seconds(value) : null;
    case 'struct': return fromStruct(value);
    case 'status': return value ? statusResult(value) : null;
    case 'object': return value ? `${value.objectType}:${value.objectId}` : null;
    case 'subject': {
      if (!value || !value.object) return null;
      const { objectType, objectId } = value.object;
      return `${objectType}:${objectId}${value.relation ? `#${value.relation}` : ''}`;
    }
    default: return value ? fromMessage(type, value) : null;
  }
}

function statusResult(status) {
  const codeName = Object.keys(grpc.status).find((k) => grpc.status[k] === status.code);
  return { code: status.code, codeName, message: status.message, fieldViolations: statusViolations(status) };
}

/** A response (or nested) message of full type name `type` -> its plain result. */
function fromMessage(type, message) {
  const out = {};
  for (const field of descriptor(type).field) {
    const { kind, type: fieldType, repeated } = fieldKind(type, field);
    const value = message[field.name];
    out[field.name] = repeated
      ? (value || []).map((v) => convertOne(kind, fieldType, v))
      : convertOne(kind, fieldType, value);
    if (field.name === 'decision' && kind === 'enum') out.allowed = out.decision === 'ALLOWED';
  }
  return out;
}

module.exports = {
  PACKAGE, PROTO_ROOT, enumNames, fieldKind, descriptor, fromMessage, load, services, stubClass,
};
