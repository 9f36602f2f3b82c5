// Checks what `npm pack` would publish: the module, its declarations, the
// README and package.json, nothing else (no tests, no node_modules).
import { execFileSync } from "node:child_process";

const out = JSON.parse(execFileSync("npm", ["pack", "--dry-run", "--json", "--loglevel=error"], { encoding: "utf8" }));
const files = out[0].files.map((f) => f.path).sort();
const want = ["README.md", "package.json", "roomcast.d.ts", "roomcast.js"];
if (JSON.stringify(files) !== JSON.stringify(want)) {
  console.error(`npm pack would publish ${JSON.stringify(files)}, want ${JSON.stringify(want)}`);
  process.exit(1);
}
console.log(`npm pack publishes ${files.join(", ")}`);
