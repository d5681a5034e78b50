// Every manifest under deploy/kubernetes/, parsed as YAML and checked against the sidecar config
// it ships (loaded by the real config loader), the Dockerfile and the rules.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { after, test } from 'node:test';
import { parse } from 'yaml';
import { loadConfig, type SidecarConfig } from '../../src/config/index.js';
import { at, filesUnder, finalStage, isObject, last, list, obj, parseDockerfile, read, readYaml, readYamlDocuments, root, str, type Yaml } from './files.js';

const dir = 'deploy/kubernetes';
const top = readYaml(`${dir}/kustomization.yaml`);
const base = readYaml(`${dir}/base/kustomization.yaml`);
const classic = readYaml(`${dir}/classic/kustomization.yaml`);
const monitoring = readYaml(`${dir}/monitoring/kustomization.yaml`);
const deployment = readYaml(`${dir}/base/deployment.yaml`);
const pod = obj(deployment, 'spec', 'template', 'spec');
const sidecar = findContainer(list(pod, 'initContainers'), 'bearer-sidecar');
const app = findContainer(list(pod, 'containers'), 'app');

const generator = list(base, 'configMapGenerator').map((g) => obj(g)).find((g) => g.name === 'bearer-sidecar-config');
const configFile = String(list(generator, 'files')[0]);
const configText = read(`${dir}/base/${configFile}`);
const rawConfig = obj(parse(configText));

// Load the shipped config with the real loader; the Secret's files are stood in for by temp files.
const temp = mkdtempSync(join(tmpdir(), 'bearer-sidecar-k8s-'));
after(() => rmSync(temp, { recursive: true, force: true }));
const secretFiles = [str(rawConfig, 'routes', 0, 'auth', 'clientIdFile'), str(rawConfig, 'routes', 0, 'auth', 'clientSecretFile')];
const secretDir = posix.dirname(secretFiles[0] ?? '');
writeFileSync(join(temp, 'client-id'), 'id\n');
writeFileSync(join(temp, 'client-secret'), 'secret\n');
writeFileSync(join(temp, 'sidecar.yaml'), configText.replaceAll(`${secretDir}/`, `${temp}/`));
const config: SidecarConfig = loadConfig(join(temp, 'sidecar.yaml'), {});

function findContainer(containers: unknown[], name: string): Yaml {
  const found = containers.find((c) => isObject(c) && c.name === name);
  assert.ok(isObject(found), `container ${name}`);
  return found;
}

function volume(name: string): Yaml {
  const found = list(pod, 'volumes').find((v) => isObject(v) && v.name === name);
  assert.ok(isObject(found), `volume ${name}`);
  return found;
}

function mounts(container: Yaml): Yaml[] {
  return list(container, 'volumeMounts').map((m) => obj(m));
}

/** A probe's port, with a named port resolved through the container's ports. */
function probePort(container: Yaml, probe: Yaml): number {
  const port = obj(probe, 'httpGet').port;
  if (typeof port === 'number') return port;
  const named = list(container, 'ports').map((p) => obj(p)).find((p) => p.name === port);
  assert.ok(named, `named port ${String(port)}`);
  return Number(named.containerPort);
}

test('kubernetes: every manifest parses as YAML and every kustomization points at files that exist', () => {
  const files = filesUnder(dir).filter((f) => /\.ya?ml$/.test(f));
  assert.ok(files.length >= 5);
  for (const file of files) {
    const docs = readYamlDocuments(file);
    assert.ok(docs.length > 0, `${file} has a document`);
    if (file.endsWith('/sidecar.yaml')) continue; // the sidecar's config, not a manifest
    for (const doc of docs) {
      assert.equal(typeof doc.apiVersion, 'string', `${file}: apiVersion`);
      assert.equal(typeof doc.kind, 'string', `${file}: kind`);
    }
  }
  for (const [path, k] of [[dir, top], [`${dir}/base`, base], [`${dir}/classic`, classic], [`${dir}/monitoring`, monitoring]] as const) {
    assert.equal(k.kind, 'Kustomization');
    for (const resource of list(k, 'resources').map(String)) {
      const target = join(root, path, resource);
      assert.ok(existsSync(target), `${path}: resource ${resource} exists`);
      if (!resource.endsWith('.yaml')) assert.ok(existsSync(join(target, 'kustomization.yaml')), `${resource} is a kustomization`);
    }
  }
  assert.deepEqual(list(top, 'resources'), ['base']);
  assert.deepEqual(list(classic, 'resources'), ['../base']);
  assert.deepEqual(list(base, 'resources'), ['deployment.yaml']);
  assert.deepEqual(list(monitoring, 'resources'), ['podmonitor.yaml', 'prometheusrule.yaml'], 'monitoring is applied on its own: its CRDs may not exist');
});

