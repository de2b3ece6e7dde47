// Writes config/karasu.schema.json from the declarative schema in src/config/schema.ts.
// Run after changing the schema: `npx tsx scripts/gen-schema.ts` (a unit test fails until you do).
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { jsonSchemaText } from '../src/config/json-schema.js';

const target = fileURLToPath(new URL('../config/karasu.schema.json', import.meta.url));
await writeFile(target, jsonSchemaText());
console.log(`wrote ${target}`);
