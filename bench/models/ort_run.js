// onnxruntime's CPU provider on one model: node ort_run.js MODEL.onnx INPUT.npy THREADS SECONDS
// Prints {"ms_per_image": median over runs, "runs": n, "load_seconds": the session's
// creation (read, optimise, prepare)} after one warm-up run. The input is
// a float32 C-order .npy file (what bench/models.py writes); onnxruntime-node is found via
// NODE_PATH.
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

function readNpy(path) {
  const b = fs.readFileSync(path);
  if (b.toString('latin1', 1, 6) !== 'NUMPY') throw new Error(path + ': not an .npy file');
  const major = b[6];
  const headerLength = major === 1 ? b.readUInt16LE(8) : b.readUInt32LE(8);
  const start = (major === 1 ? 10 : 12) + headerLength;
  const header = b.toString('latin1', major === 1 ? 10 : 12, start);
  if (!/'descr':\s*'<f4'/.test(header) || /'fortran_order':\s*True/.test(header))
    throw new Error(path + ': needs little-endian float32 in C order, header ' + header);
  const shape = header.match(/'shape':\s*\(([^)]*)\)/)[1].split(',').filter(s => s.trim()).map(Number);
  const count = shape.reduce((a, c) => a * c, 1);
  const data = new Float32Array(count);
  for (let i = 0; i < count; ++i) data[i] = b.readFloatLE(start + 4 * i);
  return { shape, data };
}

async function main() {
  const [model, input, threads, seconds] = process.argv.slice(2);
  const x = readNpy(input);
  const created = process.hrtime.bigint();
  const session = await ort.InferenceSession.create(model, {
    intraOpNumThreads: Number(threads), interOpNumThreads: 1, executionMode: 'sequential',
    graphOptimizationLevel: 'all', executionProviders: ['cpu'],
  });
  const loadSeconds = Number(process.hrtime.bigint() - created) / 1e9;
  const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', x.data, x.shape) };
  await session.run(feeds); // warm-up
  const times = [];
  const end = Date.now() + 1000 * Number(seconds);
  do {
    const t = process.hrtime.bigint();
    await session.run(feeds);
    times.push(Number(process.hrtime.bigint() - t) / 1e6 / x.shape[0]);
  } while (Date.now() < end || times.length < 3);
  times.sort((a, b) => a - b);
  console.log(JSON.stringify({ ms_per_image: times[Math.floor(times.length / 2)], runs: times.length,
                                load_seconds: loadSeconds }));
}
main().catch(e => { console.error(e.message || e); process.exit(1); });
