// Runs the whole vitest suite (or the projects named in the arguments) and ends with the
// one plain line CI reads: "N passed, N failed[, N skipped]".
import { spawnSync } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";

const resultsFile = ".local/test-results.json";
rmSync(resultsFile, { force: true });

const run = spawnSync(
  "vitest",
  ["run", "--reporter=default", "--reporter=json", `--outputFile.json=${resultsFile}`, ...process.argv.slice(2)],
  { stdio: "inherit" },
);

let summary = { numPassedTests: 0, numFailedTests: 0, numPendingTests: 0, numTodoTests: 0, numFailedTestSuites: 0 };
try {
  summary = JSON.parse(readFileSync(resultsFile, "utf8"));
} catch {
  // No results file means vitest itself failed before running anything.
  summary.numFailedTests = 1;
}
// A file that fails to load has no test results of its own; count it as a failure.
const failed = summary.numFailedTests + (summary.numFailedTests === 0 ? summary.numFailedTestSuites : 0);
const skipped = summary.numPendingTests + summary.numTodoTests;
console.log(`${summary.numPassedTests} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
process.exit(run.status === 0 && failed === 0 ? 0 : 1);
