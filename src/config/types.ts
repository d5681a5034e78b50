// The validated, resolved configuration that the rest of the program trusts. Built once by
// load.ts and frozen; nothing downstream re-validates or mutates it.

import type { OutboundProxySettings } from './outbound-proxy.js';
import type { Cidr } from './cidr.js';
import type { SigningAlgorithm } from './signing-algorithms.js';
import type { AuthMethod, GrantType, PresetName } from './presets.js';
import type { SecretSource } from './secret.js';
import type { tracingProtocols, tracingSamplers } from './tracing-names.js';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface RetryConfig {
  readonly retries: number;
  readonly minDelayMs: number;
  readonly maxDelayMs: number;
  readonly maxTimeMs: number;
}

export interface TlsConfig {
  /** PEM text of the extra CA bundle (read from caFile at start), trusted besides Node's bundled CAs. */
  readonly ca: string | undefined;
  readonly caFile: string | undefined;
  readonly rejectUnauthorized: boolean;
  /** A client certificate presented to the remote (mutual TLS); its files are read again when they change. */
  readonly clientCertificate?: ClientCertificateConfig | undefined;
}

export interface ClientCertificateConfig {
  /** certFile: the PEM certificate, with its chain. */
  readonly cert: SecretSource;
  /** keyFile: its PEM private key. */
  readonly key: SecretSource;
  /** keyPassphraseFile, for an encrypted key. */
  readonly keyPassphrase: SecretSource | undefined;
}

export interface AuthConfig {
  readonly preset: PresetName | undefined;
  /** The token endpoint; undefined when it is discovered from `issuer` (exactly one of the two is set). */
  readonly tokenUrl: string | undefined;
  /** The issuer whose discovery document names the token endpoint; undefined when `tokenUrl` is set. */
  readonly issuer: string | undefined;
  readonly method: AuthMethod;
  /** False when `method` is the default: discovery may then pick client_secret_post instead. */
  readonly methodSet: boolean;
  /** Undefined only with method none (a security token service that takes no client id). */
  readonly clientId: SecretSource | undefined;
  /** client_secret_basic and client_secret_post only. */
  readonly clientSecret: SecretSource | undefined;
  /** private_key_jwt only: the PEM key that signs the client assertion, read at every token request. */
  readonly privateKey: SecretSource | undefined;
  /** private_key_jwt: the JWS kid. */
  readonly keyId: string | undefined;
  /** private_key_jwt: the key's certificate, read with the key; its thumbprint is the JWS x5t#S256. */
  readonly certificate: SecretSource | undefined;
  /** private_key_jwt: undefined means the algorithm the key's type implies (src/config/keys.ts). */
  readonly signingAlgorithm: SigningAlgorithm | undefined;
  /** private_key_jwt: the assertion's aud, the token endpoint's URL or the issuer (`assertionIssuer`). */
  readonly assertionAudience: 'tokenEndpoint' | 'issuer';
  /** auth.issuer as configured, also when tokenUrl is set (then it is only the assertion's audience). */
  readonly assertionIssuer: string | undefined;
  /** client_assertion only: the file holding the JWT presented as client_assertion, read at every token request. */
  readonly clientAssertion: SecretSource | undefined;
  readonly grantType: GrantType;
  /** token_exchange only (RFC 8693): the tokens presented and the type asked for. */
  readonly tokenExchange: TokenExchangeConfig | undefined;
  /** token_exchange: the resource form field (RFC 8693 §2.1). */
  readonly resource: string | undefined;
  readonly scope: string | undefined;
  readonly audience: string | undefined;
  readonly extraParams: Readonly<Record<string, string>>;
  readonly refreshAheadRatio: number;
  readonly refreshAheadMinSeconds: number;
  readonly safetyMarginSeconds: number;
  readonly defaultExpiresInSeconds: number;
  readonly maxLifetimeSeconds: number;
  readonly timeoutMs: number;
  readonly tokenWaitMs: number;
  readonly refreshOn401CooldownSeconds: number;
  readonly retry: RetryConfig;
  /** An http:// token URL, issuer or discovered token endpoint is accepted off loopback. */
  readonly allowInsecureTokenUrl: boolean;
  readonly tls: TlsConfig;
}

export interface TokenExchangeConfig {
  /** subjectTokenFile, read at every token request. */
  readonly subjectToken: SecretSource;
  readonly subjectTokenType: string;
  /** actorTokenFile, read at every token request. */
  readonly actorToken: SecretSource | undefined;
  readonly actorTokenType: string | undefined;
  readonly requestedTokenType: string | undefined;
}

