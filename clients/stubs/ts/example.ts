// Compiled with the generated stubs (check.sh): a request built and encoded with the
// generated TypeScript, and the service descriptor a Connect or gRPC-web client takes.
import { create, toBinary } from '@bufbuild/protobuf';
import { CheckRequestSchema, PermissionsService } from '../gen/ts/authz/v1/permissions_pb';

const request = create(CheckRequestSchema, {
  tenant: 'demo',
  resource: { objectType: 'document', objectId: 'readme' },
  permission: 'view',
  subject: { object: { objectType: 'user', objectId: 'alice' } },
});
const bytes: Uint8Array = toBinary(CheckRequestSchema, request);
const check: string = PermissionsService.method.check.name;
export { bytes, check };
