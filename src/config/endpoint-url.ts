// The one rule for URLs the sidecar sends client credentials to or takes them from: a token URL, an
// issuer (whose document names the token endpoint) and a token_endpoint read from that document.
// Used by load.ts at start-up and by discovery at run time, so all three are held to the same rule.

export function isLoopback(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || /^127(\.\d{1,3}){3}$/.test(host);
}

/**
 * Why `url` must not carry client credentials, or undefined when it may: no user or password in it
 * (they would be printed by `check` and logged), and https:// unless the host is loopback or
 * `allowInsecure` (allowInsecureTokenUrl) says plain http:// is wanted.
 */
export function credentialUrlProblem(url: URL, allowInsecure: boolean, risk = 'would send the client secret in clear text'): string | undefined {
  if (url.username || url.password) return 'must not carry credentials (use clientId and clientSecret)';
  if (url.protocol === 'http:' && !isLoopback(url.hostname) && !allowInsecure) {
    return `http:// ${risk}; use https:// or set allowInsecureTokenUrl: true`;
  }
  return undefined;
}
