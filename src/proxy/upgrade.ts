// Is this request a WebSocket upgrade, and may its route carry it? Apart from websocket.ts so that
// the proxy can ask on every request without loading ws, which server.ts imports only when a
// route has `websocket: true` (start-up time, issue 7).

import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { RouteConfig } from '../config/types.js';
import { SidecarError } from '../errors.js';

/** True for a request that asks to become a WebSocket (Upgrade: websocket). */
export function isWebSocketUpgrade(headers: IncomingHttpHeaders): boolean {
  const upgrade = headers.upgrade;
  // Plain requests (the hot path) stop here.
  if (upgrade === undefined) return false;
  return upgrade.split(',').some((protocol) => protocol.trim().toLowerCase() === 'websocket');
}

/**
 * A request Node handed over as an upgrade (only while the proxy listens for upgrades: a route
 * has, or had, `websocket: true`) comes with its head only: a body could no longer be read. Such a
 * request that is no WebSocket upgrade (h2c, say) and has a body is refused before anything waits
 * for the body; without a body it is served as a plain request.
 */
export function upgradeBodyProblem(raw: IncomingMessage): SidecarError | undefined {
  const { headers } = raw;
  if (isWebSocketUpgrade(headers) || ((headers['content-length'] ?? '0') === '0' && headers['transfer-encoding'] === undefined)) return undefined;
  return new SidecarError('BSC_BAD_REQUEST', `an Upgrade: ${headers.upgrade ?? ''} request cannot carry a body here; send it without the Upgrade header`);
}

/**
 * Whether a request is a WebSocket upgrade for `route` to carry; throws (400) for a WebSocket
 * upgrade on a route without `websocket: true`. Other upgrades (h2c) are served as plain requests.
 */
export function isUpgradeFor(raw: IncomingMessage, route: RouteConfig): boolean {
  if (!isWebSocketUpgrade(raw.headers)) return false;
  if (!route.websocket) throw new SidecarError('BSC_BAD_REQUEST', `route "${route.name}" does not carry WebSocket upgrades (set websocket: true on the route)`);
  return true;
}
