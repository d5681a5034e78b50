// WebSocket clients for tests (the ws package): open, refuse, echo and close, as promises.

import WebSocket, { type ClientOptions } from 'ws';

export interface Refusal {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
}

/** Opens a WebSocket; rejects with the status and body when the upgrade is refused. */
export function openSocket(url: string, protocols: string[] = [], options: ClientOptions = {}): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, protocols, options);
    socket.once('open', () => resolve(socket));
    socket.once('error', reject);
    socket.once('unexpected-response', (_request, response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => (body += chunk.toString()));
      response.on('end', () => reject(Object.assign(new Error(`upgrade refused with ${response.statusCode}: ${body}`), { refusal: { status: response.statusCode, headers: response.headers, body } })));
    });
  });
}

/** The HTTP answer to an upgrade that is expected to be refused. */
export async function refusalOf(url: string, options: ClientOptions = {}): Promise<Refusal> {
  try {
    const socket = await openSocket(url, [], options);
    socket.terminate();
  } catch (err) {
    const refusal = (err as { refusal?: Refusal }).refusal;
    if (refusal) return refusal;
    throw err;
  }
  throw new Error(`the upgrade to ${url} was accepted`);
}

/** Sends `data` and resolves with the next message. */
export function echo(socket: WebSocket, data: string | Buffer): Promise<{ data: Buffer; isBinary: boolean }> {
  return new Promise((resolve, reject) => {
    socket.once('message', (message, isBinary) => resolve({ data: message as Buffer, isBinary }));
    socket.send(data, (err) => err && reject(err));
  });
}

/** Resolves when the socket closes, with the code and when (Date.now()). */
export function closeOf(socket: WebSocket): Promise<{ code: number; reason: string; at: number }> {
  return new Promise((resolve) => {
    if (socket.readyState === WebSocket.CLOSED) resolve({ code: 1006, reason: '', at: Date.now() });
    socket.once('close', (code, reason) => resolve({ code, reason: reason.toString(), at: Date.now() }));
  });
}
