// Child process of test/tick-shape.test.ts, run with --allow-natives-syntax --expose-gc:
// queues nextTick entries between full garbage collections, as a busy gateway does, then
// prints V8's view of process.nextTick, whose feedback shows whether the entries' maps
// changed under it. The argument says what runs first: `keep` calls keygate's
// keepTickObjectShape, `library` loads keygate's library entry point, `none` nothing.
const mode = process.argv[2];
if (mode === 'keep') {
  const { keepTickObjectShape, tickObjectShapeKept } = await import('../../dist/tick-shape.js');
  keepTickObjectShape();
  await new Promise((resolve) => setImmediate(resolve));
  if (!tickObjectShapeKept()) throw new Error('no nextTick entry was kept');
} else if (mode === 'library') {
  await import('../../dist/index.js');
} else if (mode !== 'none') {
  throw new Error(`unknown mode ${mode}`);
}
const noop = () => {};
for (let round = 0; round < 12; round++) {
  for (let i = 0; i < 200; i++) {
    process.nextTick(noop);
    process.nextTick(noop, i);
    process.nextTick(noop, i, round);
  }
  await new Promise((resolve) => setImmediate(resolve));
  // No entry is alive now (but one kept): a full collection may take their maps.
  for (let i = 0; i < 3; i++) globalThis.gc();
}
%DebugPrint(process.nextTick);
