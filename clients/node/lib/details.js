'use strict';
// The field violations of an error: the google.rpc.BadRequest details of a google.rpc.Status,
// from the `grpc-status-details-bin` trailer of a failed call or from a CheckBulk item's
// error. BadRequest is the only detail the server sends (authz_service/api/status.py), for
// bad input and for a failed condition that belongs to one field.

const path = require('node:path');
const protobuf = require('protobufjs');

const DETAILS_KEY = 'grpc-status-details-bin';
const BAD_REQUEST = 'google.rpc.BadRequest';

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

let types; // { Status, BadRequest }, once per process, on the first error with details

function load() {
  if (!types) {
    // Required here, not at the top: api.js requires this module.
    const { PROTO_ROOT } = require('./api.js');
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
 * [{ field, description }] of the BadRequests among `anys` (google.protobuf.Any, decoded by
 * protobufjs or @grpc/proto-loader: both use protobufjs's bundled any.proto, which keeps
 * the field name `type_url`). Throws when one does not decode.
 */
function decodeViolations(anys) {
  const found = [];
  for (const any of anys) {
    if (typeName(any.type_url) !== BAD_REQUEST) continue;
    for (const v of load().BadRequest.decode(any.value).fieldViolations) {
      found.push({ field: v.field, description: v.description });
    }
  }
  return found;
}

// Absent or undecodable details give [] instead of an exception: a detail that does not
// decode must not hide the status the server sent.

/** The violations of a google.rpc.Status as @grpc/proto-loader decodes it (a CheckBulk item). */
function statusViolations(status) {
  try {
    return decodeViolations(status.details || []);
  } catch {
    return [];
  }
}

/** The violations in the `grpc-status-details-bin` trailer of `metadata` (grpc-js Metadata, or absent). */
function trailerViolations(metadata) {
  try {
    const [raw] = metadata ? metadata.get(DETAILS_KEY) : [];
    if (!raw) return [];
    return decodeViolations(load().Status.decode(raw).details);
  } catch {
    return [];
  }
}

module.exports = { statusViolations, trailerViolations };
