// The little of oidc-provider (a test-only devDependency without its own types) the tests use.
declare module 'oidc-provider' {
  import type { IncomingMessage, ServerResponse } from 'node:http';

  export default class Provider {
    constructor(issuer: string, configuration?: Record<string, unknown>);
    callback(): (req: IncomingMessage, res: ServerResponse) => Promise<void>;
    readonly ClientCredentials: { find(value: string): Promise<{ clientId: string } | undefined> };
  }
}
