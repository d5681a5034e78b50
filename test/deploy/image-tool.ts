// The real image for the tests (image-build.test.ts): ../shared/tools/image builds the unchanged
// Dockerfile with podman. One build per tree: the tag is keyed by the content of the build context
// (the files .dockerignore lets in), the Dockerfile and the tool, and the build runs under a lock
// (/var/tmp/bearer-sidecar-image-test.lock), so the suite's second runtime, a rerun, or another
// checkout of the same tree on this machine reuses the image. scripts/run-tests.mjs runs this file
// once before the test runtimes (`node --import tsx test/deploy/image-tool.ts`): a first build (with
// the base's debootstrap, 2-4 minutes) would not fit in the runner's 120 s per file.

import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { dockerignore, read, root } from './files.js';

export const imageTool = process.env.BEARER_SIDECAR_IMAGE_TOOL ?? join(root, '..', 'shared', 'tools', 'image');
const repository = 'localhost/bearer-sidecar-test';
const lockFile = '/var/tmp/bearer-sidecar-image-test.lock';

/** What this machine lacks to build and run the image, or undefined. */
export function missingForImage(): string | undefined {
  if (process.platform !== 'linux') return 'not Linux';
  if (process.getuid?.() !== 0) return 'not root (the image tool needs root)';
  if (!existsSync(imageTool)) return `no image tool at ${imageTool}`;
  const path = (process.env.PATH ?? '').split(':');
  const tools = ['podman', 'buildah', 'debootstrap', 'unshare', 'chroot', 'flock'].filter((t) => !path.some((dir) => existsSync(join(dir, t))));
  return tools.length ? `${tools.join(', ')} not installed (apt-get install -y podman buildah debootstrap)` : undefined;
}

/** The tag of this tree's image: a hash of the build context as podman gets it, the Dockerfile and the tool. */
export function imageTag(): string {
  const ignoreText = read('.dockerignore');
  const ignored = dockerignore(ignoreText);
  // Directories an exception (!path) reaches into are walked even when a rule excludes them.
  const reincluded = ignoreText.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('!')).map((l) => l.slice(1).replace(/^\/+|\/+$/g, ''));
  const hash = createHash('sha256');
  const walk = (dir: string): void => {
    for (const entry of readdirSync(join(root, dir), { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const path = dir ? `${dir}/${entry.name}` : entry.name;
      if (entry.isDirectory()) {
        if (!ignored(path) || reincluded.some((p) => p.startsWith(`${path}/`))) walk(path);
      } else if (entry.isFile() && !ignored(path)) {
        hash.update(`${path}\0`).update(readFileSync(join(root, path))).update('\0');
      }
    }
  };
  walk('');
  for (const [name, text] of [['Dockerfile', read('Dockerfile')], ['.dockerignore', ignoreText], ['tool', readFileSync(imageTool, 'utf8')]]) hash.update(`${name}\0${text}\0`);
  return `${repository}:${hash.digest('hex').slice(0, 16)}`;
}

/** Builds this tree's image unless it is there; resolves with its tag, whether it was built, and the build's output. */
export async function ensureImage(timeoutMs = 15 * 60_000): Promise<{ tag: string; built: boolean; seconds: number; code: number | string; output: string }> {
  const tag = imageTag();
  // BUILDAH_FORMAT=docker keeps the HEALTHCHECK (an OCI image config has none).
  // After a build, under the same lock: the 3 newest test images stay (other checkouts of other
  // trees on this machine may be about to run theirs), older ones go (~400 MB each), and so do
  // untagged build stages over 6 hours old (newer ones are the next build's cache).
  const prune = `podman images --sort created --format '{{.Repository}}:{{.Tag}}' ${repository} | tail -n +4 | xargs -r podman rmi >/dev/null 2>&1; podman image prune -f --filter until=6h >/dev/null 2>&1`;
  const script = `podman image exists "$1" && exit 0; echo "building $1" >&2; BUILDAH_FORMAT=docker "$2" build "$3" "$1" 2>&1 || exit $?; ${prune}; exit 0`;
  const t0 = Date.now();
  const child = spawn('flock', [lockFile, 'sh', '-c', script, 'sh', tag, imageTool, root], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const code = await new Promise<number | string>((resolve) => child.on('exit', (c, signal) => resolve(c ?? signal ?? -1)));
  clearTimeout(timer);
  return { tag, built: /^building /m.test(stderr), seconds: (Date.now() - t0) / 1000, code, output: `${stderr}${output}` };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const why = missingForImage();
  if (why) {
    process.stdout.write(`# image: not built here (${why})\n`);
  } else {
    process.stdout.write(`# image: ${imageTag()}, built once for every test runtime (test/deploy/image-tool.ts)\n`);
    const r = await ensureImage();
    if (r.code !== 0) process.stdout.write(`# image: the build failed (${r.code}); image-build.test.ts reports it\n${r.output.slice(-3000)}\n`);
    else process.stdout.write(`# image: ${r.built ? `built in ${Math.round(r.seconds)} s` : 'already built'}\n`);
  }
}
