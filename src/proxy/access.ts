// Who may use the proxy listener, for shared networks (docker-compose, a pod network): client
// addresses in listen.allowedClients, and a shared secret in a header of the caller's choosing.
// The address is checked once per connection; the header on every request, in constant time.

import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { BlockList, type Socket } from 'node:net';
import type { InboundConfig } from '../config/types.js';
import { SidecarError } from '../errors.js';

/** Returns the access check for the listener, or undefined when anyone who reaches the socket may call. */
export function accessCheck(inbound: InboundConfig): ((request: IncomingMessage) => boolean) | undefined {
  const clientAllowed = addressCheck(inbound);
  const secretOk = sharedSecretCheck(inbound);
  if (!clientAllowed && !secretOk) return undefined;
  return (request) => (!clientAllowed || clientAllowed(request.socket)) && (!secretOk || secretOk(request));
}

/** One message for every refusal, so a caller learns nothing about which rule it failed. */
export function forbidden(): SidecarError {
  return new SidecarError('BSC_FORBIDDEN', 'this client may not use the sidecar');
}

function addressCheck(inbound: InboundConfig): ((socket: Socket) => boolean) | undefined {
  if (inbound.allowedClients.length === 0) return undefined;
  const list = new BlockList();
  for (const { address, prefix, family } of inbound.allowedClients) list.addSubnet(address, prefix, family);
  const decided = new WeakMap<Socket, boolean>();
  return (socket) => {
    let allowed = decided.get(socket);
    if (allowed === undefined) {
      const address = socket.remoteAddress;
      // BlockList matches IPv4-mapped IPv6 (::ffff:10.0.0.1, seen on a dual-stack listener) against IPv4 ranges.
      allowed = address !== undefined && list.check(address, socket.remoteFamily === 'IPv6' ? 'ipv6' : 'ipv4');
      decided.set(socket, allowed);
    }
    return allowed;
  };
}

function sharedSecretCheck(inbound: InboundConfig): ((request: IncomingMessage) => boolean) | undefined {
  const header = inbound.sharedSecretHeader;
  if (!header) return undefined;
  // Read once: the value is compared on every request, a file read there would cost too much.
  // Both sides are hashed so the comparison takes the same time whatever the length sent.
  const expected = digest(header.value.read());
  const name = header.name;
  return (request) => {
    const value = request.headers[name];
    return typeof value === 'string' && timingSafeEqual(digest(value), expected);
  };
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}