test("kubernetes: the PrometheusRule carries exactly the plain rule file's groups; the PodMonitor scrapes the admin port of the app's pods", () => {
  const rule = readYaml(`${dir}/monitoring/prometheusrule.yaml`);
  assert.equal(rule.apiVersion, 'monitoring.coreos.com/v1');
  assert.equal(rule.kind, 'PrometheusRule');
  const plain = readYaml('deploy/prometheus/bearer-sidecar.rules.yaml');
  assert.ok(list(plain, 'groups').length > 0);
  assert.deepEqual(obj(rule, 'spec').groups, plain.groups, 'the same groups: run node scripts/prometheus-rule.mjs after editing the rule file');

  const monitor = readYaml(`${dir}/monitoring/podmonitor.yaml`);
  assert.equal(monitor.kind, 'PodMonitor');
  assert.deepEqual(obj(monitor, 'spec', 'selector', 'matchLabels'), obj(deployment, 'spec', 'template', 'metadata', 'labels'), "it selects the app's pods");
  const endpoint = obj(list(monitor, 'spec', 'podMetricsEndpoints')[0]);
  assert.equal(endpoint.path, '/metrics');
  const port = list(sidecar, 'ports').map((p) => obj(p)).find((p) => p.name === endpoint.port);
  assert.equal(Number(port?.containerPort), config.admin.port, "the sidecar's admin port, by name");
});

test('kubernetes: bearer-sidecar is a native sidecar (init container with restartPolicy Always) of the kustomized image', () => {
  assert.equal(sidecar.restartPolicy, 'Always');
  assert.equal(app.restartPolicy, undefined);
  const image = obj(list(base, 'images')[0]);
  assert.equal(sidecar.image, image.name, 'kustomization images: rewrites the sidecar image');
  assert.match(String(image.newTag), /^\d+\.\d+\.\d+$/, 'a version tag, not latest');
  assert.equal(str(deployment, 'apiVersion'), 'apps/v1');
  assert.deepEqual(obj(deployment, 'spec', 'selector', 'matchLabels'), obj(deployment, 'spec', 'template', 'metadata', 'labels'));
});

test('kubernetes: config from the ConfigMap, mounted where --config reads it', () => {
  const args = list(sidecar, 'args').map(String);
  assert.equal(args[0], '--config');
  const path = args[1] ?? '';
  const mount = mounts(sidecar).find((m) => m.mountPath === posix.dirname(path));
  assert.ok(mount, `a volume is mounted at ${posix.dirname(path)}`);
  assert.equal(mount.subPath, undefined, 'no subPath, so ConfigMap updates arrive');
  assert.equal(mount.readOnly, true);
  assert.equal(str(volume(String(mount.name)), 'configMap', 'name'), 'bearer-sidecar-config', 'the generated ConfigMap');
  assert.equal(posix.basename(path), configFile, 'the file name is the generator\'s key');
});

test('kubernetes: the Secret is mounted as files exactly where the config reads clientIdFile and clientSecretFile', () => {
  const mount = mounts(sidecar).find((m) => m.mountPath === secretDir);
  assert.ok(mount, `a volume is mounted at ${secretDir}`);
  assert.equal(mount.subPath, undefined, 'no subPath, so a rotated Secret reaches the files');
  assert.equal(mount.readOnly, true);
  const secretVolume = obj(volume(String(mount.name)), 'secret');
  const items = list(secretVolume, 'items').map((i) => obj(i));
  const paths = items.map((i) => i.path);
  for (const file of secretFiles) assert.ok(paths.includes(posix.basename(file)), `the Secret provides ${file}`);
  assert.equal(secretVolume.defaultMode, 0o440, 'readable by the owner and the fsGroup only');
  assert.equal(obj(pod, 'securityContext').fsGroup, obj(pod, 'securityContext').runAsGroup, 'the sidecar\'s group owns the files');
  // The example Secret has the same name and keys, and no real credential.
  const example = readYaml(`${dir}/secret.example.yaml`);
  assert.equal(example.kind, 'Secret');
  assert.equal(str(example, 'metadata', 'name'), secretVolume.secretName);
  assert.deepEqual(Object.keys(obj(example, 'stringData')).sort(), items.map((i) => String(i.key)).sort());
  assert.ok(!list(top, 'resources').includes('secret.example.yaml'), 'credentials are never applied from the repository');
  // No credential in the config itself, and the loader reads both files.
  assert.doesNotMatch(configText, /clientSecret:|clientId:/);
  assert.equal(config.routes[0]?.auth.clientId?.read(), 'id');
  assert.equal(config.routes[0]?.auth.clientSecret?.read(), 'secret');
});

