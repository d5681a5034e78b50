// The proxy listener's front door. Before a request is routed or a token is touched: is this
// client allowed (access.ts), is the request target a plain path (paths.ts), can an upgrade's body
// still be read (upgrade.ts), is there room for it (limits.ts)? Requests that never become a routed
// request (unparseable HTTP, oversized heads, bad URLs, CONNECT) are answered here too, in the same
// JSON shape as every other error. A reload puts new settings in force (InboundGuard.prepare).

import type { FastifyHttpOptions, FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import type { InboundConfig } from '../config/types.js';
import { SidecarError } from '../errors.js';
import { accessCheck, forbidden } from './access.js';
import { errorReply } from './errors.js';
import { InFlight, overloaded } from './limits.js';
import { requestTargetProblem } from './paths.js';
import { upgradeBodyProblem } from './upgrade.js';

/** Fastify options for the proxy listener: header size limit and JSON answers to malformed requests. */
export function guardServerOptions(inbound: InboundConfig): Pick<FastifyHttpOptions<Server>, 'http' | 'clientErrorHandler' | 'frameworkErrors'> {
  return {
    http: { maxHeaderSize: inbound.maxHeaderBytes },
    clientErrorHandler(this: FastifyInstance, err, socket) {
      // A reset connection has nobody to answer. The error is not logged whole: it carries the raw request bytes, headers and all.
      if (err.code === 'ECONNRESET' || socket.destroyed) return;
      const refusal =
        err.code === 'HPE_HEADER_OVERFLOW'
          ? new SidecarError('BSC_HEADERS_TOO_LARGE', `the request line and headers are larger than ${inbound.maxHeaderBytes} bytes`)
          : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
            ? new SidecarError('BSC_REQUEST_TIMEOUT', 'the request was not received in time')
            : new SidecarError('BSC_BAD_REQUEST', 'the request is not valid HTTP/1.1');
      this.log.debug({ code: err.code }, 'malformed request refused');
      answerRaw(socket, refusal);
    },
    frameworkErrors(error, request, reply) {
      // The router's own refusals (a path it cannot decode): same shape as ours.
      request.log.debug({ code: error.code }, 'request target refused by the router');
      send(reply, request, new SidecarError('BSC_BAD_REQUEST', 'the request target is not a valid path'));
    },
  };
}

/** The front door's settings in force; a reload replaces them (see prepare). */
export interface InboundGuard {
  /**
   * Builds the checks for `inbound` (reading the shared secret's file, which may throw); apply()
   * puts them in force for the requests that arrive after it. The in-flight count carries over:
   * a new maxInFlight applies to the requests already in flight too.
   */
  prepare(inbound: InboundConfig): { apply(): void };
}

/** Adds the front-door checks to the proxy app; call before any route is registered. */
export function installGuard(app: FastifyInstance, inbound: InboundConfig): InboundGuard {
  let allowed = accessCheck(inbound);
  let inFlight = inbound.maxInFlight > 0 ? new InFlight(inbound.maxInFlight) : undefined;

  app.addHook('onRequest', (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => {
    const raw = request.raw;
    if (allowed && !allowed(raw)) return done(forbidden());
    // HTTP/0.9 ("GET /") has no headers, so no Host and no way to say what it carries.
    if (raw.httpVersionMajor === 0) return done(new SidecarError('BSC_BAD_REQUEST', 'HTTP/0.9 is not supported'));
    const problem = requestTargetProblem(raw.url ?? '');
    if (problem !== undefined) return done(new SidecarError('BSC_BAD_REQUEST', `request target refused: ${problem}`));
    // Node's own flag: set on requests it handed to the 'upgrade' listener (websocket.ts).
    if ((raw as { upgrade?: boolean }).upgrade === true) {
      const refused = upgradeBodyProblem(raw);
      if (refused) return done(refused);
    }
    if (inFlight && !inFlight.acquire(reply)) return done(overloaded());
    done();
  });

  // CONNECT would make this a tunnel to any host: refuse it (Node sends it here, not to the router).
  app.server.on('connect', (_request: IncomingMessage, socket: Duplex) => {
    answerRaw(socket, new SidecarError('BSC_METHOD_NOT_ALLOWED', 'CONNECT is not supported: this is not a forward proxy'), 'allow: DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT\r\n');
  });

  app.decorate('inFlightRequests', { getter: () => inFlight?.count ?? 0 });

  return {
    prepare(next) {
      const nextAllowed = accessCheck(next);
      return {
        apply() {
          allowed = nextAllowed;
          if (next.maxInFlight === 0) inFlight = undefined;
          else if (inFlight) inFlight.max = next.maxInFlight;
          else inFlight = new InFlight(next.maxInFlight);
        },
      };
    },
  };
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Requests holding a listen.maxInFlight slot (0 when there is no limit). */
    readonly inFlightRequests: number;
  }
}

function send(reply: FastifyReply, request: FastifyRequest, err: SidecarError): void {
  const { statusCode, body } = errorReply(err);
  reply.code(statusCode).type('application/json').send({ ...body, requestId: request.id });
}

/** Answers on a bare socket (no request object exists) and closes it: what follows on it cannot be trusted. */
function answerRaw(socket: Duplex, err: SidecarError, extraHeaders = ''): void {
  const { statusCode, body } = errorReply(err);
  const json = JSON.stringify(body);
  if (socket.writable) {
    socket.write(`HTTP/1.1 ${statusCode} ${reason[statusCode] ?? 'Error'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(json)}\r\n${extraHeaders}connection: close\r\n\r\n${json}`);
  }
  socket.destroy();
}

const reason: Record<number, string> = { 400: 'Bad Request', 405: 'Method Not Allowed', 408: 'Request Timeout', 431: 'Request Header Fields Too Large' };
