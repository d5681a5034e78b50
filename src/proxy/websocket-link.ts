// Joins the caller's WebSocket to the upstream's once both are open: messages, pings and pongs go
// both ways as they came (with backpressure), and a close on one side closes the other with the
// same code. The bearer token played its part at the upgrade; nothing here depends on it, so token
// refreshes never touch an open link.

import WebSocket from 'ws';

/** Past this many unsent bytes towards one side, reading from the other side pauses. */
const highWaterBytes = 1024 * 1024;

/** How long a closing link may take for its close handshakes before its sockets are cut. */
const closeHandshakeMs = 2_000;

export interface LinkClose {
  readonly code: number;
  /** Which side closed first. */
  readonly by: 'client' | 'upstream' | 'sidecar';
}

export interface WebSocketLink {
  /** Resolves once both sockets are closed. */
  readonly closed: Promise<LinkClose>;
  /** Closes both sides with `code` (e.g. 1001 when the sidecar shuts down); cuts them if they do not answer in time. */
  close(code: number, reason: string): Promise<LinkClose>;
}

export function joinWebSockets(client: WebSocket, upstream: WebSocket): WebSocketLink {
  let first: LinkClose | undefined;
  const closedSide = (socket: WebSocket) => new Promise<void>((resolve) => (socket.readyState === WebSocket.CLOSED ? resolve() : socket.once('close', () => resolve())));
  const closed = Promise.all([closedSide(client), closedSide(upstream)]).then(() => first ?? { code: 1006, by: 'sidecar' as const });

  forward(client, upstream);
  forward(upstream, client);
  // A socket that vanished without a close frame (1006) is reported to the other side in codes a
  // peer may send: the upstream hears that its client went away, the client that the gateway lost
  // its upstream (1014).
  client.on('close', (code, reason) => {
    first ??= { code, by: 'client' };
    closeWith(upstream, code, reason, 1001, 'the client went away');
  });
  upstream.on('close', (code, reason) => {
    first ??= { code, by: 'upstream' };
    closeWith(client, code, reason, 1014, 'the upstream connection was lost');
  });
  // Protocol errors make ws close the socket itself; the 'close' handlers above do the rest.
  client.on('error', () => {});
  upstream.on('error', () => {});
  // The upstream was paused from its handshake until now, so nothing it sent early is lost.
  upstream.resume();

  return {
    closed,
    close(code, reason) {
      first ??= { code, by: 'sidecar' };
      for (const socket of [client, upstream]) {
        if (socket.readyState === WebSocket.OPEN) socket.close(code, reason);
      }
      const timer = setTimeout(() => {
        client.terminate();
        upstream.terminate();
      }, closeHandshakeMs);
      timer.unref();
      return closed.finally(() => clearTimeout(timer));
    },
  };
}

function forward(from: WebSocket, to: WebSocket): void {
  const drained = () => {
    if (from.isPaused && to.bufferedAmount < highWaterBytes) from.resume();
  };
  from.on('message', (data, isBinary) => {
    if (to.readyState !== WebSocket.OPEN) return;
    to.send(data, { binary: isBinary }, drained);
    if (to.bufferedAmount >= highWaterBytes) from.pause();
  });
  // Pings and pongs travel end to end (autoPong is off on both sockets), so keep-alives measure
  // the whole path.
  from.on('ping', (data) => {
    if (to.readyState === WebSocket.OPEN) to.ping(data);
  });
  from.on('pong', (data) => {
    if (to.readyState === WebSocket.OPEN) to.pong(data);
  });
}

function closeWith(socket: WebSocket, code: number, reason: Buffer, abnormalCode: number, abnormalReason: string): void {
  if (socket.readyState !== WebSocket.OPEN) return;
  // 1005 (no code) and 1006 (no close frame) are only ever reported, never sent.
  if (code === 1005) socket.close();
  else if (code === 1006) socket.close(abnormalCode, abnormalReason);
  else socket.close(code, reason);
}