test('kubernetes: probes hit /livez and /readyz on the admin port, bound for the kubelet; the proxy stays on loopback', () => {
  assert.equal(config.admin.host, '0.0.0.0', 'the kubelet reaches the admin listener on the pod IP');
  assert.equal(config.listen.host, '127.0.0.1', 'only the pod\'s containers reach the proxy');
  const probes = { startupProbe: '/readyz', readinessProbe: '/readyz', livenessProbe: '/livez' } as const;
  for (const [name, path] of Object.entries(probes)) {
    const probe = obj(sidecar, name);
    assert.equal(str(probe, 'httpGet', 'path'), path, name);
    assert.equal(probePort(sidecar, probe), config.admin.port, `${name} on the admin port`);
  }
  const ports = list(sidecar, 'ports').map((p) => Number(obj(p).containerPort));
  assert.deepEqual(ports, [config.admin.port], 'only the admin port is declared; the proxy is not exposed');
  const apiUrl = list(app, 'env').map((e) => obj(e)).find((e) => e.name === 'API_BASE_URL');
  assert.equal(apiUrl?.value, `http://127.0.0.1:${config.listen.port}`, 'the app calls the sidecar on loopback');
  const grace = Number(pod.terminationGracePeriodSeconds ?? 30);
  assert.ok(grace * 1000 > config.drainTimeoutMs + 5_000, 'the pod waits longer than the sidecar drains');
});

test('kubernetes: securityContext (non-root as in the image, read-only root, no privilege escalation, no capabilities) and resources', () => {
  const podSecurity = obj(pod, 'securityContext');
  const user = last(finalStage(parseDockerfile(read('Dockerfile'))), 'USER')?.args ?? '';
  assert.equal(`${podSecurity.runAsUser}:${podSecurity.runAsGroup}`, user.includes(':') ? user : `${user}:${user}`, 'the image\'s USER');
  assert.equal(podSecurity.runAsNonRoot, true);
  assert.equal(str(podSecurity, 'seccompProfile', 'type'), 'RuntimeDefault');
  assert.equal(pod.automountServiceAccountToken, false);
  for (const container of [sidecar, app]) {
    const name = String(container.name);
    const security = obj(container, 'securityContext');
    assert.equal(security.runAsNonRoot, true, `${name}: runAsNonRoot`);
    assert.equal(security.readOnlyRootFilesystem, true, `${name}: readOnlyRootFilesystem`);
    assert.equal(security.allowPrivilegeEscalation, false, `${name}: allowPrivilegeEscalation`);
    assert.deepEqual(list(security, 'capabilities', 'drop'), ['ALL'], `${name}: drop ALL`);
    assert.equal(security.privileged, undefined);
    assert.equal(security.runAsUser ?? podSecurity.runAsUser, podSecurity.runAsUser);
    for (const kind of ['requests', 'limits']) {
      const resources = obj(container, 'resources', kind);
      assert.ok(resources.cpu && resources.memory, `${name}: ${kind} for cpu and memory`);
    }
  }
  // Every container of the pod is one of the two checked above.
  assert.equal(list(pod, 'initContainers').length + list(pod, 'containers').length, 2);
});

test('kubernetes: the classic overlay turns the native sidecar into an ordinary second container', () => {
  const patches = list(classic, 'patches').map((p) => obj(p));
  assert.equal(patches.length, 1);
  const patch = patches[0] as Yaml;
  assert.deepEqual(obj(patch, 'target'), { group: 'apps', version: 'v1', kind: 'Deployment', name: str(deployment, 'metadata', 'name') });
  const operations = list(parse(str(patch, 'patch'))).map((o) => obj(o));
  const patched = applyJsonPatch(structuredClone(deployment), operations);
  const spec = obj(patched, 'spec', 'template', 'spec');
  assert.equal(spec.initContainers, undefined, 'no init containers left');
  const containers = list(spec, 'containers').map((c) => obj(c));
  assert.deepEqual(containers.map((c) => c.name), ['app', 'bearer-sidecar']);
  const moved = containers[1] as Yaml;
  assert.equal(moved.restartPolicy, undefined, 'ordinary containers have no restartPolicy');
  assert.deepEqual({ ...moved, restartPolicy: 'Always' }, sidecar, 'everything else (probes, mounts, securityContext) unchanged');
});

