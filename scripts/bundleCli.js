// Bundles the CLI into dist/cli/ after `tsc`: one ESM file for main and the command paths, plus
// lazily loaded chunks for what only some commands import. Node 20 spends most of a short
// command's start resolving and loading modules one file at a time (the exec path opened ~250
// files: undici, zod, commander and the CLI's own modules); one file is a single read and parse.
// Packages that are large, native or only on rare paths stay external and load, as before, from
// node_modules when a command first imports them. The gateway is not bundled: it starts once.
import { rmSync } from 'node:fs';
import { build } from 'esbuild';

const external = [
  // The picker (`sluice ui`): ink and react load only when it opens.
  'ink',
  'react',
  'react/jsx-runtime',
  // Native addons, or packages with optional native parts.
  '@napi-rs/keyring',
  'ssh2',
  // Only login, the settings file or opening a browser need these.
  'conf',
  'openid-client',
  'open',
];

// Chunk names carry a content hash: clear the old ones so dist/cli holds only this build.
rmSync('dist/cli', { recursive: true, force: true });

const common = {
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external,
  // Bundled CommonJS packages (undici, commander) call require() for node: built-ins, which an
  // ES module does not have; this gives the bundle one.
  banner: { js: "import { createRequire as __sluiceCreateRequire } from 'node:module';\nconst require = __sluiceCreateRequire(import.meta.url);" },
  legalComments: 'linked',
  logLevel: 'warning',
};

await build({
  entryPoints: { main: 'src/main.ts' },
  outdir: 'dist/cli',
  ...common,
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
});

// The exec client a running agent serves (src/agent/client.ts; bin/sluice.js requires it first): one
// file importing only Node built-ins, as CommonJS, so that `sluice exec` never starts the ES module
// loader. Transpiled, not bundled: there is nothing of ours to bundle into it.
await build({
  entryPoints: ['src/agent/client.ts'],
  outfile: 'dist/cli/execClient.cjs',
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  logLevel: 'warning',
});
