'use strict';
// Calls with retries: unary calls retried only on retryable codes, server streams as async
// iterators that resume after the last response received (from its cursor or token).

const { setTimeout: sleep } = require('node:timers/promises');
const grpc = require('@grpc/grpc-js');
const { trailerViolations } = require('./details.js');

// Only UNAVAILABLE: the call did not reach a working server, so repeating it cannot apply
// anything twice. DEADLINE_EXCEEDED may have been applied; PERMISSION_DENIED,
// INVALID_ARGUMENT and the rest would fail again the same way.
const RETRYABLE = new Set([grpc.status.UNAVAILABLE]);

/**
 * A call failed: `code` is the gRPC status code (grpc.status.*), never a decision.
 * `fieldViolations` ([{ field, description }]) name the request fields that were wrong.
 */
class AuthzError extends Error {
  constructor(error) {
    super(error.details || error.message);
    this.name = 'AuthzError';
    this.code = error.code;
    this.codeName = Object.keys(grpc.status).find((k) => grpc.status[k] === error.code);
    this.metadata = error.metadata; // includes grpc-status-details-bin (google.rpc.Status)
    this.fieldViolations = trailerViolations(error.metadata);
  }
}

/** The wait before retry `attempt` (0-based): between half and all of its backoff step. */
function backoffMs(attempt, [initialMs, maxMs]) {
  const step = Math.min(maxMs, initialMs * 2 ** attempt);
  return step / 2 + Math.random() * (step / 2);
}

/** Whether to retry after `error`; waits first. One deadline covers every attempt. */
async function mayRetry(error, attempt, policy, deadline) {
  if (!RETRYABLE.has(error.code) || attempt >= policy.retries) return false;
  const wait = backoffMs(attempt, policy.backoffMs);
  if (deadline && Date.now() + wait >= deadline.getTime()) return false;
  await sleep(wait);
  return true;
}

function callOnce(stub, method, request, metadata, deadline) {
  return new Promise((resolve, reject) => {
    stub[method](request, metadata, { deadline }, (error, response) => {
      if (error) reject(error);
      else resolve(response);
    });
  });
}

/**
 * A unary call; `policy` = { retries, backoffMs: [initial, max], retry: boolean }.
 * Rejects with AuthzError.
 */
async function unary(stub, method, request, metadata, deadline, policy) {
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await callOnce(stub, method, request, metadata, deadline);
    } catch (error) {
      if (!policy.retry || !(await mayRetry(error, attempt, policy, deadline))) {
        throw new AuthzError(error);
      }
    }
  }
}

/**
 * A server stream as an async iterator of raw responses. After a retryable error it calls
 * again with `resume(request, lastResponse)` (the request itself when nothing was received
 * yet; null when nothing is left to ask for), so the consumer sees each response once and
 * none is skipped. Without `resume` (a stream with no cursor) only a failure before the
 * first response is retried. `retries` counts
 * consecutive failures: a response received resets it. Breaking out of the loop cancels.
 */
async function* stream(stub, method, request, metadata, deadline, policy, resume) {
  let next = request;
  let received = false;
  for (let attempt = 0; ; attempt += 1) {
    const call = stub[method](next, metadata, deadline ? { deadline } : {});
    try {
      for await (const response of call) {
        attempt = 0;
        received = true;
        if (resume) next = resume(next, response);
        yield response;
      }
      return;
    } catch (error) {
      if (error instanceof AuthzError || error.code === undefined) throw error;
      if (next === null) return; // everything asked for arrived before the error
      if (received && !resume) throw new AuthzError(error); // cannot continue where it was
      if (!(await mayRetry(error, attempt, policy, deadline))) throw new AuthzError(error);
    } finally {
      call.cancel(); // a no-op after the end; frees the call when the consumer stops early
    }
  }
}

module.exports = { AuthzError, RETRYABLE, stream, unary };
