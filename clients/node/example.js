'use strict';
// One check, printed on one line:
//   node example.js [host:port] [resource] [permission] [subject] [tenant]
//   -> document:readme#view@user:alice in demo: ALLOWED
const { AuthzClient } = require('./index.js');

async function main() {
  const [
    target = process.env.AUTHZ_TARGET || '127.0.0.1:50051',
    resource = 'document:readme',
    permission = 'view',
    subject = 'user:alice',
    tenant = 'demo',
  ] = process.argv.slice(2);
  const client = new AuthzClient(target, { tenant, apiKey: process.env.AUTHZ_API_KEY });
  try {
    const { decision } = await client.check(resource, permission, subject);
    console.log(`${resource}#${permission}@${subject} in ${tenant}: ${decision}`);
  } finally {
    client.close();
  }
}

main().catch((error) => {
  console.error(`error: ${error.codeName ?? ''} ${error.message}`);
  process.exitCode = 1;
});
