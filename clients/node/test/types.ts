// Compiled with `tsc --noEmit` (npm test): the declarations describe what the client
// returns, and misuse is a type error.
import { AuthzClient, AuthzError, Decision, CheckResponse, BulkResult, FieldViolation } from '..';

async function usage(client: AuthzClient): Promise<void> {
  const result: CheckResponse = await client.check('document:readme', 'view', 'user:alice', {
    context: { ip: '10.0.0.7' }, consistency: 'fullyConsistent',
  });
  const decision: Decision = result.decision;
  const allowed: boolean = result.allowed;
  const token: string = result.checkedAt;
  const { results }: { results: BulkResult[] } = await client.checkBulk([['document:1', 'view', 'user:a']]);
  const code: number | undefined = results[0].error?.code;
  const itemField: string | undefined = results[0].error?.fieldViolations[0]?.field;
  for await (const found of client.lookupResources('document', 'view', 'user:alice', { limit: 10 })) {
    const id: string = found.resourceId;
    void id;
  }
  for await (const batch of client.watch({ after: token })) {
    const subject: string | null = batch.changes[0].relationship!.subject;
    void subject;
  }
  const explained = await client.explain('document:readme', 'view', 'user:alice');
  const kind = explained.explanation?.root?.kind;
  // @ts-expect-error: a decision is a string union, not a number
  const wrong: number = result.decision;
  // @ts-expect-error: the permission is required
  await client.check('document:readme');
  try {
    await client.check({ objectType: 'document', objectId: '' }, 'view', 'user:alice');
  } catch (error) {
    if (error instanceof AuthzError) {
      const violations: FieldViolation[] = error.fieldViolations;
      const field: string | undefined = violations[0]?.field;
      void field;
    }
  }
  void [decision, allowed, code, itemField, kind, wrong];
}

void usage;