test('kubernetes: the AKS workload identity overlay holds no Secret, labels the pod, names the annotated ServiceAccount, and its config works from the webhook\'s variables alone', () => {
  const overlayDir = `${dir}/aks-workload-identity`;
  const overlay = readYaml(`${overlayDir}/kustomization.yaml`);
  assert.deepEqual(list(overlay, 'resources'), ['../base', 'serviceaccount.yaml']);
  const account = readYaml(`${overlayDir}/serviceaccount.yaml`);
  assert.equal(account.kind, 'ServiceAccount');
  assert.match(str(account, 'metadata', 'annotations', 'azure.workload.identity/client-id'), /^[0-9a-f-]{36}$/);
  // The patched Deployment: the label the webhook looks for, the ServiceAccount, no Secret volume or mount.
  const patches = list(overlay, 'patches').map((p) => obj(p));
  assert.deepEqual(obj(patches[0], 'target'), { group: 'apps', version: 'v1', kind: 'Deployment', name: str(deployment, 'metadata', 'name') });
  const patched = applyJsonPatch(structuredClone(deployment), list(parse(str(patches[0], 'patch'))).map((o) => obj(o)));
  assert.equal(str(patched, 'spec', 'template', 'metadata', 'labels', 'azure.workload.identity/use'), 'true', 'a string, as labels are');
  const spec = obj(patched, 'spec', 'template', 'spec');
  assert.equal(spec.serviceAccountName, str(account, 'metadata', 'name'));
  assert.ok(!list(spec, 'volumes').some((v) => isObject(v) && 'secret' in v), 'no Secret volume');
  const patchedSidecar = findContainer(list(spec, 'initContainers'), 'bearer-sidecar');
  assert.deepEqual(mounts(patchedSidecar).map((m) => m.name), ['config'], 'only the config is mounted; the webhook adds the token');
  // The config: the ConfigMap replaced by the overlay's, loaded with only the webhook's variables.
  const generator = obj(list(overlay, 'configMapGenerator')[0]);
  assert.deepEqual([generator.name, generator.behavior, list(generator, 'files')], ['bearer-sidecar-config', 'replace', ['sidecar.yaml']]);
  const text = read(`${overlayDir}/sidecar.yaml`);
  assert.doesNotMatch(text, /clientSecret|clientId|privateKey/);
  const tokenFile = join(temp, 'azure-identity-token');
  writeFileSync(tokenFile, 'a.b.c\n');
  writeFileSync(join(temp, 'aks.yaml'), text);
  const aks = loadConfig(join(temp, 'aks.yaml'), { AZURE_CLIENT_ID: '11111111-1111-1111-1111-111111111111', AZURE_TENANT_ID: '22222222-2222-2222-2222-222222222222', AZURE_FEDERATED_TOKEN_FILE: tokenFile, AZURE_AUTHORITY_HOST: 'https://login.microsoftonline.com/' });
  const auth = aks.routes[0]?.auth;
  assert.equal(auth?.method, 'client_assertion');
  assert.equal(auth?.tokenUrl, 'https://login.microsoftonline.com/22222222-2222-2222-2222-222222222222/oauth2/v2.0/token');
  assert.equal(auth?.clientAssertion?.file, tokenFile);
  assert.equal(aks.listen.host, config.listen.host);
  assert.equal(aks.admin.port, config.admin.port, 'the probes of the base still fit');
});

