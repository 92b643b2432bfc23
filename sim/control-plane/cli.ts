/** `npm run sim:build`: builds (or finds in the cache) the control-plane binaries and prints their folder. */
import { ensureBinaries } from "./build.ts";

const started = Date.now();
const bins = await ensureBinaries({ log: (line) => process.stderr.write(`${line}\n`) });
process.stderr.write(`control-plane binaries ready in ${Math.round((Date.now() - started) / 1000)}s\n`);
process.stdout.write(`${bins.dir}\n`);
