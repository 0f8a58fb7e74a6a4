// The image cannot be built here (no Docker engine), so the Dockerfile is checked statically:
// Node 24 base images (and Go for the Envoy API descriptors only), production dependencies only,
// every COPY source exists in the repository and survives .dockerignore, a numeric non-root user,
// and an entrypoint file that exists.
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, normalize, posix } from "node:path";
import { describe, expect, it } from "vitest";
import { repoRoot } from "../../support/paths.ts";

interface Instruction {
  keyword: string;
  args: string;
}

/** Dockerfile instructions: comments dropped, backslash continuations joined. */
function parseDockerfile(text: string): Instruction[] {
  const logical: string[] = [];
  let current = "";
  for (const raw of text.split("\n")) {
    const line = raw.trimEnd();
    if (/^\s*#/.test(line) && current === "") continue; // comment or parser directive
    if (/^\s*#/.test(line)) continue; // comment inside a continued instruction
    if (line.endsWith("\\")) {
      current += line.slice(0, -1) + " ";
      continue;
    }
    current += line;
    if (current.trim()) logical.push(current.trim());
    current = "";
  }
  if (current.trim()) logical.push(current.trim());
  return logical.map((l) => {
    const m = /^(\S+)\s*(.*)$/.exec(l)!;
    return { keyword: m[1]!.toUpperCase(), args: m[2]! };
  });
}

/** Exec form (JSON array) or shell form split on blanks; leading --flags split off. */
function splitArgs(args: string): { flags: Record<string, string>; words: string[] } {
  const flags: Record<string, string> = {};
  let rest = args;
  for (let m = /^--([a-z-]+)(?:=(\S+))?\s+/.exec(rest); m; m = /^--([a-z-]+)(?:=(\S+))?\s+/.exec(rest)) {
    flags[m[1]!] = m[2] ?? "true";
    rest = rest.slice(m[0].length);
  }
  const words = rest.startsWith("[") ? (JSON.parse(rest) as string[]) : rest.split(/\s+/).filter(Boolean);
  return { flags, words };
}

/** A .dockerignore pattern as a regular expression, as Docker reads it: "**" spans
 * directories, "*" and "?" stay within one, and dot files are not special. */
function patternRegExp(pattern: string): RegExp {
  let re = "";
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i]!;
    if (ch === "*" && pattern[i + 1] === "*") {
      const slash = pattern[i + 2] === "/";
      re += slash ? "(?:.*/)?" : ".*";
      i += slash ? 2 : 1;
    } else if (ch === "*") re += "[^/]*";
    else if (ch === "?") re += "[^/]";
    else re += ch.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}

/** .dockerignore semantics: a pattern matches a path or any of its parent directories; the
 * last matching pattern wins, and "!" re-includes. */
function dockerignored(path: string, patterns: string[]): boolean {
  const parts = normalize(path).replace(/\/$/, "").split("/");
  const prefixes = parts.map((_, i) => parts.slice(0, i + 1).join("/"));
  let ignored = false;
  for (const raw of patterns) {
    const negate = raw.startsWith("!");
    const pattern = normalize(negate ? raw.slice(1) : raw)
      .replace(/^\//, "")
      .replace(/\/$/, "");
    const re = patternRegExp(pattern);
    if (prefixes.some((p) => re.test(p))) ignored = !negate;
  }
  return ignored;
}

const dockerfile = parseDockerfile(readFileSync(join(repoRoot, "Dockerfile"), "utf8"));
const ignorePatterns = readFileSync(join(repoRoot, ".dockerignore"), "utf8")
  .split("\n")
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith("#"));

const args: Record<string, string> = {};
for (const i of dockerfile.filter((x) => x.keyword === "ARG")) {
  const [name, value] = i.args.split("=");
  if (value !== undefined) args[name!] = value;
}
const expand = (s: string) => s.replace(/\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?/g, (_, n: string) => args[n] ?? "");
const stageStarts = dockerfile.flatMap((i, at) => (i.keyword === "FROM" ? [at] : []));
const stages = stageStarts.map((at, n) => {
  const [image, as, name] = dockerfile[at]!.args.split(/\s+/);
  const instructions = dockerfile.slice(at + 1, stageStarts[n + 1]);
  return { image: expand(image!), name: as?.toUpperCase() === "AS" ? name : undefined, instructions };
});
const lastStageAt = stageStarts.at(-1)!;
const finalStage = dockerfile.slice(lastStageAt);

// The one stage on Go: it runs operator/envoy-api, which writes the Envoy API descriptors.
const ENVOY_API_STAGE = "envoy-api";

describe("Dockerfile", () => {
  it("is multi-stage on node:24 images, and on Go only for the Envoy API descriptors", () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    for (const s of stages) {
      const stageNames = stages.map((x) => x.name);
      if (stageNames.includes(s.image)) continue; // FROM an earlier stage
      if (s.name === ENVOY_API_STAGE && s !== stages.at(-1)) continue; // checked below
      expect(s.image).toMatch(/^(docker\.io\/(library\/)?)?node:24([.-]|$)/);
    }
  });

  it("builds the Envoy API descriptors with the Go of operator/envoy-api and ships them where FALLBACK_ENVOY_API says", () => {
    const stage = stages.find((s) => s.name === ENVOY_API_STAGE);
    expect(stage, `a stage named ${ENVOY_API_STAGE}`).toBeDefined();
    // The image's Go is at least the go.mod's (go 1.26.0 needs a 1.26 toolchain or newer).
    const goMod = readFileSync(join(repoRoot, "operator/envoy-api/go.mod"), "utf8");
    const [, modMajor, modMinor] = /^go (\d+)\.(\d+)/m.exec(goMod)!;
    const image = /^(?:docker\.io\/(?:library\/)?)?golang:(\d+)\.(\d+)/.exec(stage!.image);
    expect(image, `${stage!.image} is a golang:X.Y image`).not.toBeNull();
    expect(Number(image![1]) * 1000 + Number(image![2])).toBeGreaterThanOrEqual(
      Number(modMajor) * 1000 + Number(modMinor),
    );
    // It copies the program in and runs it.
    const copied = stage!.instructions
      .filter((i) => i.keyword === "COPY")
      .flatMap((i) => splitArgs(i.args).words.slice(0, -1));
    expect(copied.map((w) => w.replace(/\/$/, ""))).toContain("operator/envoy-api");
    const run = stage!.instructions
      .filter((i) => i.keyword === "RUN")
      .map((i) => splitArgs(i.args).words.join(" "))
      .join(" && ");
    const out = /\bgo run \. (\S+)/.exec(run)?.[1];
    expect(out, "go run . OUT").toBeDefined();
    // The final stage copies that file and points FALLBACK_ENVOY_API at its copy.
    const copy = finalStage
      .filter((i) => i.keyword === "COPY")
      .map((i) => splitArgs(i.args))
      .find((c) => c.flags.from === ENVOY_API_STAGE);
    expect(copy?.words, `COPY --from=${ENVOY_API_STAGE} in the final stage`).toEqual([out, expect.any(String)]);
    const workdir = finalStage.filter((i) => i.keyword === "WORKDIR").at(-1)?.args ?? "/";
    const env = finalStage
      .filter((i) => i.keyword === "ENV")
      .map((i) => /^FALLBACK_ENVOY_API=(\S+)$/.exec(i.args)?.[1])
      .find(Boolean);
    expect(env, "ENV FALLBACK_ENVOY_API=... in the final stage").toBeDefined();
    expect(posix.resolve(workdir, copy!.words[1]!)).toBe(env);
  });

  it("installs production dependencies only, from the lockfile", () => {
    const runs = dockerfile.filter((i) => i.keyword === "RUN").map((i) => i.args);
    expect(runs.some((r) => /\bnpm ci\b/.test(r) && /--omit=dev\b/.test(r))).toBe(true);
    expect(runs.some((r) => /\bnpm (install|i)\b/.test(r))).toBe(false);
  });

  const copies = dockerfile.filter((i) => i.keyword === "COPY" || i.keyword === "ADD").map((i) => splitArgs(i.args));
  const fromContext = copies.filter((c) => c.flags.from === undefined);

  it("copies only sources that exist in the repository and are not excluded by .dockerignore", () => {
    expect(fromContext.length).toBeGreaterThan(0);
    for (const copy of fromContext) {
      const sources = copy.words.slice(0, -1);
      expect(sources.length).toBeGreaterThan(0);
      for (const source of sources) {
        expect(source, "no globs or URLs in COPY").not.toMatch(/[*?[]|:\/\//);
        expect(existsSync(join(repoRoot, source)), `${source} exists`).toBe(true);
        expect(dockerignored(source, ignorePatterns), `${source} is not in .dockerignore`).toBe(false);
      }
    }
  });

  it("copies from earlier stages only", () => {
    const names = stages.map((s) => s.name).filter(Boolean);
    for (const copy of copies.filter((c) => c.flags.from !== undefined)) expect(names).toContain(copy.flags.from);
  });

  it("copies package.json (type: module) and the operator sources into the final image", () => {
    const finalSources = finalStage
      .filter((i) => i.keyword === "COPY")
      .map((i) => splitArgs(i.args))
      .filter((c) => c.flags.from === undefined)
      .flatMap((c) => c.words.slice(0, -1).map((w) => w.replace(/\/$/, "")));
    expect(finalSources).toContain("package.json");
    expect(finalSources).toContain("operator");
    expect((JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as { type?: string }).type).toBe("module");
  });

  it("runs as a numeric non-root user", () => {
    const users = finalStage.filter((i) => i.keyword === "USER");
    expect(users.length).toBeGreaterThan(0);
    const user = users.at(-1)!.args.trim();
    expect(user).toMatch(/^\d+(:\d+)?$/);
    for (const id of user.split(":")) expect(Number(id)).toBeGreaterThan(0);
  });

  it("starts node on operator/bin/fallback-operator.ts, which exists and is shipped", () => {
    const starts = finalStage.filter((i) => i.keyword === "ENTRYPOINT" || i.keyword === "CMD");
    expect(starts.length).toBeGreaterThan(0);
    const command = starts.flatMap((i) => {
      expect(i.args.startsWith("["), `${i.keyword} uses the exec form (node gets the signals)`).toBe(true);
      return JSON.parse(i.args) as string[];
    });
    expect(command[0]).toBe("node");
    const entry = command.find((w) => w.endsWith(".ts") || w.endsWith(".js"));
    expect(entry).toBe("operator/bin/fallback-operator.ts");
    // No Node.js flags: the bin sets its own (operator/bin/node-flags.ts), so tests, benchmarks
    // and the image cannot drift apart.
    expect(command.slice(1, command.indexOf(entry!))).toEqual([]);
    // The operator is written by others; this fails until operator/bin/fallback-operator.ts exists.
    expect(existsSync(join(repoRoot, entry!)) && statSync(join(repoRoot, entry!)).isFile(), `${entry} exists`).toBe(
      true,
    );
    expect(dockerignored(entry!, ignorePatterns), `${entry} is not in .dockerignore`).toBe(false);
  });

  it("keeps local state, tests and secrets out of the build context", () => {
    for (const path of [
      ".local/bin/helm",
      "node_modules/yaml/package.json",
      ".git/HEAD",
      "test/unit/chart/helm.ts",
      ".env",
      "operator/src/api/schema.test.ts",
    ]) {
      expect(dockerignored(path, ignorePatterns), path).toBe(true);
    }
    for (const path of ["package.json", "package-lock.json", "operator/src/api/schema.ts"]) {
      expect(dockerignored(path, ignorePatterns), path).toBe(false);
    }
  });

  it("ships every package the operator imports: production dependencies only (npm ci --omit=dev)", () => {
    const pkg = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as {
      dependencies?: Record<string, string>;
    };
    const production = new Set(Object.keys(pkg.dependencies ?? {}));
    const sources = (readdirSync(join(repoRoot, "operator"), { recursive: true }) as string[]).filter(
      (f) => f.endsWith(".ts") && !f.endsWith(".test.ts"),
    );
    expect(sources.length).toBeGreaterThan(0);
    const missing: string[] = [];
    for (const file of sources) {
      const text = readFileSync(join(repoRoot, "operator", file), "utf8");
      for (const m of text.matchAll(
        /^\s*(?:import|export)\s[^;]*?from\s+["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/gm,
      )) {
        const spec = (m[1] ?? m[2])!;
        if (spec.startsWith(".") || spec.startsWith("node:")) continue;
        const name = spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : spec.split("/")[0]!;
        if (!production.has(name)) missing.push(`${file}: ${spec}`);
      }
    }
    expect(missing, "imported by operator/ but not in package.json dependencies").toEqual([]);
  });
});