test('kubernetes: the shared-cache overlay runs replicas sharing a password-protected Valkey; the sidecar reads its URL and key from the mounted Secret', () => {
  const overlayDir = `${dir}/shared-cache`;
  const overlay = readYaml(`${overlayDir}/kustomization.yaml`);
  assert.deepEqual(list(overlay, 'resources'), ['../base', 'valkey.yaml']);
  const generatorOf = obj(list(overlay, 'configMapGenerator')[0]);
  assert.equal(generatorOf.name, 'bearer-sidecar-config');
  assert.equal(generatorOf.behavior, 'replace');
  assert.deepEqual(list(generatorOf, 'files'), [configFile], 'the same file name, so --config reads it');
  // The overlay's config, loaded by the real loader with the Secrets' files stood in for.
  const text = read(`${overlayDir}/${configFile}`);
  const cacheDir = '/secrets/token-cache';
  writeFileSync(join(temp, 'url'), 'redis://:example-password@token-cache:6379/0\n');
  writeFileSync(join(temp, 'encryption-key'), `${Buffer.alloc(32, 1).toString('base64')}\n`);
  writeFileSync(join(temp, 'shared-cache.yaml'), text.replaceAll(`${secretDir}/`, `${temp}/`).replaceAll(`${cacheDir}/`, `${temp}/`));
  const cached = loadConfig(join(temp, 'shared-cache.yaml'), {});
  assert.equal(cached.tokenCache?.url.file, join(temp, 'url'));
  assert.deepEqual({ ...cached, tokenCache: undefined }, { ...config, tokenCache: undefined }, 'the base config otherwise');
  // The patch mounts the Secret where the config reads it, and scales the Deployment.
  const operations = list(parse(str(obj(list(overlay, 'patches')[0]), 'patch'))).map((o) => obj(o));
  const patched = applyJsonPatch(structuredClone(deployment), operations);
  assert.ok(Number(obj(patched, 'spec').replicas) > 1);
  const patchedSidecar = findContainer(list(obj(patched, 'spec', 'template', 'spec'), 'initContainers'), 'bearer-sidecar');
  const mount = mounts(patchedSidecar).find((m) => m.mountPath === cacheDir);
  assert.ok(mount && mount.readOnly === true && mount.subPath === undefined, `the token-cache Secret is mounted at ${cacheDir}`);
  const secretVolume = obj(list(obj(patched, 'spec', 'template', 'spec'), 'volumes').find((v) => isObject(v) && v.name === mount.name), 'secret');
  assert.deepEqual(list(secretVolume, 'items').map((i) => str(i, 'path')).sort(), ['encryption-key', 'url']);
  const example = readYaml(`${overlayDir}/secret.example.yaml`);
  assert.equal(str(example, 'metadata', 'name'), secretVolume.secretName);
  assert.ok(!list(overlay, 'resources').includes('secret.example.yaml'));
  // The cache: a Service on the URL's port, a password from the same Secret, the app's pods only.
  const [cache, service, policy] = readYamlDocuments(`${overlayDir}/valkey.yaml`) as [Yaml, Yaml, Yaml];
  assert.equal(str(service, 'kind'), 'Service');
  assert.equal(str(service, 'metadata', 'name'), 'token-cache');
  assert.equal(at(service, 'spec', 'ports', 0, 'port'), 6379);
  const valkey = obj(list(obj(cache, 'spec', 'template', 'spec'), 'containers')[0]);
  assert.deepEqual(list(valkey, 'args').slice(0, 2), ['--requirepass', '$(VALKEY_PASSWORD)']);
  assert.equal(str(valkey, 'env', 0, 'valueFrom', 'secretKeyRef', 'name'), secretVolume.secretName);
  assert.equal(str(policy, 'kind'), 'NetworkPolicy');
  assert.deepEqual(obj(policy, 'spec', 'ingress', 0, 'from', 0, 'podSelector', 'matchLabels'), obj(deployment, 'spec', 'template', 'metadata', 'labels'));
});

/** RFC 6902 add, remove, replace and move: enough for the overlays' patches. */
function applyJsonPatch(document: Yaml, operations: Yaml[]): Yaml {
  const locate = (path: string): { parent: unknown; key: string } => {
    const parts = path.split('/').slice(1).map((p) => p.replaceAll('~1', '/').replaceAll('~0', '~'));
    const key = parts.pop() as string;
    let parent: unknown = document;
    for (const part of parts) parent = Array.isArray(parent) ? parent[Number(part)] : (parent as Yaml)[part];
    assert.ok(parent !== undefined && parent !== null, `JSON patch path ${path} exists`);
    return { parent, key };
  };
  const remove = (path: string): unknown => {
    const { parent, key } = locate(path);
    if (Array.isArray(parent)) {
      assert.ok(Number(key) < parent.length, `JSON patch: ${path} exists`);
      return parent.splice(Number(key), 1)[0];
    }
    assert.ok(key in (parent as Yaml), `JSON patch: ${path} exists`);
    const value = (parent as Yaml)[key];
    delete (parent as Yaml)[key];
    return value;
  };
  const add = (path: string, value: unknown): void => {
    const { parent, key } = locate(path);
    if (Array.isArray(parent)) parent.splice(key === '-' ? parent.length : Number(key), 0, value);
    else (parent as Yaml)[key] = value;
  };
  for (const op of operations) {
    const path = str(op, 'path');
    if (op.op === 'remove') remove(path);
    else if (op.op === 'add') add(path, op.value);
    else if (op.op === 'replace') {
      remove(path);
      add(path, op.value);
    } else if (op.op === 'move') add(path, remove(str(op, 'from')));
    else assert.fail(`unsupported JSON patch op ${String(op.op)}`);
  }
  return document;
}
