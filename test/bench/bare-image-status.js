// The plain tool for "everything already present": a bare CRI client as its own process, grpc-js
// and the same CRI proto with the options Stoker loads it with, asking ImageStatus once per image
// and failing unless each is present. What any client must do at the least to learn that there is
// nothing to pull.
//
//   node test/bench/bare-image-status.js unix:///run/containerd/containerd.sock IMAGE...
import * as grpc from '@grpc/grpc-js';
import * as loader from '@grpc/proto-loader';
import { dirname, join } from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';

const protoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'proto');
const [endpoint, ...images] = process.argv.slice(2);
const def = loader.loadSync(join(protoRoot, 'runtime/v1/api.proto'), {
  keepCase: false,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [protoRoot],
});
const Images = grpc.loadPackageDefinition(def).runtime.v1.ImageService;
const client = new Images(endpoint, grpc.credentials.createInsecure());
for (const image of images) {
  const res = await new Promise((resolve, reject) => client.ImageStatus({ image: { image } }, (err, r) => (err ? reject(err) : resolve(r))));
  if (!res.image) {
    process.stderr.write(`${image} is not present\n`);
    process.exitCode = 1;
  }
}
client.close();
