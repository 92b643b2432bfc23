/**
 * Writes the CRD generated from the TypeBox schema to config/crd/ (run after changing schema.ts or
 * podtemplatespec.schema.json):
 *
 *   npx node src/api/v1/generate-crd.ts [--check]
 *
 * `--check` writes nothing and exits 1 when the committed file is stale.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { CRD_FILE, crdYaml } from "./crd.ts";

const repoRoot = fileURLToPath(new URL("../../../", import.meta.url));

if (import.meta.main) {
  const target = join(repoRoot, CRD_FILE);
  const yaml = crdYaml();
  if (process.argv.includes("--check")) {
    let current = "";
    try {
      current = readFileSync(target, "utf8");
    } catch {
      // missing counts as stale
    }
    if (current !== yaml) {
      process.stderr.write(`${CRD_FILE} is stale: run npx node src/api/v1/generate-crd.ts\n`);
      process.exit(1);
    }
    process.stderr.write(`${CRD_FILE} is up to date\n`);
  } else {
    writeFileSync(target, yaml);
    process.stderr.write(`wrote ${CRD_FILE} (${Buffer.byteLength(yaml)} bytes)\n`);
  }
}
