// The environment a worker is forked with. node:cluster starts a worker with the primary's whole
// environment, which may hold the routes' credentials (BEARER_SIDECAR_CLIENT_SECRET, a ${VAR} of
// the config file, a proxy URL with a password). A worker needs none of them: its config comes
// from the primary over IPC, already resolved (messages.ts). So it gets only what Node, the C
// library and the system read (an allowlist); every other variable is removed, and
// /proc/<pid>/environ of a worker holds no secret.

/**
 * Variables a worker keeps: Node's own (NODE_OPTIONS, NODE_EXTRA_CA_CERTS, ...), glibc's malloc
 * tuning (MALLOC_ARENA_MAX, MALLOC_MMAP_THRESHOLD_, GLIBC_TUNABLES: the image and the bin's shebang
 * set them, and a worker must allocate as the primary does), OpenSSL's CA settings, locale, time
 * zone, paths; the trace exporter's TLS files, timeout and compression (its headers, which may hold
 * a collector's key, come with the config: config/tracing.ts).
 */
const kept = /^(NODE_.*|OTEL_EXPORTER_OTLP_(TRACES_)?(CERTIFICATE|CLIENT_CERTIFICATE|CLIENT_KEY|TIMEOUT|COMPRESSION)|UV_THREADPOOL_SIZE|MALLOC_.*|GLIBC_TUNABLES|SSL_CERT_FILE|SSL_CERT_DIR|OPENSSL_CONF|OPENSSL_MODULES|PATH|HOME|USER|LOGNAME|LANG|LANGUAGE|LC_.*|TZ|TMPDIR|TEMP|TMP|SystemRoot|windir)$/;
/** Not Node's, though named like it: npm's registry credential (NODE_AUTH_TOKEN) and the like. */
const credentialLike = /TOKEN|SECRET|PASSW|CREDENTIAL|AUTH/i;

/** Whether a worker is forked with this variable of the primary's environment. */
export function keptForWorkers(name: string): boolean {
  return kept.test(name) && !credentialLike.test(name);
}

/**
 * The argument for cluster.fork(): `extra`, and every other variable of `env` set to undefined,
 * which child_process leaves out of the child's environment.
 */
export function workerEnvironment(env: NodeJS.ProcessEnv, extra: Record<string, string>): Record<string, string | undefined> {
  const result: Record<string, string | undefined> = {};
  for (const name of Object.keys(env)) if (!keptForWorkers(name)) result[name] = undefined;
  return { ...result, ...extra };
}
