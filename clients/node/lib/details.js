'use strict';
// The google.rpc.Status a failed call carries in its `grpc-status-details-bin` trailer,
// decoded into the field violations of its google.rpc.BadRequest details: the only detail
// the server sends (authz_service/api/status.py), for bad input and for a failed condition
// that belongs to one field.

const path = require('node:path');
const protobuf = require('protobufjs');
const { PROTO_ROOT } = require('./api.js');

const DETAILS_KEY = 'grpc-status-details-bin';
const BAD_REQUEST = 'google.rpc.BadRequest';

let types; // { Status, BadRequest }, once per process, on the first failed call

// proto/ vendors google/rpc/status.proto but not error_details.proto, so BadRequest is
// declared here: the two fields of FieldViolation that the server sets, with their numbers
// in googleapis' error_details.proto.
const BAD_REQUEST_JSON = {
  BadRequest: {
    fields: { fieldViolations: { rule: 'repeated', type: 'FieldViolation', id: 1 } },
    nested: {
      FieldViolation: {
        fields: { field: { type: 'string', id: 1 }, description: { type: 'string', id: 2 } },
      },
    },
  },
};

function load() {
  if (!types) {
    // google/protobuf/any.proto, which status.proto imports, is bundled with protobufjs.
    const root = protobuf.loadSync(path.join(PROTO_ROOT, 'google', 'rpc', 'status.proto'));
    root.lookup('google.rpc').addJSON(BAD_REQUEST_JSON);
    types = { Status: root.lookupType('google.rpc.Status'), BadRequest: root.lookupType(BAD_REQUEST) };
  }
  return types;
}

/** `type.googleapis.com/google.rpc.BadRequest` -> `google.rpc.BadRequest`. */
function typeName(typeUrl) {
  return typeUrl.slice(typeUrl.lastIndexOf('/') + 1);
}

/**
 * The [{ field, description }] of every BadRequest in the trailer of `metadata` (a grpc-js
 * Metadata, or absent). Absent or undecodable details give [] instead of an exception: a
 * detail that does not decode must not hide the status the server sent.
 */
function fieldViolations(metadata) {
  try {
    const [raw] = metadata ? metadata.get(DETAILS_KEY) : [];
    if (!raw) return [];
    const { Status, BadRequest } = load();
    const found = [];
    for (const detail of Status.decode(raw).details) {
      // `type_url`: protobufjs's bundled any.proto keeps the proto field names.
      if (typeName(detail.type_url) !== BAD_REQUEST) continue;
      for (const v of BadRequest.decode(detail.value).fieldViolations) {
        found.push({ field: v.field, description: v.description });
      }
    }
    return found;
  } catch {
    return [];
  }
}

module.exports = { fieldViolations };
