#!/usr/bin/env node
// flowswitch-image: builds the signed firmware image dist/flowswitch-<version>.img from what
// `npm run build` made (docs/image-format.md). `npm run image` builds first, then runs this.
//
// The payload is the whole appliance in a few files, so that a box needs only Node and its native
// addons to run it:
//   main.js                   the host (build/host/main.js and everything it imports, bundled by
//                             esbuild into one ESM file)
//   <name>-worker.js          each worker thread's entry (packet engine, HA heartbeats), bundled
//                             the same way
//   dataplane.wasm            the data plane
//   package.json              name, version, "type": "module"
//   board/sim/demo-config.json  the default configuration (--default-config replaces it)
//   mib/FLOWSWITCH-MIB.txt    the appliance's MIB, for the operator's SNMP tools
//   build-info.json           version, build time, git commit, Node and esbuild versions
//
// Native addons (cap, serialport, cbor-extract) stay outside the bundle: they are built for one
// platform and belong to the base system; the boot step gives the unpacked image its
// node_modules. Code that finds a file next to itself with `new URL("./x.js", import.meta.url)`
// (workers, the wasm, package.json) is rewritten at bundle time to the file's place in the image,
// and an unknown such reference fails the build instead of failing on the box.
//
// Signing: --key FILE or $FLOWSWITCH_SIGNING_KEY (an Ed25519 PEM private key); otherwise the
// development key .keys/dev-signing.pem, made on first use, and the image is marked dev-signed.
// Exit codes: 0 built, 1 build failure, 2 usage.
import { parseArgs } from "node:util";
import { execFileSync } from "node:child_process";
import { createPublicKey } from "node:crypto";
import { realpathSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { build, version as esbuildVersion, type Plugin } from "esbuild";
import { buildImage, parseImage, BOARD_BITS, type BoardKind, type ImageFile } from "../host/image/format.js";
import { ensureDevKey, loadSigningKey, publicKeyFromPem } from "../host/image/keys.js";
import { FLASH_LAYOUT } from "../board/flash.js";

const USAGE = `usage: flowswitch-image [--key FILE] [--version V] [--board sim,linux] [--default-config FILE]
                        [--out FILE] [--json]

Builds dist/flowswitch-<version>.img from build/ (run \`npm run build\` first; \`npm run image\` does).
  --key FILE             Ed25519 private key (PEM) to sign with; default $FLOWSWITCH_SIGNING_KEY,
                         else the development key .keys/dev-signing.pem (made if missing; the image
                         is then marked as development-signed)
  --version V            image version (default: package.json's)
  --board LIST           boards the image runs on (default: sim,linux)
  --default-config FILE  the factory configuration it carries (default: board/sim/demo-config.json)
  --out FILE             where to write it (default: dist/flowswitch-<version>.img)
  --json                 print a JSON summary instead of text`;

class UsageError extends Error {}

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const BUILD = join(ROOT, "build");
/** Addons compiled for one platform: the base system provides them (docs/image-format.md). */
const EXTERNAL = ["cap", "serialport", "@serialport/*", "cbor-extract"];

export interface BuiltImage {
  path: string;
  version: string;
  bytes: number;
  files: { name: string; bytes: number }[];
  keyFingerprint: string;
  devSigned: boolean;
  devKeyCreated: boolean;
  boards: BoardKind[];
  buildMs: number;
}

/**
 * Rewrites `new URL("rel", import.meta.url)` in build/ output to the file's place in the image:
 * worker entries become entries of their own (collected in `entries`), known assets keep their name.
 */
function assetUrls(entries: Map<string, string>): Plugin {
  const assets = new Map<string, string>([
    [join(BUILD, "dataplane.wasm"), "dataplane.wasm"],
    [join(ROOT, "package.json"), "package.json"],
  ]);
  const re = /new URL\(\s*(["'`])([^"'`]+)\1\s*,\s*import\.meta\.url\s*\)/g;
  return {
    name: "flowswitch-asset-urls",
    setup(b) {
      b.onLoad({ filter: /\.js$/ }, async (args) => {
        if (!args.path.startsWith(BUILD + sep)) return undefined;
        const text = await readFile(args.path, "utf8");
        if (!text.includes("import.meta.url")) return undefined;
        const problems: string[] = [];
        const contents = text.replace(re, (whole, _q: string, rel: string) => {
          const target = resolve(dirname(args.path), rel);
          let name = assets.get(target);
          if (!name && target.endsWith(".js") && target.startsWith(join(BUILD, "host") + sep)) {
            name = relative(join(BUILD, "host"), target).split(sep).join("-");
            if (!name.endsWith("worker.js")) name = name.replace(/\.js$/, "-entry.js");
            entries.set(target, name);
          }
          if (!name) {
            problems.push(`${relative(ROOT, args.path)}: ${whole} names ${relative(ROOT, target)}, which the image does not carry`);
            return whole;
          }
          return `new URL(${JSON.stringify(`./${name}`)}, import.meta.url)`;
        });
        if (problems.length) return { errors: problems.map((text) => ({ text })) };
        return { contents, loader: "js" };
      });
    },
  };
}

/** The bundled host: main.js and every worker entry it references. */
async function bundleHost(): Promise<ImageFile[]> {
  const entries = new Map<string, string>([[join(BUILD, "host/main.js"), "main.js"]]);
  for (let round = 0; round < 8; round++) {
    const known = entries.size;
    const result = await build({
      entryPoints: [...entries].map(([input, name]) => ({ in: input, out: name.replace(/\.js$/, "") })),
      outdir: join(ROOT, "dist/.bundle"), // names only: nothing is written
      write: false,
      bundle: true,
      platform: "node",
      format: "esm",
      target: "node20",
      external: EXTERNAL,
      minifyWhitespace: true,
      minifySyntax: true,
      keepNames: true,
      legalComments: "none",
      logLevel: "silent",
      // CommonJS dependencies call require() and read __dirname: give an ES module both
      banner: {
        js: [
          'import { createRequire as __fswCreateRequire } from "node:module";',
          'import { fileURLToPath as __fswFileURLToPath } from "node:url";',
          'import { dirname as __fswDirname } from "node:path";',
          "const require = __fswCreateRequire(import.meta.url);",
          "const __fsw_filename = __fswFileURLToPath(import.meta.url);",
          "const __fsw_dirname = __fswDirname(__fsw_filename);",
        ].join(""),
      },
      define: { __filename: "__fsw_filename", __dirname: "__fsw_dirname" },
      plugins: [assetUrls(entries)],
    });
    if (entries.size === known) {
      return result.outputFiles.map((f) => ({ name: relative(join(ROOT, "dist/.bundle"), f.path).split(sep).join("/"), data: f.contents }));
    }
  }
  throw new Error("worker entries keep appearing: a cycle of new URL() references?");
}

function gitCommit(): string | undefined {
  try {
    const commit = execFileSync("git", ["-C", ROOT, "rev-parse", "HEAD"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"], timeout: 5000 }).trim();
    const dirty = execFileSync("git", ["-C", ROOT, "status", "--porcelain", "--untracked-files=no"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"], timeout: 5000 }).trim() !== "";
    return dirty ? `${commit}-dirty` : commit;
  } catch {
    return undefined;
  }
}

async function readOrFail(path: string, what: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await readFile(path));
  } catch (e) {
    throw new Error(`${what} ${relative(ROOT, path) || path}: ${(e as Error).message}`);
  }
}

export async function buildFirmwareImage(o: { key?: string; version?: string; boards?: BoardKind[]; defaultConfig?: string; out?: string }): Promise<BuiltImage> {
  const started = Date.now();
  const pkg = JSON.parse(await readFile(join(ROOT, "package.json"), "utf8")) as { name: string; version: string };
  const version = o.version ?? pkg.version;
  const boards = o.boards ?? (Object.keys(BOARD_BITS) as BoardKind[]);

  let keyPath = o.key ?? process.env.FLOWSWITCH_SIGNING_KEY;
  let devKeyCreated = false;
  let devSigned = false;
  const dev = await (keyPath ? undefined : ensureDevKey(ROOT));
  if (dev) {
    keyPath = dev.path;
    devKeyCreated = dev.created;
    devSigned = true;
  } else if (resolve(keyPath!) === resolve(ROOT, ".keys/dev-signing.pem")) {
    devSigned = true;
  }
  const key = await loadSigningKey(keyPath!);

  await readOrFail(join(BUILD, "host/main.js"), "the built host (run `npm run build` first):");
  const host = await bundleHost();
  const configPath = o.defaultConfig ?? join(ROOT, "board/sim/demo-config.json");
  const buildTime = Date.now();
  const files: ImageFile[] = [
    ...host,
    { name: "dataplane.wasm", data: await readOrFail(join(BUILD, "dataplane.wasm"), "the data plane (run `npm run build` first):") },
    { name: "package.json", data: new TextEncoder().encode(`${JSON.stringify({ name: pkg.name, version, private: true, type: "module" }, null, 2)}\n`) },
    { name: "board/sim/demo-config.json", data: await readOrFail(configPath, "default configuration") },
    { name: "mib/FLOWSWITCH-MIB.txt", data: await readOrFail(join(ROOT, "mib/FLOWSWITCH-MIB.txt"), "MIB") },
    {
      name: "build-info.json",
      data: new TextEncoder().encode(`${JSON.stringify({ version, buildTime: new Date(buildTime).toISOString(), commit: gitCommit(), node: process.version, esbuild: esbuildVersion, devSigned, key: key.fingerprint }, null, 2)}\n`),
    },
  ];
  const image = buildImage({ version, buildTime, boards, devSigned, files }, key);

  // what the box will do with it: refuse to build what would be refused
  const self = publicKeyFromPem(createPublicKey(key.privateKey).export({ format: "pem", type: "spki" }) as string, keyPath!);
  const check = parseImage(image, [self], boards[0]!, { maxSize: FLASH_LAYOUT.slotA.size });
  if (!check.ok) throw new Error(`the built image does not verify: ${check.reason}`);

  const out = o.out ?? join(ROOT, "dist", `flowswitch-${version}.img`);
  await mkdir(dirname(out), { recursive: true });
  await writeFile(out, image);
  return {
    path: out,
    version,
    bytes: image.length,
    files: files.map((f) => ({ name: f.name, bytes: f.data.length })),
    keyFingerprint: key.fingerprint,
    devSigned,
    devKeyCreated,
    boards,
    buildMs: Date.now() - started,
  };
}

function parseBoards(text: string): BoardKind[] {
  const boards = text.split(",").map((b) => b.trim()).filter(Boolean);
  for (const b of boards) if (!(b in BOARD_BITS)) throw new UsageError(`--board ${b}: expected ${Object.keys(BOARD_BITS).join(" or ")}`);
  if (!boards.length) throw new UsageError("--board: name at least one board");
  return [...new Set(boards)] as BoardKind[];
}

async function main(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        key: { type: "string" },
        version: { type: "string" },
        board: { type: "string" },
        "default-config": { type: "string" },
        out: { type: "string" },
        json: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (e) {
    process.stderr.write(`flowswitch-image: ${(e as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  let built: BuiltImage;
  try {
    built = await buildFirmwareImage({
      key: values.key,
      version: values.version,
      boards: values.board ? parseBoards(values.board) : undefined,
      defaultConfig: values["default-config"] ? resolve(values["default-config"]) : undefined,
      out: values.out ? resolve(values.out) : undefined,
    });
  } catch (e) {
    process.stderr.write(`flowswitch-image: ${(e as Error).message}\n`);
    if (e instanceof UsageError) process.stderr.write(`${USAGE}\n`);
    return e instanceof UsageError ? 2 : 1;
  }
  if (values.json) {
    process.stdout.write(`${JSON.stringify(built)}\n`);
    return 0;
  }
  const rel = relative(process.cwd(), built.path) || built.path;
  const lines = [
    `flowswitch-image: ${rel}: version ${built.version}, ${(built.bytes / 1024 / 1024).toFixed(2)} MiB, boards ${built.boards.join(",")}, built in ${built.buildMs} ms`,
    ...built.files.map((f) => `  ${f.name.padEnd(28)} ${String(f.bytes).padStart(10)} bytes`),
    `  signed by ${built.keyFingerprint}${built.devSigned ? " (DEVELOPMENT key: trusted by the simulated board only)" : ""}`,
  ];
  if (built.devKeyCreated) lines.push("  made the development key .keys/dev-signing.pem (+ .pub): git-ignored, for this checkout only");
  process.stdout.write(`${lines.join("\n")}\n`);
  return 0;
}

if (process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then(
    (code) => (process.exitCode = code),
    (e: unknown) => {
      process.stderr.write(`flowswitch-image: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
