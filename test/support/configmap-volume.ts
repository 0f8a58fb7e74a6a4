// A ConfigMap volume exactly as the kubelet lays it out and updates it (its AtomicWriter),
// for tests and demos that run Envoy on the operator's output without a cluster:
//
//   <dir>/bootstrap.yaml -> ..data/bootstrap.yaml          (one symlink per key)
//   <dir>/..data         -> ..2026_01_02_15_04_05.1234567  (symlink to the current payload)
//   <dir>/..2026_01_02_15_04_05.1234567/bootstrap.yaml     (the real files)
//
// An update (write) does what the kubelet does, in its order:
//   1. write the whole new payload into a new timestamped folder `..<UTC time>.<random>`;
//   2. make a symlink `..data_tmp` -> that folder and rename() it over `..data` (atomic:
//      a reader sees either the old payload or the new one, never a mix);
//   3. add `name -> ..data/name` links for new keys, remove the links of dropped keys;
//   4. delete the old timestamped folder.
// Like the kubelet, an unchanged payload is not written again.
//
//   const volume = new ConfigMapVolume("/tmp/x/etc/envoy/fallback");
//   volume.write(renderConfigFiles(resources, { ...options, configDir: volume.dir }).files);
//   // start envoy -c /tmp/x/etc/envoy/fallback/bootstrap.yaml, then later:
//   const { swappedAt } = volume.write(newFiles);   // performance.now() of the rename
import { randomInt } from "node:crypto";
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";

export const DATA_DIR = "..data";
const DATA_DIR_TMP = "..data_tmp";

export type WriteResult = {
  /** False when the payload was unchanged and nothing was written (as the kubelet does). */
  changed: boolean;
  /** Name of the timestamped folder now behind `..data`. */
  payloadDir: string;
  /** performance.now() right after `..data` was swapped. */
  swappedAt: number;
};

const pad = (n: number, width = 2) => String(n).padStart(width, "0");

/** `..2006_01_02_15_04_05.` in UTC, as Go formats it for the kubelet. */
function timestampPrefix(date = new Date()): string {
  return `..${date.getUTCFullYear()}_${pad(date.getUTCMonth() + 1)}_${pad(date.getUTCDate())}_${pad(date.getUTCHours())}_${pad(date.getUTCMinutes())}_${pad(date.getUTCSeconds())}.`;
}

export class ConfigMapVolume {
  readonly dir: string;
  /** File mode of the payload files (the volume's defaultMode). */
  readonly mode: number;

  constructor(dir: string, options: { mode?: number } = {}) {
    this.dir = dir;
    this.mode = options.mode ?? 0o644;
    mkdirSync(dir, { recursive: true });
  }

  /** The timestamped folder `..data` points at, if any. */
  current(): string | undefined {
    try {
      return readlinkSync(join(this.dir, DATA_DIR));
    } catch {
      return undefined;
    }
  }

  /** The keys currently in the volume. */
  keys(): string[] {
    const current = this.current();
    return current ? readdirSync(join(this.dir, current)).sort() : [];
  }

  /** Content of one key, read through the user-visible link. */
  read(key: string): string {
    return readFileSync(join(this.dir, key), "utf8");
  }

  /** Replace the whole payload with `files` (key -> content). Keys are plain file names. */
  write(files: Record<string, string>): WriteResult {
    for (const key of Object.keys(files)) {
      if (!key || key.includes("/") || key.startsWith("..")) throw new Error(`invalid ConfigMap key "${key}"`);
    }
    const old = this.current();
    const oldKeys = this.keys();
    if (old && this.unchanged(old, files)) return { changed: false, payloadDir: old, swappedAt: performance.now() };

    // 1. The new payload, in a folder of its own.
    const payloadDir = this.newPayloadDir();
    for (const [key, content] of Object.entries(files)) {
      writeFileSync(join(this.dir, payloadDir, key), content, { mode: this.mode });
    }
    // 2. The atomic swap.
    const tmp = join(this.dir, DATA_DIR_TMP);
    if (existsSync(tmp) || isLink(tmp)) unlinkSync(tmp);
    symlinkSync(payloadDir, tmp);
    renameSync(tmp, join(this.dir, DATA_DIR));
    const swappedAt = performance.now();
    // 3. User-visible links: add the new keys, drop the removed ones.
    for (const key of Object.keys(files)) {
      const link = join(this.dir, key);
      if (!isLink(link)) symlinkSync(join(DATA_DIR, key), link);
    }
    for (const key of oldKeys) {
      if (!(key in files)) rmSync(join(this.dir, key), { force: true });
    }
    // 4. The old payload goes.
    if (old) rmSync(join(this.dir, old), { recursive: true, force: true });
    return { changed: true, payloadDir, swappedAt };
  }

  /** Delete the whole volume folder. */
  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }

  private unchanged(old: string, files: Record<string, string>): boolean {
    const oldKeys = readdirSync(join(this.dir, old)).sort();
    const keys = Object.keys(files).sort();
    if (oldKeys.join("\n") !== keys.join("\n")) return false;
    return keys.every((key) => readFileSync(join(this.dir, old, key), "utf8") === files[key]);
  }

  private newPayloadDir(): string {
    // Go's os.MkdirTemp(dir, "..2006_01_02_15_04_05.") appends a random decimal number.
    for (let i = 0; i < 100; i++) {
      const name = `${timestampPrefix()}${randomInt(0, 2 ** 31)}`;
      try {
        mkdirSync(join(this.dir, name));
        return name;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      }
    }
    throw new Error(`could not create a payload folder in ${this.dir}`);
  }
}

function isLink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

/** Create a volume at `dir` holding `files`: the state the kubelet leaves at pod start. */
export function mountConfigMap(
  dir: string,
  files: Record<string, string>,
  options?: { mode?: number },
): ConfigMapVolume {
  mkdirSync(dirname(dir), { recursive: true });
  const volume = new ConfigMapVolume(dir, options);
  volume.write(files);
  return volume;
}
