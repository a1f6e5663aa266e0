#!/usr/bin/env node
// The `stoker` executable. CommonJS on purpose: it runs before Node's ES module loader first uses
// libuv's thread pool, so the pool size set here still applies. File warming reads on that pool,
// and Node's default of 4 threads would cap how many reads really run at once.
if (process.env.UV_THREADPOOL_SIZE === undefined) process.env.UV_THREADPOOL_SIZE = '16';
// The bundle's entry (hack/bundle.ts builds it beside this file as main.mjs).
const main = './main.mjs';
void import(main);
