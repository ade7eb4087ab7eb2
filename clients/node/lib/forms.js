'use strict';
// Arguments as people write them -> request messages as @grpc/proto-loader takes them.
// References are text (`document:readme`, `user:alice`, `group:eng#member`,
// `doc:1#viewer@user:alice[cav:{"k":1}][expiration:2030-01-01T00:00:00Z]`) or the plain
// objects the client returns, so a result can be passed back unchanged.

const OBJECT = /^([^:#@[\]\s]+):([^#@[\]\s]+)$/;
const SUBJECT = /^([^:#@[\]\s]+):([^#@[\]\s]+)(?:#([^@[\]\s]+))?$/;
const RELATIONSHIP = /^([^#@\s]+)#([^@\s]+)@([^[\s]+)((?:\[.*\])?)$/;
const ECHO = 80; // longest echo of bad input in an error message

function echo(text) {
  const shown = String(text);
  return shown.length > ECHO ? `${shown.slice(0, ECHO)}...` : shown;
}

/** `document:readme` -> ObjectReference. */
function parseObject(text) {
  if (typeof text !== 'string') throw new TypeError(`\`${echo(text)}\` is not a \`type:id\` string`);
  const m = OBJECT.exec(text.trim());
  if (!m) throw new TypeError(`\`${echo(text)}\` is not of the form \`type:id\``);
  return { objectType: m[1], objectId: m[2] };
}

/** `user:alice`, `group:eng#member` or `user:*` -> SubjectReference. */
function parseSubject(text) {
  if (typeof text !== 'string') {
    throw new TypeError(`\`${echo(text)}\` is not a \`type:id[#relation]\` string`);
  }
  const m = SUBJECT.exec(text.trim());
  if (!m) throw new TypeError(`\`${echo(text)}\` is not of the form \`type:id[#relation]\``);
  const relation = m[3] && m[3] !== '...' ? m[3] : '';
  return { object: { objectType: m[1], objectId: m[2] }, relation };
}

/** `[a][b:{...}][expiration:...]` -> [[name, argument], ...]; brackets inside JSON allowed. */
function splitBrackets(text, whole) {
  const parts = [];
  let depth = 0;
  let start = -1;
  let inString = false;
  for (let i = 0; i < text.length; i += 1) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i += 1;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === '[') { if (depth === 0) start = i + 1; depth += 1; } else if (c === ']') {
      depth -= 1;
      if (depth === 0) {
        const body = text.slice(start, i);
        const colon = body.indexOf(':');
        parts.push(colon < 0 ? [body, ''] : [body.slice(0, colon), body.slice(colon + 1)]);
      }
    } else if (depth === 0) throw new TypeError(`\`${echo(whole)}\`: text outside [...]`);
  }
  if (depth !== 0 || inString) throw new TypeError(`\`${echo(whole)}\`: unbalanced [...]`);
  return parts;
}

/** Relationship text or object -> Relationship. */
function toRelationship(value) {
  if (typeof value !== 'string') {
    return {
      resource: toObject(value.resource),
      relation: value.relation,
      subject: toSubject(value.subject),
      caveat: value.caveat ? { name: value.caveat.name, context: toStructOrNull(value.caveat.context) } : null,
      expiresAt: toTimestamp(value.expiresAt),
    };
  }
  const m = RELATIONSHIP.exec(value.trim());
  if (!m) {
    throw new TypeError(
      `\`${echo(value)}\` is not of the form \`type:id#relation@type:id[#relation][caveat]\``,
    );
  }
  const relationship = {
    resource: parseObject(m[1]), relation: m[2], subject: parseSubject(m[3]), caveat: null, expiresAt: null,
  };
  for (const [name, argument] of splitBrackets(m[4], value)) {
    if (name === 'expiration') {
      relationship.expiresAt = toTimestamp(argument);
    } else {
      let context = null;
      if (argument) {
        try { context = JSON.parse(argument); } catch (error) {
          throw new TypeError(`\`${echo(value)}\`: caveat context is not JSON: ${error.message}`);
        }
      }
      relationship.caveat = { name, context: toStructOrNull(context) };
    }
  }
  return relationship;
}

function toObject(value) {
  return typeof value === 'string' ? parseObject(value) : value;
}

function toSubject(value) {
  return typeof value === 'string' ? parseSubject(value) : value;
}

function toObjectOrNull(value) {
  return value === undefined || value === null ? null : toObject(value);
}

function toSubjectOrNull(value) {
  return value === undefined || value === null ? null : toSubject(value);
}

/** Date, RFC 3339 text or epoch milliseconds -> google.protobuf.Timestamp (null stays null). */
function toTimestamp(value) {
  if (value === undefined || value === null || value === '') return null;
  const date = value instanceof Date ? value : new Date(value);
  const ms = date.getTime();
  if (Number.isNaN(ms)) throw new TypeError(`\`${echo(value)}\` is not a time`);
  return { seconds: Math.floor(ms / 1000), nanos: (((ms % 1000) + 1000) % 1000) * 1e6 };
}

/**
 * Seconds (`overlapSeconds`, `windowSeconds`) -> google.protobuf.Duration, the fraction as
 * nanos: flooring it would turn half a second of overlap into none (undefined stays null).
 */
function toDuration(seconds, name) {
  if (seconds === undefined || seconds === null) return null;
  if (typeof seconds !== 'number' || !Number.isFinite(seconds) || seconds < 0) {
    throw new TypeError(`\`${name}\` must be a finite number of seconds, at least 0: \`${echo(seconds)}\``);
  }
  const whole = Math.floor(seconds);
  const nanos = Math.round((seconds - whole) * 1e9);
  // 2.9999999999 rounds up to a whole second; nanos must stay below 1e9.
  return nanos === 1e9 ? { seconds: whole + 1, nanos: 0 } : { seconds: whole, nanos };
}

/** A plain JSON object -> google.protobuf.Struct, as proto-loader expects it. */
function toStruct(object) {
  const fields = {};
  for (const [key, value] of Object.entries(object)) fields[key] = toValue(value);
  return { fields };
}

function toStructOrNull(object) {
  return object ? toStruct(object) : null;
}

function toValue(value) {
  if (value === null || value === undefined) return { nullValue: 'NULL_VALUE' };
  if (typeof value === 'boolean') return { boolValue: value };
  if (typeof value === 'number') return { numberValue: value };
  if (typeof value === 'string') return { stringValue: value };
  if (Array.isArray(value)) return { listValue: { values: value.map(toValue) } };
  if (typeof value === 'object') return { structValue: toStruct(value) };
  throw new TypeError(`context value of type ${typeof value} is not JSON`);
}

/** Token text -> ConsistencyToken or Cursor (empty stays unset). */
function toToken(token) {
  return token ? { token } : null;
}

/**
 * Consistency in the short forms the docs use -> Consistency:
 * 'fullyConsistent' | 'minimizeLatency' | { atLeastAsFresh: token } | { atExactSnapshot: token }.
 * Tokens may be strings (as results carry them) or `{ token }`.
 */
function toConsistency(value) {
  if (value === undefined || value === null) return null;
  if (value === 'fullyConsistent') return { fullyConsistent: true };
  if (value === 'minimizeLatency') return { minimizeLatency: true };
  for (const key of ['atLeastAsFresh', 'atExactSnapshot']) {
    if (value[key] !== undefined) {
      const token = typeof value[key] === 'string' ? value[key] : value[key].token;
      return { [key]: { token } };
    }
  }
  if (value.fullyConsistent || value.minimizeLatency) return value;
  throw new TypeError(`\`${echo(JSON.stringify(value))}\` is not a consistency`);
}

/** RelationshipFilter fields, with `subjectRelation` left unset unless given. */
function toFilter(filter = {}) {
  const out = {
    resourceType: filter.resourceType || '',
    resourceIds: filter.resourceIds || [],
    relation: filter.relation || '',
    subjectType: filter.subjectType || '',
    subjectIds: filter.subjectIds || [],
  };
  if (filter.subjectRelation !== undefined) out.subjectRelation = filter.subjectRelation;
  return out;
}

/** `{ mustMatch: filter }` or `{ mustNotMatch: filter }` -> Precondition. */
function toPrecondition(value) {
  if (value.mustMatch) return { operation: 'OPERATION_MUST_MATCH', filter: toFilter(value.mustMatch) };
  if (value.mustNotMatch) {
    return { operation: 'OPERATION_MUST_NOT_MATCH', filter: toFilter(value.mustNotMatch) };
  }
  throw new TypeError(`precondition \`${echo(JSON.stringify(value))}\` has no mustMatch or mustNotMatch`);
}

/** `document#view` or { resourceType, permission } -> RolePermission. */
function toRolePermission(value) {
  if (typeof value !== 'string') return value;
  const [resourceType, permission, extra] = value.split('#');
  if (!resourceType || !permission || extra !== undefined) {
    throw new TypeError(`\`${echo(value)}\` is not of the form \`resource_type#permission\``);
  }
  return { resourceType, permission };
}

/** Role fields (permissions as `type#permission` text or objects) -> Role. */
function toRole(role) {
  return {
    name: role.name,
    description: role.description || '',
    permissions: (role.permissions || []).map(toRolePermission),
  };
}

/** { role, subject, resource } -> RoleBinding (resource unset: tenant-wide). */
function toBinding(binding) {
  return {
    bindingId: binding.bindingId || '',
    role: binding.role,
    subject: toSubject(binding.subject),
    resource: toObjectOrNull(binding.resource),
  };
}

module.exports = {
  parseObject,
  parseSubject,
  toBinding,
  toConsistency,
  toDuration,
  toFilter,
  toObject,
  toObjectOrNull,
  toPrecondition,
  toRelationship,
  toRole,
  toStructOrNull,
  toSubject,
  toSubjectOrNull,
  toTimestamp,
  toToken,
};