export interface InjectConfig {
  /** Lower case. */
  readonly header: string;
  /** "" for the bare token. */
  readonly scheme: string;
}

export interface RouteConfig {
  readonly name: string;
  /** Local path prefix, stripped before forwarding; no trailing slash except for "/". */
  readonly prefix: string;
  /** Upstream origin, e.g. https://api.megaport.com */
  readonly upstreamOrigin: string;
  /** Path kept in front of every forwarded path: "" or e.g. "/v2" (no trailing slash). */
  readonly upstreamBasePath: string;
  readonly websocket: boolean;
  readonly auth: AuthConfig;
  /** Where the token goes: `header: scheme token` (scheme "" sends the bare token). */
  readonly inject: InjectConfig;
  readonly connectTimeoutMs: number;
  readonly responseTimeoutMs: number;
  readonly tls: TlsConfig;
  readonly forwardedHeaders: 'strip' | 'append' | 'pass';
  readonly forwardCookies: boolean;
  /** 0 = no limit. */
  readonly maxBodyBytes: number;
  /** Bodies up to this size are kept in memory so a request can be replayed once after a 401. */
  readonly replayBodyLimitBytes: number;
  /** The outbound proxy of its token requests, upstream requests and WebSocket dials (outboundProxy, else HTTPS_PROXY...). */
  readonly outboundProxy: OutboundProxySettings;
  /** False when the route opted out (`tokenCache: false`); true uses the top-level tokenCache, when there is one. */
  readonly tokenCache: boolean;
}

/** The shared token cache (top-level `tokenCache`): resolved, its files checked at load. */
export interface TokenCacheConfig {
  /** redis:// or rediss:// URL, password included: inline, or a file read again at each reconnect. Never logged. */
  readonly url: SecretSource;
  /** The key file: base64 keys of 32 bytes, one a line; the first encrypts, any decrypts. */
  readonly encryptionKeys: SecretSource;
  readonly keyPrefix: string;
  readonly timeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly tls: TlsConfig;
}

export interface ListenConfig {
  readonly host: string;
  readonly port: number;
}

export interface ProxyListenConfig extends ListenConfig {
  /** A Unix domain socket path; when set, host and port are not used. */
  readonly socket?: string;
  /** The socket file's mode (e.g. 0o660); set whenever `socket` is. */
  readonly mode?: number;
}

export interface SharedSecretHeader {
  /** Lower case. */
  readonly name: string;
  readonly value: SecretSource;
}

/** Who may use the proxy listener and how much it takes on (listen.* in the file). */
export interface InboundConfig {
  /** Empty: any client that can reach the socket. */
  readonly allowedClients: readonly Cidr[];
  readonly sharedSecretHeader: SharedSecretHeader | undefined;
  readonly maxHeaderBytes: number;
  /** 0 = no limit. */
  readonly maxInFlight: number;
}

export interface SidecarConfig {
  readonly listen: ProxyListenConfig;
  readonly inbound: InboundConfig;
  readonly admin: ListenConfig;
  readonly logLevel: LogLevel;
  readonly drainTimeoutMs: number;
  /** Processes serving the proxy listener (1: this process alone); "auto": the CPUs it may use (runtime/cpus.ts). */
  readonly workers: number | 'auto';
  /** OpenTelemetry traces; absent when off (config/tracing.ts). */
  readonly tracing?: TracingConfig;
  readonly routes: readonly RouteConfig[];
  /** Set: the token sources share tokens through this cache (src/token/shared-cache/). */
  readonly tokenCache?: TokenCacheConfig;
}

/** Where and how spans are exported, from the `tracing` block and the OTEL_* variables (config/tracing.ts). */
export interface TracingConfig {
  /** The URL spans are POSTed to (OTLP over HTTP). */
  readonly url: string;
  readonly protocol: (typeof tracingProtocols)[number];
  readonly serviceName: string;
  readonly sampler: (typeof tracingSamplers)[number];
  /** The ratio of the traceidratio samplers (0 to 1). */
  readonly samplerRatio: number;
  readonly resourceAttributes: Readonly<Record<string, string>>;
  /** Headers sent with every export (OTEL_EXPORTER_OTLP_HEADERS), by name; the values are secrets. */
  readonly headers?: Readonly<Record<string, SecretSource>>;
}
