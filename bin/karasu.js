#!/usr/bin/env node
// Runs the compiled CLI; `npm run build` (run by `npm start`) produces dist/.
import { main } from '../dist/cli.js';

main(process.argv.slice(2)).then(
  (code) => { if (typeof code === 'number') process.exitCode = code; },
  (err) => { console.error(err?.stack ?? err); process.exitCode = 1; },
);
