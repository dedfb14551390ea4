#!/usr/bin/env node
// Bundles the dashboard (dashboard/src, Preact) into dist/dashboard/app.js and app.css, which the
// admin listener serves under /assets/. Part of `npm run build`; nothing is loaded from a CDN.
//
// Usage: node dashboard/build.mjs
import { build } from 'esbuild';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

await build({
  entryPoints: { app: join(here, 'src', 'main.tsx') }, // (app.css comes out beside it: main.tsx imports it)
  outdir: join(here, '..', 'dist', 'dashboard'),
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['chrome111', 'firefox111', 'safari16.4'],
  jsx: 'automatic',
  jsxImportSource: 'preact',
  legalComments: 'eof',
  logLevel: 'warning',
});
