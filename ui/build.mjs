// Builds the console into dist/: index.html, app.js (esbuild bundle of src/, xterm.js and
// asciinema-player included), app.css, xterm.css and player.css (the two libraries' own
// stylesheets, unchanged) and favicon.svg.
// Nothing is fetched at run time: every byte the browser loads comes from dist/.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, 'dist');
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

await build({
  entryPoints: [join(here, 'src', 'main.ts')],
  outfile: join(out, 'app.js'),
  bundle: true,
  format: 'iife',
  target: ['chrome110', 'firefox110', 'safari16'],
  minify: true,
  sourcemap: 'linked',
  legalComments: 'linked',
  logLevel: 'warning',
});

copyFileSync(join(here, 'index.html'), join(out, 'index.html'));
copyFileSync(join(here, 'src', 'app.css'), join(out, 'app.css'));
copyFileSync(join(here, 'src', 'favicon.svg'), join(out, 'favicon.svg'));
copyFileSync(join(here, 'node_modules', '@xterm', 'xterm', 'css', 'xterm.css'), join(out, 'xterm.css'));
copyFileSync(join(here, 'node_modules', 'asciinema-player', 'dist', 'bundle', 'asciinema-player.css'), join(out, 'player.css'));
copyFileSync(join(here, 'node_modules', 'diff2html', 'bundles', 'css', 'diff2html.min.css'), join(out, 'diff2html.css'));
console.log('ui: built ' + out);
