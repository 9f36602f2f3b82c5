// Checks that roomcast.js exports what roomcast.d.ts declares, and nothing
// else: the declarations are written by hand, this keeps them honest. The
// module loads in Node (it touches no browser API until connect()).
import ts from "typescript";
import { readFileSync } from "node:fs";

const dts = ts.createSourceFile("roomcast.d.ts", readFileSync(new URL("../roomcast.d.ts", import.meta.url), "utf8"), ts.ScriptTarget.ES2022);
const declared = new Set();
for (const st of dts.statements) {
  const exported = ts.getCombinedModifierFlags(st) & ts.ModifierFlags.Export;
  if (ts.isExportAssignment(st)) declared.add("default");
  if (!exported) continue;
  if (ts.isInterfaceDeclaration(st) || ts.isTypeAliasDeclaration(st)) continue; // types only
  if (ts.isVariableStatement(st)) for (const d of st.declarationList.declarations) declared.add(d.name.getText(dts));
  else if (st.name) declared.add(st.name.getText(dts));
}
const mod = await import("../roomcast.js");
const actual = new Set(Object.keys(mod));
const missing = [...declared].filter((n) => !actual.has(n));
const undeclared = [...actual].filter((n) => !declared.has(n));
const defaults = Object.keys(mod.default).filter((n) => !(n in mod) || mod[n] !== mod.default[n]);
if (missing.length || undeclared.length || defaults.length) {
  console.error(`roomcast.d.ts and roomcast.js disagree: declared but not exported ${JSON.stringify(missing)}, ` +
    `exported but not declared ${JSON.stringify(undeclared)}, default members that are not the named exports ${JSON.stringify(defaults)}`);
  process.exit(1);
}
console.log(`roomcast.js exports the ${declared.size} values roomcast.d.ts declares`);
