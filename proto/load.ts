// Loads Stoker's .proto files at run time with the same options the generated types in
// proto/gen were made with (hack/gen-proto.sh). Shared by the agent, the controller and the CLI.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

export const LOADER_OPTIONS: protoLoader.Options = Object.freeze({
  keepCase: false,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
});

/** The proto/ directory, both from source (proto/load.ts) and from the build (dist/proto/load.js). */
export function protoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    if (existsSync(join(dir, 'stoker', 'v1', 'agent.proto'))) return dir;
    const candidate = join(dir, 'proto');
    if (existsSync(join(candidate, 'stoker', 'v1', 'agent.proto'))) return candidate;
    dir = dirname(dir);
  }
  throw new Error('cannot find the proto/ directory next to the Stoker installation');
}

const cache = new Map<string, grpc.GrpcObject>();

/** Loads one .proto file (relative to proto/) and returns its gRPC object, cast to the generated type. */
export function loadProto<T>(relativePath: string): T {
  let pkg = cache.get(relativePath);
  if (!pkg) {
    const root = protoRoot();
    const definition = protoLoader.loadSync(join(root, relativePath), { ...LOADER_OPTIONS, includeDirs: [root] });
    pkg = grpc.loadPackageDefinition(definition);
    cache.set(relativePath, pkg);
  }
  return pkg as T;
}
