// Child process of test/tick-shape.test.ts, run with --allow-natives-syntax --expose-gc:
// queues nextTick entries between full garbage collections, as a busy gateway does, then
// prints V8's view of process.nextTick, whose feedback shows whether the entries' maps
// changed under it. With the argument `keep`, keygate's keepTickObjectShape runs first.
import { keepTickObjectShape } from '../../dist/tick-shape.js';

if (process.argv[2] === 'keep') keepTickObjectShape();
const noop = () => {};
for (let round = 0; round < 12; round++) {
  for (let i = 0; i < 200; i++) {
    process.nextTick(noop);
    process.nextTick(noop, i);
    process.nextTick(noop, i, round);
  }
  await new Promise((resolve) => setImmediate(resolve));
  // No entry is alive now: a full collection may take their maps.
  for (let i = 0; i < 3; i++) globalThis.gc();
}
%DebugPrint(process.nextTick);
