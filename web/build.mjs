// Builds the browser bundles with esbuild. Deterministic: the same sources
// and esbuild version give the same bytes, which is what lets the shop's
// small built bundle be committed and checked for staleness.
//
//	node build.mjs                 # examples/shop/web/dist/{shop.js,roam-worker.js}
//	node build.mjs --out DIR       # also the library bundle roam.js, into DIR (tests)
//	node build.mjs --check         # fail if the committed shop bundle is stale
import * as esbuild from 'esbuild';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const shopDist = join(here, '..', 'examples', 'shop', 'web', 'dist');

const common = {
  bundle: true, format: 'esm', target: 'es2022', minify: true, legalComments: 'none',
  logLevel: 'warning', charset: 'utf8',
};

async function build(outdir, withLib) {
  const entryPoints = {
    'roam-worker': join(here, 'src', 'worker.js'),
    shop: join(here, '..', 'examples', 'shop', 'web', 'app.js'),
  };
  if (withLib) entryPoints.roam = join(here, 'src', 'index.js');
  await esbuild.build({ ...common, entryPoints, outdir });
}

const args = process.argv.slice(2);
if (args[0] === '--check') {
  const tmp = mkdtempSync(join(tmpdir(), 'roam-web-'));
  try {
    await build(tmp, false);
    for (const f of readdirSync(tmp)) {
      let committed = null;
      try {
        committed = readFileSync(join(shopDist, f));
      } catch { /* missing */ }
      if (!committed || !committed.equals(readFileSync(join(tmp, f)))) {
        console.error(`examples/shop/web/dist/${f} is stale: run (cd web && npm ci && npm run build) and commit it`);
        process.exit(1);
      }
    }
    console.log('shop bundle is up to date');
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
} else if (args[0] === '--out') {
  await build(args[1], true);
} else {
  await build(shopDist, false);
}
